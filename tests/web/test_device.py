"""The device authorization grant (RFC 8628): every polling outcome, the verification page, throttling."""

from __future__ import annotations

import re
import time
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
from tests.conftest import ISSUER, on_both_backends
from tests.web.flow import hidden

pytestmark = on_both_backends
GRANT = "urn:ietf:params:oauth:grant-type:device_code"
S = "d" * 40


@pytest.fixture
async def tv(provider: Provider) -> Client:
    client = Client(client_id="tv", client_name="Living Room TV", redirect_uris=(), token_endpoint_auth_method="none",
                    application_type="native", grant_types=(GRANT, "refresh_token"), created_at=provider.now())
    await provider.store.create_client(client)
    await provider.store.create_client(Client(
        client_id="console", client_name="Console", redirect_uris=(), secret_hash=hash_secret(S),
        grant_types=(GRANT,), created_at=provider.now()))
    return client


async def start(http: httpx.AsyncClient, scope: str = "openid profile offline_access",
                client_id: str = "tv") -> dict[str, Any]:
    response = await http.post("/device_authorization", data={"client_id": client_id, "scope": scope})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


async def poll(http: httpx.AsyncClient, device_code: str, client_id: str = "tv") -> httpx.Response:
    return await http.post("/token", data={"grant_type": GRANT, "device_code": device_code, "client_id": client_id})


def advance(provider: Provider, seconds: float) -> None:
    real_now = provider.clock
    provider.clock = lambda: real_now() + timedelta(seconds=seconds)


async def approve(http: httpx.AsyncClient, user_code: str, decision: str = "allow",
                  password: str = "correct horse battery") -> httpx.Response:
    page = await http.get("/device", params={"user_code": user_code})
    assert f'value="{user_code}"' in page.text  # prefilled from verification_uri_complete
    login = await http.post("/device", data={"user_code": user_code, "csrf_token": hidden(page.text, "csrf_token")})
    assert 'name="password"' in login.text, login.text[:400]
    consent = await http.post("/device", data={"user_code": user_code, "username": "alice", "password": password,
                                               "csrf_token": hidden(login.text, "csrf_token")})
    assert "Living Room TV" in consent.text and user_code in consent.text, consent.text[:400]
    assert "Signed in as <strong>alice</strong>" in consent.text
    decided = await http.post("/device", data={"user_code": user_code, "decision": decision,
                                               "csrf_token": hidden(consent.text, "csrf_token")})
    # Post/redirect/get: a reload of the result page re-sends nothing.
    assert decided.status_code == 303 and decided.headers["location"].startswith("/device/done")
    return await http.get(decided.headers["location"])


async def test_device_authorization_response(http: httpx.AsyncClient, tv: Client, provider: Provider) -> None:
    body = await start(http)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", body["user_code"])
    assert len(body["device_code"]) >= 43
    assert body["verification_uri"] == f"{ISSUER}/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600 and body["interval"] == 5
    async with provider.store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = (await conn.execute(sa.select(tables.device_authorizations))).all()
    assert body["device_code"] not in repr(rows)
    meta = (await http.get("/.well-known/openid-configuration")).json()
    assert meta["device_authorization_endpoint"] == f"{ISSUER}/device_authorization" and GRANT in meta[
        "grant_types_supported"]


async def test_clients_without_the_grant_or_scope_are_refused(http: httpx.AsyncClient, tv: Client) -> None:
    response = await http.post("/device_authorization", data={"client_id": "native", "scope": "openid"})
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    response = await http.post("/device_authorization", data={"client_id": "tv", "scope": "bogus"})
    assert response.json()["error"] == "invalid_scope"
    response = await http.post("/device_authorization", data={"client_id": "console", "scope": "openid"})
    assert response.status_code == 401  # a confidential client must authenticate


async def test_full_approval_gives_the_code_flow_token_response(
        http: httpx.AsyncClient, tv: Client, provider: Provider) -> None:
    body = await start(http)
    pending = await poll(http, body["device_code"])
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending"
    done = await approve(http, body["user_code"])
    assert done.status_code == 200 and "Device connected" in done.text
    advance(provider, 6)
    tokens = await poll(http, body["device_code"])
    assert tokens.status_code == 200, tokens.text
    payload = tokens.json()
    assert {"access_token", "id_token", "refresh_token"} <= set(payload) and payload["token_type"] == "Bearer"
    claims = jose.verify(payload["id_token"], provider.keys.verification_keys, ["RS256"]).claims
    assert claims["sub"] == "user-alice" and claims["aud"] == "tv"
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {payload['access_token']}"})
    assert info.json()["name"] == "Alice Liddell"
    # Single use.
    advance(provider, 12)
    assert (await poll(http, body["device_code"])).json()["error"] == "invalid_grant"


