"""Shared fixtures: a real provider on a fresh, migrated database per test (no mocks)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest

from bastion.config import Settings
from bastion.core.models import Client, User
from bastion.core.passwords import hash_password
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.store.sql.migrate import upgrade
from bastion.web.app import build_provider, create_app
from tests.web.flow import Flow

ISSUER = "https://op.example"
SECRET = "app-secret-" + "x" * 40
ALICE_PASSWORD = "correct horse battery"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_available() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    ok = _pg_available()
    if not ok and os.environ.get("CI"):
        pytest.fail("PostgreSQL must be reachable at 127.0.0.1:5432 in CI")
    return ok


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(request: pytest.FixtureRequest, kind: str, tmp_path: os.PathLike[str]) -> AsyncIterator[str]:
    """A migrated database: a SQLite file, or a uniquely named PostgreSQL database dropped after."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/bastion.db"
        await upgrade(url)
        yield url
        return
    if not request.getfixturevalue("pg_available"):
        pytest.skip("PostgreSQL not reachable (outside CI)")
    name = f"bastion_test_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await upgrade(url)
        yield url
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BOTH_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BOTH_BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[str]:
    async with fresh_database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite unless a module parametrizes it (`pytestmark = on_both_backends`)."""
    return str(getattr(request, "param", "sqlite"))


on_both_backends = pytest.mark.parametrize("backend", BOTH_BACKENDS, indirect=True)


@pytest.fixture
async def provider(request: pytest.FixtureRequest, backend: str,
                   tmp_path: os.PathLike[str]) -> AsyncIterator[Provider]:
    async with fresh_database(request, backend, tmp_path) as url, _seeded_provider(url, tmp_path) as built:
        yield built


@asynccontextmanager
async def _seeded_provider(url: str, tmp_path: os.PathLike[str]) -> AsyncIterator[Provider]:
    settings = Settings(issuer=ISSUER, database_url=url, var_dir=tmp_path, key_encryption_secret="k" * 48)
    built = await build_provider(settings)
    now = datetime.now(UTC)
    await built.store.create_client(Client(
        client_id="app", client_name="Example App", redirect_uris=("https://app.example/cb",),
        secret_hash=hash_secret(SECRET), post_logout_redirect_uris=("https://app.example/bye",), created_at=now))
    await built.store.create_client(Client(
        client_id="native", client_name="Native App", redirect_uris=("http://127.0.0.1/callback",),
        token_endpoint_auth_method="none", application_type="native", created_at=now))
    await built.store.create_user(User(
        id="user-alice", username="alice", password_hash=hash_password(ALICE_PASSWORD),
        claims={"email": "alice@example.com", "email_verified": True, "name": "Alice Liddell",
                "given_name": "Alice", "family_name": "Liddell", "phone_number": "+1 555 0100",
                "address": {"country": "UK", "locality": "Oxford"}},
        created_at=now, updated_at=now))
    try:
        yield built
    finally:
        await built.store.close()


@pytest.fixture
async def http(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(provider=provider)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as client:
        yield client


@pytest.fixture
def flow(http: httpx.AsyncClient, provider: Provider) -> Flow:
    return Flow(http, provider)
