"""Housekeeping: expired codes, tokens, families, sessions and interactions are pruned, live ones are not.

Everything is issued through the HTTP endpoints, the provider clock is moved past every lifetime, and
the tables are counted with plain SQL. `bastion db prune` itself is run in tests/test_cli_tokens.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bastion.core.models import Client
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.store.sql import tables
from bastion.web import app as web_app
from tests.conftest import on_both_backends
from tests.web.flow import APP_REDIRECT, Flow, query

pytestmark = on_both_backends
S = "h" * 40
SCOPE = "openid profile offline_access"
DAY = timedelta(days=1)
# Every table that gains rows per login or per issued token.
PER_TOKEN = (tables.authorization_codes, tables.access_tokens, tables.refresh_tokens, tables.sessions,
             tables.interactions, tables.grants, tables.rate_limits)
# Tables that hold configuration, not traffic: pruning never touches them.
KEPT = (tables.users, tables.clients, tables.consents, tables.signing_keys)


@pytest.fixture
async def clients(provider: Provider) -> None:
    now = provider.now()
    for client in (
        Client(client_id="rt-app", client_name="Refreshing App", redirect_uris=(APP_REDIRECT,),
               grant_types=("authorization_code", "refresh_token"), secret_hash=hash_secret(S), created_at=now),
        Client(client_id="svc-opaque", client_name="Opaque Service", redirect_uris=(),
               grant_types=("client_credentials",), scope=("jobs:read",), access_token_format="opaque",
               secret_hash=hash_secret(S), created_at=now),
        Client(client_id="svc-jwt", client_name="JWT Service", redirect_uris=(), grant_types=("client_credentials",),
               scope=("jobs:read",), secret_hash=hash_secret(S), created_at=now),
    ):
        await provider.store.create_client(client)


class Clock:
    """The provider's clock at a chosen distance from one fixed real instant."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.base: Callable[[], datetime] = provider.clock

    def at(self, offset: timedelta) -> None:
        self.provider.clock = lambda: self.base() + offset


async def counts(provider: Provider, which: tuple[sa.Table, ...] = PER_TOKEN) -> dict[str, int]:
    async with provider.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return {table.name: int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())
                for table in which}


async def prune(provider: Provider) -> int:
    return await provider.store.delete_expired(provider.now())


async def finish(flow: Flow, response: httpx.Response) -> dict[str, str]:
    """From the login response to the callback, consenting if asked."""
    assert response.status_code == 303, (response.status_code, response.text[:300])
    response = await flow.http.get(response.headers["location"])
    if response.status_code == 200 and 'value="allow"' in response.text:
        response = await flow.http.get((await flow.consent(response)).headers["location"])
    assert response.status_code == 303, (response.status_code, response.text[:300])
    return query(response.headers["location"])


async def token(flow: Flow, code: str, verifier: str) -> dict[str, Any]:
    response = await flow.exchange(code, verifier, client_id="rt-app", secret=S)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def sign_in(flow: Flow, *, failed_as: str | None = None) -> dict[str, Any]:
    """A new browser (so a new session and interaction), a login, a code and its exchange."""
    flow.http.cookies.clear()
    req = flow.request(client_id="rt-app", scope=SCOPE)
    page = await flow.follow(await flow.authorize(req))
    if failed_as is not None:
        assert (await flow.login(page, username=failed_as, password="wrong")).status_code == 401
    callback = await finish(flow, await flow.login(page))
    return await token(flow, callback["code"], req.verifier)


async def authorize_again(flow: Flow) -> dict[str, Any]:
    """Another authorization from the browser's live session (a new grant and code, no login)."""
    req = flow.request(client_id="rt-app", scope=SCOPE)
    callback = await flow.run(req, expect_login=False, expect_consent=False)
    return await token(flow, callback["code"], req.verifier)


async def refresh(http: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                           auth=("rt-app", S))


async def rotated(http: httpx.AsyncClient, refresh_token: str) -> dict[str, Any]:
    response = await refresh(http, refresh_token)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def revoke(http: httpx.AsyncClient, value: str, client_id: str = "rt-app") -> None:
    assert (await http.post("/revoke", data={"token": value}, auth=(client_id, S))).status_code == 200


async def service_token(http: httpx.AsyncClient, client_id: str) -> str:
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, S))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def userinfo_status(http: httpx.AsyncClient, access_token: str) -> int:
    return (await http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})).status_code


async def introspect_active(http: httpx.AsyncClient, value: str, client_id: str) -> bool:
    response = await http.post("/introspect", data={"token": value}, auth=(client_id, S))
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


