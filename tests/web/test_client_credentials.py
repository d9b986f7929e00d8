"""Client credentials (RFC 6749 §4.4) and resource indicators (RFC 8707) at the token endpoint."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from bastion.core import jose
from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.store.sql import tables
from tests.conftest import ISSUER, on_both_backends

pytestmark = on_both_backends
SERVICE_SECRET = "s" * 40


@pytest.fixture
async def service(provider: Provider) -> Client:
    client = Client(client_id="svc", client_name="Billing Service", redirect_uris=(),
                    grant_types=("client_credentials",), secret_hash=hash_secret(SERVICE_SECRET),
                    scope=("billing:read", "billing:write", "openid"),
                    resources=("https://api.example/billing", "https://api.example/ledger"),
                    created_at=provider.now())
    await provider.store.create_client(client)
    return client


async def grant(http: httpx.AsyncClient, client_id: str = "svc", secret: str = SERVICE_SECRET,
                **form: str) -> httpx.Response:
    return await http.post("/token", data={"grant_type": "client_credentials", **form}, auth=(client_id, secret))


async def access_token_rows(provider: Provider) -> int:
    async with provider.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return int((await conn.execute(sa.select(sa.func.count()).select_from(tables.access_tokens))).scalar_one())


async def test_client_credentials_token(http: httpx.AsyncClient, service: Client, provider: Provider) -> None:
    rows_before = await access_token_rows(provider)
    response = await grant(http, scope="billing:read")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "billing:read" and "refresh_token" not in body
    claims = jose.verify(body["access_token"], provider.keys.verification_keys, ["RS256"], typ="at+jwt").claims
    assert claims["sub"] == "svc" and claims["client_id"] == "svc" and claims["aud"] == ISSUER
    # The hot path writes nothing for a JWT.
    assert await access_token_rows(provider) == rows_before


async def test_default_scope_is_the_client_scopes_without_user_scopes(http: httpx.AsyncClient,
                                                                       service: Client) -> None:
    body = (await grant(http)).json()
    assert set(body["scope"].split()) == {"billing:read", "billing:write"}


@pytest.mark.parametrize("scope", ["billing:admin", "openid", "billing:read profile"])
async def test_scopes_beyond_the_client_or_about_users_are_invalid(
        http: httpx.AsyncClient, service: Client, scope: str) -> None:
    response = await grant(http, scope=scope)
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def test_public_and_unauthorized_clients_are_refused(http: httpx.AsyncClient, provider: Provider) -> None:
    response = await http.post("/token", data={"grant_type": "client_credentials", "client_id": "native"})
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    from tests.conftest import SECRET

    response = await grant(http, client_id="app", secret=SECRET)  # not registered for the grant
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


async def test_bad_secret_is_invalid_client(http: httpx.AsyncClient, service: Client) -> None:
    response = await grant(http, secret="wrong" * 8)
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")


async def test_resource_indicators_set_the_audience(http: httpx.AsyncClient, service: Client,
                                                    provider: Provider) -> None:
    keys = provider.keys.verification_keys
    one = (await grant(http, resource="https://api.example/billing")).json()
    assert jose.verify(one["access_token"], keys, ["RS256"]).claims["aud"] == "https://api.example/billing"
    form = httpx.QueryParams([("grant_type", "client_credentials"), ("resource", "https://api.example/billing"),
                              ("resource", "https://api.example/ledger")])
    two = await http.post("/token", content=str(form), auth=("svc", SERVICE_SECRET),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert jose.verify(two.json()["access_token"], keys, ["RS256"]).claims["aud"] == [
        "https://api.example/billing", "https://api.example/ledger"]
    for bad in ("https://api.example/payroll", "not-a-uri", "https://api.example/billing#frag"):
        response = await grant(http, resource=bad)
        assert response.status_code == 400 and response.json()["error"] == "invalid_target"


async def test_opaque_tokens_are_stored_only_as_hashes(http: httpx.AsyncClient, provider: Provider) -> None:
    await provider.store.create_client(Client(
        client_id="opaque-svc", client_name="Opaque", redirect_uris=(), grant_types=("client_credentials",),
        secret_hash=hash_secret(SERVICE_SECRET), scope=("billing:read",), access_token_format="opaque",
        created_at=provider.now()))
    body = (await grant(http, client_id="opaque-svc")).json()
    token = body["access_token"]
    assert token.count(".") == 0 and len(token) >= 43
    async with provider.store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (await conn.execute(sa.select(tables.access_tokens))).all()
    assert len(rows) == 1 and token not in repr(rows) and rows[0].token_hash == hash_secret(token)
