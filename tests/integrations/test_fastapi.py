"""The FastAPI dependency: RFC 6750 answers, the AccessToken as a parameter, the OpenAPI security scheme."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from bastion.integrations.fastapi import CurrentToken, configure, require_token
from bastion.resource import AccessToken, TokenValidator
from tests.integrations.conftest import ApiTokens, LiveBastion
from tests.integrations.helpers import API


def build_api() -> FastAPI:
    app = FastAPI()

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"message": "hi"}

    @app.get("/hello")
    async def hello(token: Annotated[AccessToken, Depends(require_token("hello"))]) -> dict[str, Any]:
        return {"subject": token.subject, "scopes": sorted(token.scopes), "client_id": token.client_id}

    @app.get("/me")
    def me(token: CurrentToken) -> dict[str, Any]:
        return {"subject": token.subject, "scopes": sorted(token.scopes)}

    @app.get("/reports", dependencies=[Depends(require_token(["reports", "hello"]))])
    async def reports() -> list[str]:
        return []

    return app


@pytest.fixture
async def api(bastion: LiveBastion) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api()
    configure(app, TokenValidator(bastion.issuer, API), realm="example")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_openapi_declares_an_http_bearer_scheme_on_protected_routes() -> None:
    schema = build_api().openapi()
    schemes = schema["components"]["securitySchemes"]
    assert len(schemes) == 1
    name, scheme = next(iter(schemes.items()))
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for path in ("/hello", "/me", "/reports"):
        assert schema["paths"][path]["get"]["security"] == [{name: []}], path
    assert "security" not in schema["paths"]["/public"]["get"]


async def test_no_token_is_401_without_an_error_code(api: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic d2ViYXBwOng="}):
        response = await api.get("/hello", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="example"'
    assert (await api.get("/public")).status_code == 200


@pytest.mark.parametrize("header", ["Bearer garbage", "Bearer a.b.c", "Bearer"])
async def test_a_bad_token_is_401_invalid_token(api: httpx.AsyncClient, header: str) -> None:
    response = await api.get("/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="example", error="invalid_token"')
    assert response.json()["detail"]["error"] == "invalid_token"


async def test_a_token_for_another_audience_is_401(api: httpx.AsyncClient, api_tokens: ApiTokens) -> None:
    response = await api.get("/hello", headers=bearer(api_tokens.other_audience))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_missing_scope_is_403_insufficient_scope(api: httpx.AsyncClient, api_tokens: ApiTokens) -> None:
    response = await api.get("/hello", headers=bearer(api_tokens.reports))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="hello"' in challenge, challenge
    response = await api.get("/reports", headers=bearer(api_tokens.reports))
    assert response.status_code == 403 and 'scope="reports hello"' in response.headers["www-authenticate"]


async def test_the_dependency_gives_the_access_token(api: httpx.AsyncClient, api_tokens: ApiTokens) -> None:
    response = await api.get("/hello", headers=bearer(api_tokens.hello))
    assert response.status_code == 200
    assert response.json() == {"subject": "webapp", "scopes": ["hello"], "client_id": "webapp"}
    response = await api.get("/me", headers=bearer(api_tokens.reports))
    assert response.json() == {"subject": "webapp", "scopes": ["reports"]}


async def test_an_unconfigured_app_is_a_programming_error() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_api()), base_url="http://api.test") as api:
        with pytest.raises(RuntimeError, match="configure"):
            await api.get("/me", headers=bearer("x.y.z"))
