"""`bastion tokens revoke`, `bastion db prune`, and the revocation done by `clients delete` / `users delete`.

The CLI runs in-process as operators run it, against the same database as a running provider app
that issues real tokens over HTTP; both backends.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from bastion.cli import main
from bastion.config import Settings
from bastion.core import jose
from bastion.core.provider import Provider
from bastion.core.secrets import hash_secret
from bastion.store.sql import tables
from bastion.web.app import build_provider, create_app
from tests.conftest import ISSUER
from tests.web.flow import APP_REDIRECT, Flow, query

S = "c" * 40
PASSWORD = "correct horse battery"
SCOPE = "openid profile offline_access"
API = "https://api.example/jobs"
PER_TOKEN = (tables.authorization_codes, tables.access_tokens, tables.refresh_tokens, tables.sessions,
             tables.interactions, tables.grants, tables.rate_limits)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


async def cli(*argv: str) -> tuple[int, str, str]:
    """`bastion ARGV`: its own event loop (asyncio.run), so in a thread beside the test's loop."""
    return await asyncio.to_thread(_run, *argv)


@dataclass
class Op:
    """A provider app on the CLI's database, and one browser per user."""

    provider: Provider
    http: httpx.AsyncClient
    browsers: dict[str, Flow]

    async def user_id(self, username: str) -> str:
        user = await self.provider.store.get_user_by_username(username)
        assert user is not None
        return user.id

    async def authorize(self, username: str, client_id: str) -> dict[str, Any]:
        """A user's authorization of a client (login and consent as needed) and the code exchange."""
        flow = self.browsers[username]
        req = flow.request(client_id=client_id, scope=SCOPE)
        response = await flow.authorize(req)
        while not (response.status_code == 303 and response.headers["location"].startswith(APP_REDIRECT)):
            if response.status_code == 303:
                response = await flow.http.get(response.headers["location"])
            elif 'name="password"' in response.text:
                response = await flow.login(response, username=username, password=PASSWORD)
            else:
                assert 'value="allow"' in response.text, (response.status_code, response.text[:300])
                response = await flow.consent(response)
        code = query(response.headers["location"])["code"]
        token = await flow.exchange(code, req.verifier, client_id=client_id, secret=S)
        assert token.status_code == 200, token.text
        return dict(token.json())

    async def refresh(self, body: dict[str, Any], client_id: str) -> httpx.Response:
        return await self.http.post("/token", data={"grant_type": "refresh_token",
                                                    "refresh_token": body["refresh_token"]}, auth=(client_id, S))

    async def rotate(self, body: dict[str, Any], client_id: str) -> dict[str, Any]:
        response = await self.refresh(body, client_id)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def family_alive(self, body: dict[str, Any], client_id: str) -> bool:
        """Whether the family still refreshes; on success the body is rotated in place."""
        response = await self.refresh(body, client_id)
        if response.status_code == 200:
            body.update(response.json())
            return True
        assert response.json()["error"] in ("invalid_grant", "invalid_client"), response.text
        return False

    async def access_revoked(self, body: dict[str, Any]) -> bool:
        """The stored record of a user's JWT access token says revoked (directly or through its grant)."""
        jti = jose.verify(body["access_token"], self.provider.keys.verification_keys, ["RS256"],
                          typ="at+jwt").claims["jti"]
        record = await self.provider.store.get_access_token(jti=jti)
        assert record is not None
        return record.revoked_at is not None

    async def introspect(self, token: str, client_id: str = "api") -> bool:
        response = await self.http.post("/introspect", data={"token": token}, auth=(client_id, S))
        assert response.status_code == 200, response.text
        return bool(response.json()["active"])

    async def service_token(self, client_id: str = "svc", **form: str) -> str:
        response = await self.http.post("/token", data={"grant_type": "client_credentials", **form},
                                        auth=(client_id, S))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def counts(self) -> dict[str, int]:
        async with self.provider.store.engine.connect() as conn:  # type: ignore[attr-defined]
            return {t.name: int((await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one())
                    for t in PER_TOKEN}


@pytest.fixture
async def op(database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Op]:
    monkeypatch.setenv("BASTION_DATABASE_URL", database_url)
    monkeypatch.setenv("BASTION_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("BASTION_ISSUER", ISSUER)
    monkeypatch.setenv("BASTION_KEY_ENCRYPTION_SECRET", "k" * 48)
    assert (await cli("db", "upgrade"))[0] == 0
    for username in ("alice", "bob"):
        code, out, _ = await cli("users", "create", "--username", username, "--password", PASSWORD)
        assert code == 0 and f"created user {username}" in out
    for client_id in ("web", "other"):
        code, _, _ = await cli("clients", "create", "--client-id", client_id, "--secret", S, "--redirect-uri",
                               APP_REDIRECT, "--grant-type", "authorization_code", "--grant-type", "refresh_token",
                               "--resource", API)
        assert code == 0
    for argv in (("--client-id", "svc", "--grant-type", "client_credentials", "--scope", "jobs:read",
                  "--resource", API),
                 ("--client-id", "svc-opaque", "--grant-type", "client_credentials", "--scope", "jobs:read",
                  "--access-token-format", "opaque"),
                 ("--client-id", "api", "--grant-type", "client_credentials", "--resource", API,
                  "--permission", "introspect")):
        assert (await cli("clients", "create", "--secret", S, *argv))[0] == 0
    provider = await build_provider(Settings())
    app = create_app(provider=provider)
    try:
        async with (httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as alice,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as bob):
            yield Op(provider, http, {"alice": Flow(alice, provider), "bob": Flow(bob, provider)})
    finally:
        await provider.store.close()


async def test_tokens_revoke_for_one_client_then_for_all(op: Op) -> None:
    alice_web = await op.authorize("alice", "web")
    alice_other = await op.rotate(await op.authorize("alice", "other"), "other")  # a rotated family
    bob_web = await op.authorize("bob", "web")
    # A code issued before the revocation, redeemed after it.
    pending = op.browsers["alice"].request(client_id="web", scope=SCOPE)
    late_code = (await op.browsers["alice"].run(pending, expect_login=False, expect_consent=False))["code"]
    alice = await op.user_id("alice")

    code, out, _ = await cli("tokens", "revoke", "--user", "alice", "--client", "web")
    assert code == 0 and out.strip() == "revoked 2 grant(s) of alice to web"
    assert not await op.family_alive(alice_web, "web")
    assert await op.access_revoked(alice_web) and not await op.introspect(alice_web["access_token"], "web")
    late = await op.browsers["alice"].exchange(late_code, pending.verifier, client_id="web", secret=S)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert await op.provider.store.get_consent(alice, "web") is None  # next time, alice is asked again
    # Other clients' and other users' grants survive.
    assert await op.family_alive(alice_other, "other") and await op.family_alive(bob_web, "web")
    assert await op.introspect(alice_other["access_token"], "other")
    assert await op.provider.store.get_consent(alice, "other") is not None
    event = (await op.provider.store.list_audit_events())[0]  # type: ignore[attr-defined]
    assert event["event"] == "grants_revoked_by_operator"
    assert event["user_id"] == alice and event["client_id"] == "web" and "2 grant(s)" in event["detail"]

    code, out, _ = await cli("tokens", "revoke", "--user", "alice")
    assert code == 0 and out.strip() == "revoked 1 grant(s) of alice"
    assert not await op.family_alive(alice_other, "other")
    assert await op.access_revoked(alice_other) and not await op.introspect(alice_other["access_token"], "other")
    assert await op.family_alive(bob_web, "web") and not await op.access_revoked(bob_web)
    event = (await op.provider.store.list_audit_events())[0]  # type: ignore[attr-defined]
    assert event["event"] == "grants_revoked_by_operator" and event["client_id"] is None
    # Nothing left to revoke; alice may authorize again afresh.
    assert (await cli("tokens", "revoke", "--user", "alice"))[1].strip() == "revoked 0 grant(s) of alice"
    again = await op.authorize("alice", "web")
    assert await op.family_alive(again, "web")

    events = len(await op.provider.store.list_audit_events())  # type: ignore[attr-defined]
    code, out, err = await cli("tokens", "revoke", "--user", "mallory")
    assert code == 1 and out == "" and "no user 'mallory'" in err
    assert len(await op.provider.store.list_audit_events()) == events  # type: ignore[attr-defined]


async def test_db_prune_deletes_what_expired_and_nothing_live(op: Op) -> None:
    real_now = op.provider.clock
    op.provider.clock = lambda: real_now() - timedelta(days=100)  # issued 100 days ago, all expired by now
    old = await op.authorize("alice", "web")
    await op.rotate(old, "web")
    for _ in range(3):
        await op.service_token("svc-opaque")
    op.provider.clock = real_now
    op.browsers["bob"].http.cookies.clear()
    live = await op.authorize("bob", "other")
    live_opaque = await op.service_token("svc-opaque")
    before = await op.counts()

    code, out, _ = await cli("db", "prune")
    after = await op.counts()
    deleted = sum(before.values()) - sum(after.values())
    # alice's code, session, interaction and grant; 2 access + 3 opaque tokens; 2 refresh tokens.
    assert code == 0 and out.strip() == f"deleted {deleted} expired record(s)" and deleted == 11
    assert after == {"authorization_codes": 1, "access_tokens": 2, "refresh_tokens": 1, "sessions": 1,
                     "interactions": 1, "grants": 1, "rate_limits": 1}
    assert await op.family_alive(live, "other") and await op.introspect(live_opaque, "svc-opaque")
    assert not await op.family_alive(old, "web")
    assert (await cli("db", "prune"))[1].strip() == "deleted 0 expired record(s)"


async def test_deleting_a_client_or_a_user_revokes_their_tokens(op: Op) -> None:
    alice_web = await op.authorize("alice", "web")
    alice_other = await op.authorize("alice", "other")
    bob_web = await op.authorize("bob", "web")
    bob_other = await op.authorize("bob", "other")
    opaque = await op.service_token("svc-opaque")
    assert await op.provider.store.get_access_token(token_hash=hash_secret(opaque)) is not None

    code, out, _ = await cli("clients", "delete", "web")
    assert code == 0 and "deleted client web and revoked its grants" in out
    for body in (alice_web, bob_web):
        assert not await op.family_alive(body, "web")  # whether or not this process still caches "web"
        assert await op.access_revoked(body) and not await op.introspect(body["access_token"])
    assert await op.family_alive(alice_other, "other") and await op.family_alive(bob_other, "other")
    code, _, _ = await cli("clients", "delete", "svc-opaque")
    assert code == 0
    record = await op.provider.store.get_access_token(token_hash=hash_secret(opaque))
    assert record is not None and record.revoked_at is not None
    code, _, err = await cli("clients", "delete", "web")
    assert code == 1 and "no client 'web'" in err

    alice = await op.user_id("alice")
    code, out, _ = await cli("users", "delete", "alice")
    assert code == 0 and "deleted user alice" in out
    assert not await op.family_alive(alice_other, "other")
    assert await op.access_revoked(alice_other) and not await op.introspect(alice_other["access_token"], "other")
    async with op.provider.store.engine.connect() as conn:  # type: ignore[attr-defined]
        sessions = await conn.execute(sa.select(sa.func.count()).select_from(tables.sessions)
                                      .where(tables.sessions.c.user_id == alice))
        assert sessions.scalar_one() == 0  # alice's browser is signed out
    assert await op.family_alive(bob_other, "other") and await op.introspect(bob_other["access_token"], "other")
    code, _, err = await cli("users", "delete", "alice")
    assert code == 1 and "no user 'alice'" in err


async def test_deleting_a_client_ends_its_client_credentials_jwts(op: Op) -> None:
    token = await op.service_token("svc", resource=API)
    assert await op.introspect(token)  # the resource server "api" sees it
    assert (await cli("clients", "delete", "svc"))[0] == 0
    assert not await op.introspect(token)



async def test_tokens_revoke_names_an_unknown_client(op: Op) -> None:
    code, _, err = await cli("tokens", "revoke", "--user", "alice", "--client", "no-such-client")
    assert code == 1 and "no client 'no-such-client'" in err