async def test_slow_down_grows_the_interval(http: httpx.AsyncClient, tv: Client, provider: Provider) -> None:
    body = await start(http)
    assert (await poll(http, body["device_code"])).json()["error"] == "authorization_pending"
    assert (await poll(http, body["device_code"])).json()["error"] == "slow_down"  # at once: too fast
    advance(provider, 6)  # the old interval (5 s) is no longer enough: it is 10 s now
    assert (await poll(http, body["device_code"])).json()["error"] == "slow_down"
    advance(provider, 6 + 16)  # past 15 s since the last poll
    assert (await poll(http, body["device_code"])).json()["error"] == "authorization_pending"


async def test_denial_expiry_and_client_binding(http: httpx.AsyncClient, tv: Client, provider: Provider) -> None:
    denied = await start(http)
    assert "Request denied" in (await approve(http, denied["user_code"], decision="deny")).text
    response = await poll(http, denied["device_code"])
    assert response.status_code == 400 and response.json()["error"] == "access_denied"

    other = await start(http)
    stolen = await http.post("/token", data={"grant_type": GRANT, "device_code": other["device_code"]},
                             auth=("console", S))
    assert stolen.json()["error"] == "invalid_grant"

    advance(provider, 601)
    assert (await poll(http, other["device_code"])).json()["error"] == "expired_token"


async def test_the_page_explains_wrong_expired_and_used_codes(http: httpx.AsyncClient, tv: Client,
                                                               provider: Provider) -> None:
    page = await http.get("/device")
    csrf = hidden(page.text, "csrf_token")
    wrong = await http.post("/device", data={"user_code": "BBBB-BBBB", "csrf_token": csrf})
    assert wrong.status_code == 400 and "not valid" in wrong.text
    used = await start(http)
    await approve(http, used["user_code"])
    again = await http.post("/device", data={"user_code": used["user_code"].lower(), "csrf_token": csrf})
    assert "already used" in again.text
    expiring = await start(http)
    advance(provider, 601)
    expired = await http.post("/device", data={"user_code": expiring["user_code"].replace("-", " "),
                                               "csrf_token": csrf})
    assert "expired" in expired.text
    assert (await http.post("/device", data={"user_code": "BBBB-BBBB"})).status_code == 400  # no CSRF token
    assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in page.headers[
        "content-security-policy"]


async def test_wrong_codes_are_throttled_even_for_a_right_guess(http: httpx.AsyncClient, tv: Client) -> None:
    live = await start(http)
    page = await http.get("/device")
    csrf = hidden(page.text, "csrf_token")
    for _ in range(5):
        assert (await http.post("/device", data={"user_code": "BBBB-BBBB", "csrf_token": csrf})).status_code == 400
    blocked = await http.post("/device", data={"user_code": live["user_code"], "csrf_token": csrf})
    assert blocked.status_code == 429 and "Too many wrong codes" in blocked.text


async def test_bastion_device_login_completes_against_the_provider(
        http: httpx.AsyncClient, tv: Client, provider: Provider) -> None:
    """The CLI's device-login flow, end to end against the real app: the "user" approves while it polls."""
    import io

    from bastion.device_login import run_device_login

    out = io.StringIO()
    browser = httpx.AsyncClient(transport=http._transport, base_url=ISSUER)
    slept: list[float] = []
    elapsed = 0.0

    async def sleep(seconds: float) -> None:
        nonlocal elapsed
        slept.append(seconds)
        elapsed += seconds
        advance(provider, seconds)
        if len(slept) == 2:  # the user approves on their phone between two polls
            user_code = re.search(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", out.getvalue())
            assert user_code is not None
            await approve(browser, user_code.group(0))

    start = time.time()
    async with browser:
        tokens = await run_device_login(ISSUER, "tv", scope="openid profile", out=out, http=http, sleep=sleep,
                                        clock=lambda: start + elapsed)
    assert slept[:2] == [5, 5]
    assert tokens.subject == "user-alice"  # from the ID token, verified against the provider's keys
    assert '"sub": "user-alice"' in out.getvalue() and tokens.access_token not in out.getvalue()
