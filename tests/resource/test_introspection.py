"""Opaque tokens (RFC 7662) and the synchronous driver, against the real provider in-process."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.resource import InvalidToken, TokenValidator
from tests.conftest import ISSUER

API = "https://api.example/orders"
S = "s" * 40
RS = ("orders-api", S)


@pytest.fixture
async def clients(provider: Provider) -> None:
    now = provider.now()
    for client in (
        Client(client_id="opaque", client_name="Opaque", redirect_uris=(), secret_hash=hash_secret(S),
               grant_types=("client_credentials",), scope=("orders:read",), resources=(API,),
               access_token_format="opaque", created_at=now),
        Client(client_id="svc", client_name="Service", redirect_uris=(), secret_hash=hash_secret(S),
               grant_types=("client_credentials",), scope=("orders:read",), resources=(API,), created_at=now),
        Client(client_id="orders-api", client_name="Orders API", redirect_uris=(), secret_hash=hash_secret(S),
               grant_types=(), resources=(API,), permissions=("introspect",), created_at=now),
    ):
        await provider.store.create_client(client)


async def token(http: httpx.AsyncClient, client_id: str = "opaque") -> str:
    response = await http.post("/token", data={"grant_type": "client_credentials", "resource": API,
                                               "scope": "orders:read"}, auth=(client_id, S))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_an_opaque_token_is_introspected_cached_and_its_revocation_seen_after_the_cache(
        http: httpx.AsyncClient, rs_http: httpx.AsyncClient, clients: None, fetches: list[str]) -> None:
    now = [time.time()]
    validator = TokenValidator(ISSUER, API, http=rs_http, introspection=RS, clock=lambda: now[0])
    opaque = await token(http)
    assert opaque.count(".") != 2
    access = await validator.validate(opaque)
    assert access.subject == "opaque" and access.client_id == "opaque" and access.scopes == {"orders:read"}
    assert access.claims["aud"] == API
    await validator.validate(opaque)
    assert fetches == ["/.well-known/openid-configuration", "/introspect"]  # the second answer came from the cache
    assert (await http.post("/revoke", data={"token": opaque}, auth=("opaque", S))).status_code == 200
    await validator.validate(opaque)  # still cached: revocation is seen within introspection_ttl, not at once
    now[0] += 31
    with pytest.raises(InvalidToken, match="inactive"):
        await validator.validate(opaque)
    assert fetches.count("/introspect") == 2


async def test_garbage_wrong_audience_and_no_introspection(
        http: httpx.AsyncClient, rs_http: httpx.AsyncClient, clients: None, fetches: list[str]) -> None:
    validator = TokenValidator(ISSUER, API, http=rs_http, introspection=RS)
    with pytest.raises(InvalidToken, match="inactive"):
        await validator.validate("garbage")
    with pytest.raises(InvalidToken, match="inactive"):
        await validator.validate("garbage")
    assert fetches.count("/introspect") == 1  # negative answers are cached too
    for malformed in ("not a token", "", "é", "x" * 20000):
        with pytest.raises(InvalidToken, match="malformed"):
            await validator.validate(malformed)
    assert fetches.count("/introspect") == 1  # refused before any I/O
    opaque = await token(http)
    with pytest.raises(InvalidToken, match="audience"):
        await TokenValidator(ISSUER, "https://api.example/other", http=rs_http, introspection=RS).validate(opaque)
    fetches.clear()
    with pytest.raises(InvalidToken, match="malformed"):
        await TokenValidator(ISSUER, API, http=rs_http).validate(opaque)  # opaque tokens need introspection
    assert fetches == []


async def test_a_refused_introspection_is_not_cached(
        http: httpx.AsyncClient, rs_http: httpx.AsyncClient, clients: None, fetches: list[str]) -> None:
    validator = TokenValidator(ISSUER, API, http=rs_http, introspection=("orders-api", "wrong"))
    opaque = await token(http)
    for _ in range(2):
        with pytest.raises(InvalidToken, match="could not be introspected"):
            await validator.validate(opaque)
    assert fetches.count("/introspect") == 2


async def test_the_cache_never_outlives_the_tokens_exp(
        http: httpx.AsyncClient, rs_http: httpx.AsyncClient, clients: None, fetches: list[str]) -> None:
    now = [time.time()]
    validator = TokenValidator(ISSUER, API, http=rs_http, introspection=RS, introspection_ttl=3600,
                               clock=lambda: now[0])
    opaque = await token(http)
    exp = (await validator.validate(opaque)).claims["exp"]
    now[0] = exp + 31  # past exp and leeway; the provider (on the real clock) still says active
    with pytest.raises(InvalidToken, match="expired"):
        await validator.validate(opaque)
    assert fetches.count("/introspect") == 2


def bridge(http: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, fetches: list[str]) -> httpx.Client:
    """A sync client whose requests reach the in-process provider app on the test's event loop."""

    def handle(request: httpx.Request) -> httpx.Response:
        fetches.append(request.url.path)
        response = asyncio.run_coroutine_threadsafe(http.send(request), loop).result(timeout=10)
        return httpx.Response(response.status_code, headers=response.headers, content=response.content)

    return httpx.Client(transport=httpx.MockTransport(handle), base_url=ISSUER)


async def test_the_sync_driver_shares_the_implementation(http: httpx.AsyncClient, clients: None,
                                                         fetches: list[str]) -> None:
    jwt, opaque = await token(http, "svc"), await token(http)
    with bridge(http, asyncio.get_running_loop(), fetches) as sync_http:
        validator = TokenValidator(ISSUER, API, sync_http=sync_http, introspection=RS)
        assert (await asyncio.to_thread(validator.validate_sync, jwt)).subject == "svc"
        assert (await asyncio.to_thread(validator.validate_sync, opaque)).subject == "opaque"
        with pytest.raises(InvalidToken, match="audience"):
            await asyncio.to_thread(TokenValidator(ISSUER, "other", sync_http=sync_http).validate_sync, jwt)
    assert fetches[:3] == ["/.well-known/openid-configuration", "/jwks", "/introspect"]
