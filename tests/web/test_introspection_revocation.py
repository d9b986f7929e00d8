"""Introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from tests.conftest import ISSUER, on_both_backends
from tests.web.flow import APP_REDIRECT, Flow

pytestmark = on_both_backends
S = "s" * 40
API = "https://api.example/orders"


@pytest.fixture
async def clients(provider: Provider) -> None:
    now = provider.now()
    for client in (
        Client(client_id="web", client_name="Web", redirect_uris=(APP_REDIRECT,), secret_hash=hash_secret(S),
               grant_types=("authorization_code", "refresh_token"), resources=(API,), created_at=now),
        Client(client_id="svc", client_name="Service", redirect_uris=(), secret_hash=hash_secret(S),
               grant_types=("client_credentials",), scope=("orders:read",), resources=(API,), created_at=now),
        Client(client_id="opaque", client_name="Opaque", redirect_uris=(), secret_hash=hash_secret(S),
               grant_types=("client_credentials",), scope=("orders:read",), access_token_format="opaque",
               created_at=now),
        Client(client_id="orders-api", client_name="Orders API", redirect_uris=(), secret_hash=hash_secret(S),
               grant_types=(), resources=(API,), permissions=("introspect",), created_at=now),
        Client(client_id="nosy", client_name="Nosy", redirect_uris=(), secret_hash=hash_secret(S), grant_types=(),
               created_at=now),
    ):
        await provider.store.create_client(client)


async def introspect(http: httpx.AsyncClient, token: str, client_id: str, **extra: str) -> dict:
    response = await http.post("/introspect", data={"token": token, **extra}, auth=(client_id, S))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


async def revoke(http: httpx.AsyncClient, token: str, client_id: str, **extra: str) -> httpx.Response:
    return await http.post("/revoke", data={"token": token, **extra}, auth=(client_id, S))


async def user_tokens(flow: Flow, **params: str) -> dict:
    req = flow.request(client_id="web", scope="openid profile offline_access", **params)
    callback = await flow.run(req)
    response = await flow.exchange(callback["code"], req.verifier, client_id="web", secret=S)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def service_token(http: httpx.AsyncClient, client_id: str = "svc", **form: str) -> str:
    response = await http.post("/token", data={"grant_type": "client_credentials", **form}, auth=(client_id, S))
    return str(response.json()["access_token"])


async def test_active_access_and_refresh_tokens(flow: Flow, http: httpx.AsyncClient, clients: None) -> None:
    tokens = await user_tokens(flow)
    info = await introspect(http, tokens["access_token"], "web")
    assert info["active"] is True and info["client_id"] == "web" and info["sub"] == "user-alice"
    assert info["username"] == "alice" and info["iss"] == ISSUER and info["token_type"] == "Bearer"
    assert set(info["scope"].split()) == {"openid", "profile", "offline_access"}
    assert info["exp"] > info["iat"] and info["aud"] == ISSUER
    # token_type_hint is a hint only: a wrong hint still finds the token.
    refresh = await introspect(http, tokens["refresh_token"], "web", token_type_hint="access_token")
    assert refresh["active"] is True and "token_type" not in refresh and refresh["sub"] == "user-alice"
    assert refresh["aud"] == ISSUER and refresh["exp"] > info["exp"]


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 500])
async def test_unknown_or_malformed_tokens_are_inactive(http: httpx.AsyncClient, clients: None, token: str) -> None:
    if not token:
        response = await http.post("/introspect", data={"token": ""}, auth=("web", S))
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        return
    assert await introspect(http, token, "web") == {"active": False}


async def test_introspection_requires_client_authentication(http: httpx.AsyncClient, clients: None) -> None:
    response = await http.post("/introspect", data={"token": "x"})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")
    public = await http.post("/introspect", data={"token": "x", "client_id": "native"})
    assert public.status_code == 401


async def test_who_may_introspect_what(flow: Flow, http: httpx.AsyncClient, clients: None) -> None:
    for_api = await service_token(http, resource=API)
    not_for_api = await service_token(http)
    assert (await introspect(http, for_api, "orders-api"))["active"] is True  # its audience
    assert await introspect(http, not_for_api, "orders-api") == {"active": False}  # not its audience
    assert await introspect(http, for_api, "nosy") == {"active": False}  # no permission
    tokens = await user_tokens(flow)
    assert await introspect(http, tokens["refresh_token"], "orders-api") == {"active": False}


async def test_opaque_tokens_are_validated_by_introspection(http: httpx.AsyncClient, clients: None) -> None:
    token = await service_token(http, client_id="opaque")
    info = await introspect(http, token, "opaque")
    assert info["active"] is True and info["client_id"] == "opaque" and info["sub"] == "opaque"


async def test_expired_tokens_are_inactive(flow: Flow, http: httpx.AsyncClient, clients: None,
                                           provider: Provider) -> None:
    tokens = await user_tokens(flow)
    opaque = await service_token(http, client_id="opaque")
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=601)
    assert await introspect(http, tokens["access_token"], "web") == {"active": False}
    assert await introspect(http, opaque, "opaque") == {"active": False}


async def test_revoking_an_access_token_ends_it_at_once(flow: Flow, http: httpx.AsyncClient, clients: None) -> None:
    tokens = await user_tokens(flow)
    response = await revoke(http, tokens["access_token"], "web")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert await introspect(http, tokens["access_token"], "web") == {"active": False}
    userinfo = await http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert userinfo.status_code == 401
    # The refresh token (another token of the grant) lives on.
    assert (await introspect(http, tokens["refresh_token"], "web"))["active"] is True


async def test_revoking_a_client_credentials_jwt_uses_the_denylist(http: httpx.AsyncClient, clients: None) -> None:
    token = await service_token(http, resource=API)
    assert (await revoke(http, token, "svc", token_type_hint="access_token")).status_code == 200
    assert await introspect(http, token, "svc") == {"active": False}
    assert await introspect(http, token, "orders-api") == {"active": False}


async def test_revoking_a_refresh_token_revokes_the_family(flow: Flow, http: httpx.AsyncClient,
                                                          clients: None) -> None:
    tokens = await user_tokens(flow)
    assert (await revoke(http, tokens["refresh_token"], "web")).status_code == 200
    assert await introspect(http, tokens["refresh_token"], "web") == {"active": False}
    assert await introspect(http, tokens["access_token"], "web") == {"active": False}
    refreshed = await http.post("/token", data={"grant_type": "refresh_token",
                                                "refresh_token": tokens["refresh_token"]}, auth=("web", S))
    assert refreshed.json()["error"] == "invalid_grant"


async def test_unknown_and_foreign_tokens_get_200_and_nothing_happens(flow: Flow, http: httpx.AsyncClient,
                                                                      clients: None) -> None:
    assert (await revoke(http, "never-issued", "web")).status_code == 200
    tokens = await user_tokens(flow)
    assert (await revoke(http, tokens["refresh_token"], "svc")).status_code == 200
    assert (await revoke(http, tokens["access_token"], "svc")).status_code == 200
    assert (await introspect(http, tokens["refresh_token"], "web"))["active"] is True
    assert (await introspect(http, tokens["access_token"], "web"))["active"] is True


async def test_revocation_requires_client_authentication(http: httpx.AsyncClient, clients: None) -> None:
    response = await http.post("/revoke", data={"token": "x"}, auth=("web", "wrong" * 8))
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert (await http.post("/revoke", data={"token": "x"})).status_code == 401


async def test_discovery_advertises_both_endpoints(http: httpx.AsyncClient) -> None:
    meta = (await http.get("/.well-known/openid-configuration")).json()
    assert meta["introspection_endpoint"] == f"{ISSUER}/introspect"
    assert meta["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(meta["grant_types_supported"])


async def test_a_client_id_registered_again_does_not_revive_old_tokens(
        http: httpx.AsyncClient, clients: None, provider: Provider) -> None:
    token = await service_token(http, resource=API)
    assert (await introspect(http, token, "orders-api"))["active"] is True
    await provider.store.delete_client("svc", provider.now())
    provider.forget_client("svc")
    assert await introspect(http, token, "orders-api") == {"active": False}
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=2)
    await provider.store.create_client(Client(
        client_id="svc", client_name="Someone else", redirect_uris=(), secret_hash=hash_secret(S),
        grant_types=("client_credentials",), scope=("orders:read",), resources=(API,), created_at=provider.now()))
    assert await introspect(http, token, "orders-api") == {"active": False}
