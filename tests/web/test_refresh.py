"""Refresh tokens (RFC 6749 §6, RFC 9700 §4.14): issuance, rotation, reuse detection, lifetimes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bastion.core import jose
from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.store.sql import tables
from tests.conftest import on_both_backends
from tests.web.flow import APP_REDIRECT, Flow

pytestmark = on_both_backends
RT_SECRET = "r" * 40


@pytest.fixture
async def rt_client(provider: Provider) -> Client:
    client = Client(client_id="rt-app", client_name="Refreshing App", redirect_uris=(APP_REDIRECT,),
                    grant_types=("authorization_code", "refresh_token"), secret_hash=hash_secret(RT_SECRET),
                    created_at=provider.now())
    await provider.store.create_client(client)
    return client


async def authorize(flow: Flow, client_id: str = "rt-app", secret: str = RT_SECRET,
                    scope: str = "openid profile offline_access", **kw: Any) -> dict[str, Any]:
    req = flow.request(client_id=client_id, scope=scope)
    callback = await flow.run(req, **kw)
    response = await flow.exchange(callback["code"], req.verifier, client_id=client_id, secret=secret)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def refresh(http: httpx.AsyncClient, token: str, client_id: str = "rt-app", secret: str = RT_SECRET,
                  **extra: str) -> httpx.Response:
    return await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token, **extra},
                           auth=(client_id, secret))


def advance(provider: Provider, seconds: float) -> None:
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=seconds)


async def userinfo_status(http: httpx.AsyncClient, access_token: str) -> int:
    return (await http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})).status_code


async def test_refresh_token_only_with_offline_access_and_the_grant_type(
        flow: Flow, rt_client: Client, provider: Provider) -> None:
    body = await authorize(flow)
    assert len(body["refresh_token"]) >= 43
    assert "refresh_token" not in await authorize(flow, scope="openid profile", expect_login=False,
                                                  expect_consent=False)
    # "app" may not use the refresh_token grant: no refresh token even with offline_access.
    req = flow.request(scope="openid offline_access")
    callback = await flow.run(req, expect_login=False)
    assert "refresh_token" not in (await flow.exchange(callback["code"], req.verifier)).json()
    await provider.store.create_client(Client(
        client_id="always", client_name="Always", redirect_uris=(APP_REDIRECT,), secret_hash=hash_secret(RT_SECRET),
        grant_types=("authorization_code", "refresh_token"), refresh_token_policy="always", created_at=provider.now()))
    assert "refresh_token" in await authorize(flow, client_id="always", scope="openid", expect_login=False)


async def test_rotation_issues_a_new_pair_and_the_old_token_is_spent(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    first = await authorize(flow)
    response = await refresh(http, first["refresh_token"])
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"] and "id_token" in second
    assert await userinfo_status(http, second["access_token"]) == 200
    stored = await provider.store.get_refresh_token(hash_secret(second["refresh_token"]))
    assert stored is not None  # stored by hash only
    async with provider.store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (await conn.execute(sa.select(tables.refresh_tokens))).all()
    assert second["refresh_token"] not in repr(rows) and first["refresh_token"] not in repr(rows)


async def test_reuse_revokes_the_whole_family_and_is_audited(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    first = await authorize(flow)
    second = (await refresh(http, first["refresh_token"])).json()
    advance(provider, 5)  # past the reuse grace
    reused = await refresh(http, first["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # Everything of the family is dead: the successor refresh token and every access token.
    assert (await refresh(http, second["refresh_token"])).json()["error"] == "invalid_grant"
    assert await userinfo_status(http, first["access_token"]) == 401
    assert await userinfo_status(http, second["access_token"]) == 401
    events = await provider.store.list_audit_events()  # type: ignore[attr-defined]
    assert events[0]["event"] == "refresh_token_reuse" and events[0]["client_id"] == "rt-app"


async def test_reuse_within_the_grace_fails_without_revoking(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient) -> None:
    first = await authorize(flow)
    second = (await refresh(http, first["refresh_token"])).json()
    assert (await refresh(http, first["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await refresh(http, second["refresh_token"])).status_code == 200


async def test_twenty_concurrent_refreshes_give_exactly_one_success(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient) -> None:
    first = await authorize(flow)
    results = await asyncio.gather(*(refresh(http, first["refresh_token"]) for _ in range(20)))
    winners = [r for r in results if r.status_code == 200]
    assert len(winners) == 1
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code != 200)
    # The family survives a parallel retry: the winner's tokens work.
    assert (await refresh(http, winners[0].json()["refresh_token"])).status_code == 200


async def test_idle_lifetime(flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    first = await authorize(flow)
    advance(provider, provider.settings.refresh_token_idle_ttl + 1)
    assert (await refresh(http, first["refresh_token"])).json()["error"] == "invalid_grant"


async def test_absolute_lifetime_holds_however_often_it_is_used(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    provider.settings.refresh_token_absolute_ttl = 100
    token = (await authorize(flow))["refresh_token"]
    for elapsed in (40, 80):
        advance(provider, 40)
        response = await refresh(http, token)
        assert response.status_code == 200, (elapsed, response.text)
        token = response.json()["refresh_token"]
    advance(provider, 40)  # 120 s after the authorization
    assert (await refresh(http, token)).json()["error"] == "invalid_grant"


async def test_scope_may_narrow_but_not_widen(flow: Flow, rt_client: Client, http: httpx.AsyncClient) -> None:
    first = await authorize(flow)
    narrowed = await refresh(http, first["refresh_token"], scope="openid")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "openid"
    # The family keeps its scope: the next refresh may ask for all of it again.
    full = await refresh(http, narrowed.json()["refresh_token"])
    assert set(full.json()["scope"].split()) == {"openid", "profile", "offline_access"}
    widened = await refresh(http, full.json()["refresh_token"], scope="openid email")
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"


async def test_refreshed_id_token_has_current_claims_and_the_original_auth_time(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    claims_req = '{"id_token": {"name": null}}'
    req = flow.request(client_id="rt-app", scope="openid profile offline_access", claims=claims_req)
    callback = await flow.run(req)
    first = (await flow.exchange(callback["code"], req.verifier, client_id="rt-app", secret=RT_SECRET)).json()
    async with provider.store.engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(sa.update(tables.users).where(tables.users.c.id == "user-alice")
                           .values(claims={"name": "Alice Pleasance Liddell"}))
    advance(provider, 30)
    second = (await refresh(http, first["refresh_token"])).json()
    keys = provider.keys.verification_keys
    one, two = (jose.verify(t["id_token"], keys, ["RS256"]).claims for t in (first, second))
    assert one["name"] == "Alice Liddell" and two["name"] == "Alice Pleasance Liddell"
    assert two["auth_time"] == one["auth_time"] and two["iat"] >= one["iat"] + 30
    assert "nonce" in one and "nonce" not in two
    assert two["sub"] == one["sub"] and two["aud"] == "rt-app"


async def test_a_refresh_token_is_bound_to_its_client(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    await provider.store.create_client(Client(
        client_id="other", client_name="Other", redirect_uris=(APP_REDIRECT,), secret_hash=hash_secret(RT_SECRET),
        grant_types=("authorization_code", "refresh_token"), created_at=provider.now()))
    first = await authorize(flow)
    stolen = await refresh(http, first["refresh_token"], client_id="other")
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await refresh(http, first["refresh_token"])).status_code == 200  # not burnt by the thief


async def test_deleted_user_or_client_ends_the_family(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    first = await authorize(flow)
    await provider.store.delete_user("user-alice", provider.now())
    assert (await refresh(http, first["refresh_token"])).json()["error"] == "invalid_grant"


async def test_deleted_client_cannot_refresh(
        flow: Flow, rt_client: Client, http: httpx.AsyncClient, provider: Provider) -> None:
    first = await authorize(flow)
    await provider.store.delete_client("rt-app", provider.now())
    provider.forget_client("rt-app")
    response = await refresh(http, first["refresh_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