async def one_round(flow: Flow, http: httpx.AsyncClient, families: int) -> None:
    """Every kind of per-token row: logins, families (all rotated, some revoked), a sign-in abandoned on
    the login page, an unredeemed code, a failed login, opaque client-credentials tokens and a JWT on the
    denylist. Logins cost an argon2 verification each, so most families come from a live session."""
    for i in range(families):
        if i % 5 == 0:
            body = await sign_in(flow, failed_as=f"mallory-{i}" if i == 0 else None)
        else:
            body = await authorize_again(flow)
        body = await rotated(http, (await rotated(http, body["refresh_token"]))["refresh_token"])
        if i % 4 == 0:
            await revoke(http, body["refresh_token"])
    assert "code" in await flow.run(flow.request(client_id="rt-app", scope=SCOPE), expect_login=False,
                                    expect_consent=False)
    await flow.follow(await flow.authorize(flow.request(client_id="rt-app", scope=SCOPE, prompt="login")))
    for _ in range(families):
        await service_token(http, "svc-opaque")
    await revoke(http, await service_token(http, "svc-jwt"), "svc-jwt")


async def test_tables_do_not_grow_without_bound(
        flow: Flow, http: httpx.AsyncClient, provider: Provider, clients: None) -> None:
    clock = Clock(provider)
    peaks = []
    for n in range(3):
        start = timedelta(days=100 * n)
        clock.at(start)
        await one_round(flow, http, families=10)
        peak = await counts(provider)
        peaks.append(peak)
        kept = await counts(provider, KEPT)
        # Past every lifetime: codes (1 min), access tokens (10 min), interactions (15 min), sessions
        # (1 day), rate-limit windows (kept 1 day), refresh families (90 days absolute) and grants (kept
        # 2 days after they end or are revoked).
        clock.at(start + timedelta(days=93))
        deleted = await prune(provider)
        assert await counts(provider) == dict.fromkeys(peak, 0), n
        assert deleted == sum(peak.values())
        assert await counts(provider, KEPT) == kept  # users, clients, consents and keys are not traffic
    assert all(count > 0 for count in peaks[0].values()), peaks[0]
    # 10 families x (issued + 2 rotations); 10 + 1 unredeemed grants; 30 user + 10 opaque + 1 denylisted token.
    assert peaks[0]["refresh_tokens"] == 30 and peaks[0]["grants"] == 11 and peaks[0]["access_tokens"] == 41
    # 2 logins + 1 abandoned sign-in; 10 redeemed codes + 1 unredeemed.
    assert peaks[0]["sessions"] == 2 and peaks[0]["interactions"] == 3 and peaks[0]["authorization_codes"] == 11
    assert peaks[0]["rate_limits"] == 2  # mallory-0 and the address
    assert peaks[1] == peaks[0] and peaks[2] == peaks[0]  # the same traffic leaves the same footprint


