"""Fixtures for the resource-server library: an HTTP client onto the real provider that records
which provider endpoints the validator fetched."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ISSUER


@pytest.fixture
def fetches() -> list[str]:
    return []


@pytest.fixture
async def rs_http(http: httpx.AsyncClient, fetches: list[str]) -> httpx.AsyncClient:
    async def record(request: httpx.Request) -> None:
        fetches.append(request.url.path)

    return httpx.AsyncClient(transport=http._transport, base_url=ISSUER, event_hooks={"request": [record]})