async def test_pruning_spares_what_is_still_live(
        flow: Flow, http: httpx.AsyncClient, provider: Provider, clients: None) -> None:
    clock = Clock(provider)
    provider.settings.login_max_failures = 1
    abandoned = await sign_in(flow)  # never used again: idle-expires at day 14
    family = await authorize_again(flow)
    revoked_early = await authorize_again(flow)
    await revoke(http, revoked_early["refresh_token"])
    clock.at(10 * DAY)
    spent = await rotated(http, family["refresh_token"])  # consumed at day 20, idle deadline day 24
    clock.at(20 * DAY)
    current = await rotated(http, spent["refresh_token"])  # idle deadline day 34
    clock.at(21 * DAY)
    revoked_now = await sign_in(flow)
    await revoke(http, revoked_now["refresh_token"])
    live = await sign_in(flow)  # this browser's session, and everything below, is live
    unredeemed = flow.request(client_id="rt-app", scope=SCOPE)
    code = (await flow.run(unredeemed, expect_login=False, expect_consent=False))["code"]
    pending = flow.request(client_id="rt-app", scope=SCOPE, prompt="login")
    pending_page = await flow.follow(await flow.authorize(pending))
    opaque = await service_token(http, "svc-opaque")
    assert (await flow.login(pending_page, username="mallory", password="wrong")).status_code == 401

    before = await counts(provider)
    deleted = await prune(provider)
    after = await counts(provider)
    assert deleted == sum(before.values()) - sum(after.values()) > 0

    async def refresh_row(body: dict[str, Any]) -> bool:
        return await provider.store.get_refresh_token(hash_secret(body["refresh_token"])) is not None

    # Expired refresh tokens are gone; a consumed one within its idle lifetime stays for reuse detection.
    assert not await refresh_row(abandoned) and not await refresh_row(family) and not await refresh_row(revoked_early)
    assert await refresh_row(spent) and await refresh_row(current) and await refresh_row(live)
    assert after["refresh_tokens"] == 4  # spent, current, live, and revoked_now until its own deadline
    # A grant stays until 2 days after it is revoked or ends: only revoked_early's is gone.
    assert after["grants"] == 5
    assert after["sessions"] == 2 and after["interactions"] == 3 and after["authorization_codes"] == 3
    assert after["access_tokens"] == 3  # live, revoked_now's (marked revoked) and the opaque token
    assert after["rate_limits"] == 2  # mallory, and the address

    # Live things work after the prune.
    assert await userinfo_status(http, live["access_token"]) == 200
    assert (await refresh(http, live["refresh_token"])).status_code == 200
    latest = await rotated(http, current["refresh_token"])  # the long-running family keeps working
    assert await userinfo_status(http, latest["access_token"]) == 200
    assert "refresh_token" in await token(flow, code, unredeemed.verifier)
    callback = await finish(flow, await flow.login(pending_page))  # the pending sign-in completes
    assert "access_token" in await token(flow, callback["code"], pending.verifier)
    assert await introspect_active(http, opaque, "svc-opaque")
    login_page = await flow.follow(await flow.authorize(flow.request(client_id="rt-app", scope=SCOPE, prompt="login")))
    locked = await flow.login(login_page, username="mallory", password="wrong")
    assert locked.status_code == 429  # the throttle's window survived
    # Dead things stay dead, pruned or not.
    assert await userinfo_status(http, revoked_now["access_token"]) == 401
    for dead in (revoked_now, revoked_early, abandoned):
        assert (await refresh(http, dead["refresh_token"])).json()["error"] == "invalid_grant"
    # Reuse detection still sees the spent (kept) token and ends the family.
    clock.at(21 * DAY + timedelta(minutes=1))
    assert (await refresh(http, spent["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await refresh(http, latest["refresh_token"])).json()["error"] == "invalid_grant"


async def test_grants_are_kept_two_days_after_they_end_or_are_revoked(
        flow: Flow, http: httpx.AsyncClient, provider: Provider, clients: None) -> None:
    clock = Clock(provider)
    revoked = await sign_in(flow)
    await revoke(http, revoked["refresh_token"])
    ended = await authorize_again(flow)
    grant_ids = {}
    for name, body in (("revoked", revoked), ("ended", ended)):
        stored = await provider.store.get_refresh_token(hash_secret(body["refresh_token"]))
        assert stored is not None
        grant_ids[name] = stored.grant_id

    async def present() -> set[str]:
        return {n for n, g in grant_ids.items() if await provider.store.get_grant(g) is not None}

    clock.at(2 * DAY - timedelta(minutes=1))
    await prune(provider)
    assert await present() == {"revoked", "ended"}
    clock.at(2 * DAY + timedelta(minutes=1))
    await prune(provider)
    assert await present() == {"ended"}
    # Its refresh token outlives the grant row (idle deadline, day 14): it is refused, not an error.
    assert await provider.store.get_refresh_token(hash_secret(revoked["refresh_token"])) is not None
    response = await refresh(http, revoked["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    clock.at(92 * DAY - timedelta(minutes=1))  # 90-day absolute end + 2 days
    await prune(provider)
    assert await present() == {"ended"}
    clock.at(92 * DAY + timedelta(minutes=1))
    await prune(provider)
    assert await present() == set()


async def test_the_serve_process_prunes_periodically(
        http: httpx.AsyncClient, provider: Provider, clients: None, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(provider)
    clock.at(-DAY)
    for _ in range(5):
        await service_token(http, "svc-opaque")
    clock.at(timedelta())
    live = await service_token(http, "svc-opaque")
    assert (await counts(provider))["access_tokens"] == 6
    monkeypatch.setattr(web_app, "HOUSEKEEPING_INTERVAL", 0.0)
    monkeypatch.setattr(provider.settings, "key_refresh_interval", 0.02)
    task = asyncio.create_task(web_app._background(provider))
    try:
        for _ in range(250):
            if (await counts(provider))["access_tokens"] == 1:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (await counts(provider))["access_tokens"] == 1
    assert await introspect_active(http, live, "svc-opaque")
