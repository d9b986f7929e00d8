"""The storage contract (`bastion.store.base.Store`), run against every backend.

Each test gets a freshly migrated database (`database_url`: SQLite and PostgreSQL) and talks to it
only through the `Store` protocol. Both backends keep datetimes to the microsecond and hand them
back timezone-aware in UTC; expiry is exclusive (`expires_at == now` counts as expired everywhere).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bastion.core.keys import StoredKey
from bastion.core.models import (
    AccessTokenRecord,
    AuthorizationCode,
    BrowserSession,
    Client,
    Consent,
    DeviceAuthorization,
    Grant,
    Interaction,
    RefreshToken,
    User,
)
from bastion.store.base import DuplicateError, Store
from bastion.store.sql import create_store

SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
RACERS = 20


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    built: Store = create_store(database_url)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
def now() -> datetime:
    # Never a whole second, so that a backend truncating to seconds would show.
    current = datetime.now(UTC)
    return current.replace(microsecond=current.microsecond or 123456)


# Record builders: minimal valid records, any field overridable.

def client(client_id: str = "app", **fields: Any) -> Client:
    values: dict[str, Any] = {"client_name": f"{client_id} name", "redirect_uris": (f"https://{client_id}.example/cb",),
                              "created_at": datetime.now(UTC)}
    return Client(client_id=client_id, **(values | fields))


def user(user_id: str = "u-alice", username: str = "alice", **fields: Any) -> User:
    created_at = datetime.now(UTC)
    values: dict[str, Any] = {"password_hash": "$argon2id$fake", "created_at": created_at, "updated_at": created_at}
    return User(id=user_id, username=username, **(values | fields))


def grant(grant_id: str, now: datetime, client_id: str = "app", user_id: str = "u-alice") -> Grant:
    return Grant(grant_id=grant_id, client_id=client_id, user_id=user_id, scope=("openid", "email"), created_at=now)


def code(code_hash: str, now: datetime, grant_id: str = "g1", **fields: Any) -> AuthorizationCode:
    values: dict[str, Any] = {"client_id": "app", "user_id": "u-alice", "redirect_uri": "https://app.example/cb",
                              "code_challenge": "c" * 43, "scope": ("openid",), "auth_time": now,
                              "expires_at": now + timedelta(minutes=1)}
    return AuthorizationCode(code_hash=code_hash, grant_id=grant_id, **(values | fields))


def token(jti: str, now: datetime, grant_id: str | None = "g1", **fields: Any) -> AccessTokenRecord:
    values: dict[str, Any] = {"client_id": "app", "user_id": "u-alice", "scope": ("openid", "email"),
                              "expires_at": now + HOUR}
    return AccessTokenRecord(jti=jti, grant_id=grant_id, **(values | fields))


def session(session_hash: str, now: datetime, user_id: str = "u-alice", **fields: Any) -> BrowserSession:
    values: dict[str, Any] = {"auth_time": now, "expires_at": now + HOUR}
    return BrowserSession(session_hash=session_hash, user_id=user_id, **(values | fields))


def interaction(uid: str, now: datetime, **fields: Any) -> Interaction:
    values: dict[str, Any] = {"binding_hash": "b" * 64, "request": {"client_id": "app", "scope": "openid"},
                              "created_at": now, "expires_at": now + timedelta(minutes=10)}
    return Interaction(uid=uid, **(values | fields))


def key(kid: str, now: datetime, alg: str = "RS256", **fields: Any) -> StoredKey:
    values: dict[str, Any] = {"encrypted_private_key": b"\x01" + kid.encode() + b"\x00\xff" * 8, "created_at": now}
    return StoredKey(kid=kid, alg=alg, **(values | fields))


async def grant_with_token(store: Store, now: datetime, grant_id: str, jti: str, *,
                           client_id: str = "app", user_id: str = "u-alice") -> None:
    await store.create_grant(grant(grant_id, now, client_id=client_id, user_id=user_id))
    await store.record_access_token(token(jti, now, grant_id=grant_id, client_id=client_id, user_id=user_id))
    assert await store.get_active_access_token(jti, now) is not None


# Clients

async def test_client_round_trips_every_field(store: Store, now: datetime) -> None:
    full = Client(
        client_id="full", client_name="Fülle Client ✓", redirect_uris=("https://a.example/cb", "https://b.example/cb"),
        token_endpoint_auth_method="client_secret_post", secret_hash="f" * 64,
        post_logout_redirect_uris=("https://a.example/bye",), grant_types=("authorization_code", "refresh_token"),
        scope=("openid", "email", "offline_access"), application_type="native",
        id_token_signed_response_alg="ES256", created_at=now,
    )
    public = client("public", token_endpoint_auth_method="none", redirect_uris=(), created_at=now)
    assert list(await store.list_clients()) == []
    await store.create_client(full)
    await store.create_client(public)
    assert await store.get_client("full") == full
    assert await store.get_client("public") == public
    assert await store.get_client("missing") is None
    assert await store.get_client("FULL") is None

    # Scope is a set (RFC 6749 §3.3): duplicates collapse, the order is the store's.
    await store.create_client(client("alpha", scope=("email", "openid", "email", "profile")))
    stored = await store.get_client("alpha")
    assert stored is not None
    assert sorted(stored.scope) == ["email", "openid", "profile"]

    assert [c.client_id for c in await store.list_clients()] == ["alpha", "full", "public"]
    assert (await store.list_clients())[1] == full


async def test_duplicates_are_rejected_and_the_original_kept(store: Store) -> None:
    original = client("app", client_name="Original")
    await store.create_client(original)
    with pytest.raises(DuplicateError):
        await store.create_client(client("app", client_name="Impostor"))
    assert await store.get_client("app") == original
    assert len(await store.list_clients()) == 1

    alice = user("u-alice", "alice")
    await store.create_user(alice)
    with pytest.raises(DuplicateError):
        await store.create_user(user("u-other", "alice"))
    with pytest.raises(DuplicateError):
        await store.create_user(user("u-alice", "someone-else"))
    assert await store.get_user_by_username("alice") == alice
    assert await store.get_user_by_username("someone-else") is None
    assert await store.get_user("u-other") is None
    assert [u.id for u in await store.list_users()] == ["u-alice"]

    # Only a unique-key clash is a DuplicateError (not, say, a missing NOT NULL value), even for
    # names that read like one.
    for record in (client("unique-duplicate key", created_at=None),
                   user("unique", "duplicate key value violates unique constraint", created_at=None)):
        with pytest.raises(Exception) as raised:
            if isinstance(record, Client):
                await store.create_client(record)
            else:
                await store.create_user(record)
        assert not isinstance(raised.value, DuplicateError), raised.value


async def test_delete_client_revokes_its_grants_and_consents_only(store: Store, now: datetime) -> None:
    await store.create_client(client("app"))
    await store.create_client(client("other"))
    await grant_with_token(store, now, "g-app-1", "at-app-1")
    await grant_with_token(store, now, "g-app-2", "at-app-2", user_id="u-bob")
    await grant_with_token(store, now, "g-other", "at-other", client_id="other")
    await store.save_consent(Consent("u-alice", "app", ("openid",), now))
    await store.save_consent(Consent("u-alice", "other", ("openid",), now))

    assert await store.delete_client("app", now) is True
    assert await store.get_client("app") is None
    assert [c.client_id for c in await store.list_clients()] == ["other"]
    assert await store.get_active_access_token("at-app-1", now) is None
    assert await store.get_active_access_token("at-app-2", now) is None
    assert await store.get_consent("u-alice", "app") is None
    # Nothing of the other client's is touched.
    assert await store.get_active_access_token("at-other", now) is not None
    assert await store.get_consent("u-alice", "other") is not None
    # A token recorded later from a grant of the deleted client is born inactive.
    await store.record_access_token(token("at-app-late", now, grant_id="g-app-1"))
    assert await store.get_active_access_token("at-app-late", now) is None

    assert await store.delete_client("app", now) is False
    assert await store.delete_client("never-existed", now) is False

    # A client re-registered under the same id inherits nothing.
    await store.create_client(client("app", client_name="Second life"))
    assert await store.get_consent("u-alice", "app") is None
    assert await store.get_active_access_token("at-app-1", now) is None


async def test_delete_client_deactivates_its_tokens_without_grant(store: Store, now: datetime) -> None:
    await store.create_client(client("app"))
    await store.record_access_token(token("at-no-grant", now, grant_id=None, user_id=None))
    assert await store.get_active_access_token("at-no-grant", now) is not None
    await store.delete_client("app", now)
    assert await store.get_active_access_token("at-no-grant", now) is None


# Users

async def test_user_round_trips_with_json_claims(store: Store, now: datetime) -> None:
    claims = {
        "email": "alice@example.com", "email_verified": True, "name": "Alîce Lïddell 🐇",
        "address": {"country": "UK", "locality": "Oxford", "lines": ["1 Rabbit Hole", None]},
        "age": 7, "height": 1.21,
    }
    alice = user(claims=claims, created_at=now, updated_at=now + SECOND)
    assert list(await store.list_users()) == []
    await store.create_user(alice)
    assert await store.get_user("u-alice") == alice
    assert await store.get_user_by_username("alice") == alice
    assert await store.get_user("alice") is None
    assert await store.get_user_by_username("u-alice") is None
    assert await store.get_user_by_username("bob") is None

    # Without updated_at, the user was last updated when created.
    await store.create_user(user("u-carol", "carol", created_at=now, updated_at=None))
    carol = await store.get_user("u-carol")
    assert carol is not None
    assert carol.claims == {}
    assert carol.updated_at == carol.created_at == now

    await store.create_user(user("u-bob", "bob"))
    assert [u.username for u in await store.list_users()] == ["alice", "bob", "carol"]
    assert (await store.list_users())[0] == alice


async def test_concurrent_creates_of_one_username_let_exactly_one_win(store: Store) -> None:
    results = await asyncio.gather(
        *(store.create_user(user(f"u-{i}", "alice")) for i in range(10)), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, DuplicateError) for r in results if r is not None), results
    assert len(await store.list_users()) == 1


async def test_delete_user_ends_sessions_revokes_grants_and_forgets_consent(store: Store, now: datetime) -> None:
    await store.create_user(user("u-alice", "alice"))
    await store.create_user(user("u-bob", "bob"))
    await store.create_session(session("s-alice-1", now))
    await store.create_session(session("s-alice-2", now))
    await store.create_session(session("s-bob", now, user_id="u-bob"))
    await grant_with_token(store, now, "g-alice", "at-alice")
    await grant_with_token(store, now, "g-bob", "at-bob", user_id="u-bob")
    await store.save_consent(Consent("u-alice", "app", ("openid",), now))
    await store.save_consent(Consent("u-bob", "app", ("openid",), now))

    assert await store.delete_user("u-alice", now) is True
    assert await store.get_user("u-alice") is None
    assert await store.get_user_by_username("alice") is None
    assert await store.get_session("s-alice-1", now) is None
    assert await store.get_session("s-alice-2", now) is None
    assert await store.get_active_access_token("at-alice", now) is None
    assert await store.get_consent("u-alice", "app") is None
    await store.record_access_token(token("at-alice-late", now, grant_id="g-alice"))
    assert await store.get_active_access_token("at-alice-late", now) is None
    # Bob is untouched.
    assert await store.get_session("s-bob", now) is not None
    assert await store.get_active_access_token("at-bob", now) is not None
    assert await store.get_consent("u-bob", "app") is not None
    assert [u.username for u in await store.list_users()] == ["bob"]

    assert await store.delete_user("u-alice", now) is False
    # The username is free again; the new account is a different subject.
    await store.create_user(user("u-alice-2", "alice"))
    assert (await store.get_user_by_username("alice")) == await store.get_user("u-alice-2")


# Signing keys

async def test_added_keys_are_listed_oldest_first_and_round_trip(store: Store, now: datetime) -> None:
    assert list(await store.list_keys(now)) == []
    newer = key("k-new", now, alg="ES256")
    older = key("k-old", now - HOUR, encrypted_private_key=bytes(range(256)))
    await store.add_key(newer, retire_others_at=None)
    await store.add_key(older, retire_others_at=None)
    assert list(await store.list_keys(now)) == [older, newer]

    # retire_at is exclusive: listed before it, gone from that instant.
    await store.add_key(key("future", now + SECOND, retire_at=now + SECOND), retire_others_at=None)
    await store.add_key(key("past", now - HOUR, retire_at=now - SECOND), retire_others_at=None)
    assert [k.kid for k in await store.list_keys(now)] == ["k-old", "k-new", "future"]
    assert [k.kid for k in await store.list_keys(now + SECOND)] == ["k-old", "k-new"]


async def test_retire_others_at_retires_same_algorithm_keys_at_that_time(store: Store, now: datetime) -> None:
    await store.add_key(key("rs-1", now - 2 * HOUR), retire_others_at=None)
    await store.add_key(key("es-1", now - 2 * HOUR, alg="ES256"), retire_others_at=None)
    await store.add_key(key("rs-soon", now - HOUR, retire_at=now + 10 * SECOND), retire_others_at=None)
    retire_at = now + HOUR
    await store.add_key(key("rs-2", now), retire_others_at=retire_at)

    listed = {k.kid: k for k in await store.list_keys(now)}
    assert set(listed) == {"rs-1", "es-1", "rs-soon", "rs-2"}
    assert listed["rs-1"].retire_at == retire_at        # the other RS256 key keeps verifying until then
    assert listed["rs-2"].retire_at is None             # the new key is not retired by its own rotation
    assert listed["es-1"].retire_at is None             # another algorithm's key is not rotated
    assert listed["rs-soon"].retire_at == now + 10 * SECOND  # an earlier retirement is not postponed

    later = {k.kid for k in await store.list_keys(now + 20 * SECOND)}
    assert later == {"rs-1", "es-1", "rs-2"}
    # A key is gone from the moment its retire_at is reached.
    assert {k.kid for k in await store.list_keys(retire_at)} == {"es-1", "rs-2"}
    assert {k.kid for k in await store.list_keys(retire_at - timedelta(microseconds=1))} == {"rs-1", "es-1", "rs-2"}


# Browser sessions

async def test_session_round_trip_expiry_and_delete(store: Store, now: datetime) -> None:
    live = session("s-live", now - HOUR, amr=("pwd", "otp"), expires_at=now + SECOND)
    await store.create_session(live)
    await store.create_session(session("s-edge", now, expires_at=now))
    await store.create_session(session("s-old", now, expires_at=now - SECOND))
    assert await store.get_session("s-live", now) == live
    assert await store.get_session("s-edge", now) is None
    assert await store.get_session("s-old", now) is None
    assert await store.get_session("s-old", now - HOUR) is not None  # still stored until delete_expired
    assert await store.get_session("s-live", now + SECOND) is None
    assert await store.get_session("missing", now) is None

    await store.delete_session("s-live")
    assert await store.get_session("s-live", now) is None
    await store.delete_session("s-live")
    await store.delete_session("missing")

    # A naive datetime is refused, never stored in some unknown zone.
    with pytest.raises(Exception, match="naive"):
        await store.create_session(session("s-naive", now, expires_at=now.replace(tzinfo=None)))
    assert await store.get_session("s-naive", now - HOUR) is None


# Interactions

async def test_interaction_round_trip_and_expiry(store: Store, now: datetime) -> None:
    request = {"client_id": "app", "scope": "openid email", "claims": {"userinfo": {"email": None}},
               "max_age": 0, "prompt": ["login", "consent"]}
    pending = interaction("i-1", now, request=request)
    await store.create_interaction(pending)
    await store.create_interaction(interaction("i-old", now - HOUR, expires_at=now))
    assert await store.get_interaction("i-1", now) == pending
    assert await store.get_interaction("i-1", pending.expires_at) is None
    assert await store.get_interaction("i-old", now) is None
    assert await store.get_interaction("missing", now) is None

    # update_interaction records who acted, and sets only the flags it is given.
    await store.update_interaction("i-1", user_id="u-alice")
    stored = await store.get_interaction("i-1", now)
    assert stored is not None
    assert (stored.user_id, stored.login_at, stored.consent_given) == ("u-alice", None, False)

    login_at = now + SECOND
    await store.update_interaction("i-1", user_id="u-alice", login_at=login_at)
    stored = await store.get_interaction("i-1", now)
    assert stored is not None
    assert (stored.login_at, stored.consent_given) == (login_at, False)

    await store.update_interaction("i-1", user_id="u-bob", consent_given=True)
    stored = await store.get_interaction("i-1", now)
    assert stored is not None
    assert (stored.user_id, stored.login_at, stored.consent_given) == ("u-bob", login_at, True)

    await store.update_interaction("i-1", user_id="u-alice", login_at=now + 2 * SECOND, consent_given=False)
    assert await store.get_interaction("i-1", now) == interaction("i-1", now, request=request,
                                                                  login_at=now + 2 * SECOND, user_id="u-alice")
    await store.update_interaction("missing", user_id="u-alice", login_at=now)


async def test_consume_interaction_succeeds_once_however_many_race(store: Store, now: datetime) -> None:
    await store.create_interaction(interaction("i-1", now))
    await store.create_interaction(interaction("i-2", now))
    assert await store.consume_interaction("i-1") is True
    assert await store.consume_interaction("i-1") is False
    assert await store.get_interaction("i-1", now) is None
    assert await store.get_interaction("i-2", now) is not None
    assert await store.consume_interaction("missing") is False

    await store.create_interaction(interaction("i-race", now))
    results = await asyncio.gather(*(store.consume_interaction("i-race") for _ in range(RACERS)))
    assert results.count(True) == 1


# Consent

async def test_save_consent_replaces_and_is_per_user_and_client(store: Store, now: datetime) -> None:
    assert await store.get_consent("u-alice", "app") is None
    first = Consent("u-alice", "app", ("openid", "email"), now)
    await store.save_consent(first)
    assert await store.get_consent("u-alice", "app") == first

    second = Consent("u-alice", "app", ("openid", "profile", "phone"), now + HOUR)
    await store.save_consent(second)
    assert await store.get_consent("u-alice", "app") == second

    narrower = Consent("u-alice", "app", ("openid",), now + 2 * HOUR)
    await store.save_consent(narrower)
    assert await store.get_consent("u-alice", "app") == narrower

    assert await store.get_consent("u-bob", "app") is None
    assert await store.get_consent("u-alice", "other") is None


async def test_concurrent_save_consent_of_one_pair_all_succeed(store: Store, now: datetime) -> None:
    # Two tabs submitting the consent form at once, for a first consent (alice) and a changed one (bob).
    await store.save_consent(Consent("u-bob", "app", ("openid",), now))
    for user_id in ("u-alice", "u-bob"):
        results = await asyncio.gather(
            *(store.save_consent(Consent(user_id, "app", ("openid", "email"), now + i * SECOND)) for i in range(10)),
            return_exceptions=True)
        assert [r for r in results if r is not None] == [], user_id
        stored = await store.get_consent(user_id, "app")
        assert stored is not None
        assert stored.scope == ("openid", "email")


# Grants and authorization codes

async def test_authorization_code_round_trips_every_field(store: Store, now: datetime) -> None:
    cest = timezone(timedelta(hours=2))
    claims = {"userinfo": {"email": {"essential": True}, "name": None},
              "id_token": {"acr": {"values": ["urn:acr:1", "urn:acr:2"]}, "auth_time": {"essential": True}}}
    full = code(
        "h-full", now, client_id="app", user_id="u-alice", redirect_uri="https://app.example/cb?x=1&y=ü",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", scope=("openid", "email", "offline_access"),
        nonce="n-0S6_WzA2Mj", claims=claims, acr="urn:acr:2", amr=("pwd", "otp"), session_id="sid-1",
        auth_time=(now - timedelta(minutes=5)).astimezone(cest), expires_at=now + timedelta(seconds=60),
    )
    minimal = code("h-min", now, scope=("openid",))
    await store.create_grant(grant("g1", now))
    await store.save_authorization_code(full)
    await store.save_authorization_code(minimal)

    stored = await store.get_authorization_code("h-full")
    assert stored == full
    assert stored is not None
    assert stored.amr == ("pwd", "otp")
    assert stored.claims == claims
    assert stored.consumed_at is None
    # Datetimes: timezone-aware, in UTC, to the microsecond - whatever zone they were given in.
    for value, given in ((stored.auth_time, full.auth_time), (stored.expires_at, full.expires_at)):
        assert value.utcoffset() == timedelta(0)
        assert value == given
        assert value.microsecond == given.microsecond != 0

    stored_minimal = await store.get_authorization_code("h-min")
    assert stored_minimal == minimal
    assert stored_minimal is not None
    assert (stored_minimal.nonce, stored_minimal.claims, stored_minimal.acr, stored_minimal.amr,
            stored_minimal.session_id) == (None, None, None, (), None)
    assert await store.get_authorization_code("missing") is None


async def test_consume_authorization_code_once(store: Store, now: datetime) -> None:
    await store.save_authorization_code(code("h1", now))
    await store.save_authorization_code(code("h2", now))
    consumed_at = now + 3 * SECOND
    assert await store.consume_authorization_code("h1", consumed_at) is True
    assert await store.consume_authorization_code("h1", consumed_at + SECOND) is False
    stored = await store.get_authorization_code("h1")
    assert stored is not None
    assert stored.consumed_at == consumed_at  # the first consumption's time, kept
    assert stored == code("h1", now, consumed_at=consumed_at)
    untouched = await store.get_authorization_code("h2")
    assert untouched is not None
    assert untouched.consumed_at is None
    assert await store.consume_authorization_code("missing", now) is False


async def test_concurrent_code_consumes_let_exactly_one_win(store: Store, now: datetime) -> None:
    # What keeps a stolen code from being redeemed alongside the client: a compare-and-set in the store.
    await store.save_authorization_code(code("h-race", now))
    results = await asyncio.gather(
        *(store.consume_authorization_code("h-race", now + i * timedelta(milliseconds=1)) for i in range(RACERS)))
    assert results.count(True) == 1
    assert results.count(False) == RACERS - 1
    stored = await store.get_authorization_code("h-race")
    assert stored is not None
    winner = results.index(True)
    assert stored.consumed_at == now + winner * timedelta(milliseconds=1)


async def test_a_redeemed_code_records_its_tokens_and_a_lost_race_records_none(store: Store, now: datetime) -> None:
    alice = user()
    await store.create_user(alice)
    await store.create_grant(grant("g1", now))
    await store.save_authorization_code(code("h1", now))
    assert await store.get_authorization_code_with_grant("h1") == (code("h1", now), await store.get_grant("g1"), alice)
    assert await store.get_authorization_code_with_grant("missing") is None

    access, rt = token("at-1", now, token_hash="a" * 64), refresh("rt-1", now)
    assert await store.consume_authorization_code("h1", now, access, rt) is True
    assert await store.get_access_token(jti="at-1") == access and await store.get_refresh_token("rt-1") == rt
    assert await store.consume_authorization_code("h1", now, token("at-2", now), refresh("rt-2", now)) is False
    assert await store.get_access_token(jti="at-2") is None and await store.get_refresh_token("rt-2") is None

    # Atomic: when the tokens cannot be recorded, the code is not consumed either.
    await store.save_authorization_code(code("h2", now))
    with pytest.raises(Exception):  # noqa: B017 - the access token's jti is taken
        await store.consume_authorization_code("h2", now, token("at-1", now), None)
    stored = await store.get_authorization_code("h2")
    assert stored is not None and stored.consumed_at is None


async def test_revoke_grant_deactivates_its_tokens_past_and_future(store: Store, now: datetime) -> None:
    await grant_with_token(store, now, "g1", "at-1a")
    await store.record_access_token(token("at-1b", now, grant_id="g1"))
    await grant_with_token(store, now, "g2", "at-2")

    await store.revoke_grant("g1", now)
    assert await store.get_active_access_token("at-1a", now) is None
    assert await store.get_active_access_token("at-1b", now) is None
    assert await store.get_active_access_token("at-2", now) is not None
    # A token recorded after the revocation (say, by a redemption that lost the race) is never active.
    await store.record_access_token(token("at-1c", now, grant_id="g1"))
    assert await store.get_active_access_token("at-1c", now) is None

    await store.revoke_grant("g1", now + HOUR)  # idempotent
    await store.revoke_grant("missing", now)
    assert await store.get_active_access_token("at-1c", now) is None
    assert await store.get_active_access_token("at-2", now) is not None

    # A grant stored already revoked issues only inactive tokens too.
    await store.create_grant(Grant("g-dead", "app", "u-alice", ("openid",), now, revoked_at=now))
    await store.record_access_token(token("at-dead", now, grant_id="g-dead"))
    assert await store.get_active_access_token("at-dead", now) is None


# Access tokens

async def test_access_token_round_trip_and_expiry(store: Store, now: datetime) -> None:
    await store.create_grant(grant("g1", now))
    record = token("at-1", now, scope=("openid", "profile", "email"), expires_at=now + timedelta(seconds=300),
                   userinfo_claims=("email", "name"))
    await store.record_access_token(record)
    assert await store.get_active_access_token("at-1", now) == record
    assert await store.get_active_access_token("at-1", record.expires_at - timedelta(microseconds=1)) == record
    assert await store.get_active_access_token("at-1", record.expires_at) is None
    assert await store.get_active_access_token("missing", now) is None

    await store.record_access_token(token("at-old", now, expires_at=now - SECOND))
    assert await store.get_active_access_token("at-old", now) is None

    # Without a grant (a client acting for itself): active on its own record alone.
    no_grant = token("at-cc", now, grant_id=None, user_id=None, scope=())
    await store.record_access_token(no_grant)
    assert await store.get_active_access_token("at-cc", now) == no_grant
    assert await store.get_active_access_token("at-cc", no_grant.expires_at) is None

    # Recorded as revoked: never active, with or without a grant.
    await store.record_access_token(token("at-revoked", now, revoked_at=now))
    await store.record_access_token(token("at-revoked-nogrant", now, grant_id=None, revoked_at=now))
    assert await store.get_active_access_token("at-revoked", now) is None
    assert await store.get_active_access_token("at-revoked-nogrant", now) is None


# Housekeeping

async def test_delete_expired_removes_expired_rows_and_keeps_live_ones(store: Store, now: datetime) -> None:
    past = now - HOUR
    await store.create_client(client("app"))
    await store.create_user(user())
    await store.add_key(key("k1", past), retire_others_at=None)
    await store.save_consent(Consent("u-alice", "app", ("openid",), past))
    await store.create_grant(grant("g1", past))
    for suffix, expires_at in (("old", now - SECOND), ("edge", now), ("live", now + SECOND)):
        await store.create_session(session(f"s-{suffix}", past, expires_at=expires_at))
        await store.create_interaction(interaction(f"i-{suffix}", past, expires_at=expires_at))
        await store.save_authorization_code(code(f"h-{suffix}", past, expires_at=expires_at))
        await store.record_access_token(token(f"at-{suffix}", past, expires_at=expires_at))
    await store.create_interaction(interaction("i-consumed", past, expires_at=now + SECOND))
    await store.consume_interaction("i-consumed")
    assert await store.get_session("s-old", past) is not None
    assert await store.get_active_access_token("at-edge", past) is not None

    assert await store.delete_expired(now) == 8  # old and edge rows of the four expiring tables

    for suffix in ("old", "edge"):
        # Looked up as of the past, when they were live: they are gone, not just filtered.
        assert await store.get_session(f"s-{suffix}", past) is None
        assert await store.get_interaction(f"i-{suffix}", past) is None
        assert await store.get_authorization_code(f"h-{suffix}") is None
        assert await store.get_active_access_token(f"at-{suffix}", past) is None
    assert await store.get_session("s-live", now) is not None
    assert await store.get_interaction("i-live", now) is not None
    assert await store.get_authorization_code("h-live") is not None
    assert await store.get_active_access_token("at-live", now) is not None
    # Records without an expiry are never housekept.
    assert await store.get_client("app") is not None
    assert await store.get_user("u-alice") is not None
    assert [k.kid for k in await store.list_keys(now)] == ["k1"]
    assert await store.get_consent("u-alice", "app") is not None

    assert await store.delete_expired(now) == 0
    assert await store.delete_expired(now + SECOND) == 5  # the live rows and the consumed interaction


async def test_rate_limit_windows_count_concurrent_hits_and_reset(store: Store, now: datetime) -> None:
    window = timedelta(minutes=5)
    key = "k" * 64
    assert await store.rate_limit_count(key, now - window) == 0
    counts = await asyncio.gather(*(store.rate_limit_hit(key, now, now - window) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))  # every concurrent hit counted exactly once
    assert await store.rate_limit_count(key, now - window) == 20
    later = now + window + SECOND
    assert await store.rate_limit_count(key, later - window) == 0  # the window has passed
    assert await store.rate_limit_hit(key, later, later - window) == 1  # a new window starts
    await store.rate_limit_reset(key)
    assert await store.rate_limit_count(key, later - window) == 0
    await store.rate_limit_hit(key, now, now - window)
    assert await store.delete_expired(now + timedelta(days=1)) >= 1
    assert await store.rate_limit_count(key, now - window) == 0


# Token lifecycle: grants, refresh-token families, access-token records, audit, housekeeping

DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)


def refresh(token_hash: str, now: datetime, grant_id: str = "g1", **fields: Any) -> RefreshToken:
    values: dict[str, Any] = {"client_id": "app", "user_id": "u-alice", "scope": ("openid", "offline_access"),
                              "created_at": now, "expires_at": now + HOUR}
    return RefreshToken(token_hash=token_hash, grant_id=grant_id, **(values | fields))


async def test_client_round_trips_token_lifecycle_fields(store: Store, now: datetime) -> None:
    resource_server = client("rs", resources=("https://api.example/", "urn:example:api"),
                             access_token_format="opaque", permissions=("introspect",),
                             refresh_token_policy="always", created_at=now)
    plain = client("plain", created_at=now)
    await store.create_client(resource_server)
    await store.create_client(plain)
    assert await store.get_client("rs") == resource_server
    stored = await store.get_client("plain")
    assert stored == plain
    assert stored is not None
    assert (stored.resources, stored.access_token_format, stored.permissions, stored.refresh_token_policy) == (
        (), "jwt", (), "offline_access")
    assert list(await store.list_clients()) == [plain, resource_server]


async def test_grant_round_trips_every_field(store: Store, now: datetime) -> None:
    cest = timezone(timedelta(hours=2))
    claims = {"userinfo": {"email": {"essential": True}, "name": None},
              "id_token": {"acr": {"values": ["urn:acr:1", "urn:acr:2"]}}}
    full = Grant("g-full", "app", "u-alice", ("openid", "email", "offline_access"), now,
                 auth_time=(now - timedelta(minutes=5)).astimezone(cest), acr="urn:acr:2", amr=("pwd", "otp"),
                 claims=claims, resources=("https://api.example/", "urn:example:api"),
                 expires_at=(now + 30 * DAY).astimezone(cest))
    await store.create_grant(full)
    await store.create_grant(grant("g-min", now))
    assert await store.get_grant("missing") is None

    stored = await store.get_grant("g-full")
    assert stored == full
    assert stored is not None
    assert (stored.amr, stored.claims, stored.resources) == (("pwd", "otp"), claims, full.resources)
    for value, given in ((stored.created_at, full.created_at), (stored.auth_time, full.auth_time),
                         (stored.expires_at, full.expires_at)):
        assert value is not None
        assert value.utcoffset() == timedelta(0)
        assert value == given
        assert value.microsecond == now.microsecond != 0

    minimal = await store.get_grant("g-min")
    assert minimal == grant("g-min", now)
    assert minimal is not None
    assert (minimal.revoked_at, minimal.auth_time, minimal.acr, minimal.amr, minimal.claims, minimal.resources,
            minimal.expires_at) == (None, None, None, (), None, (), None)

    # A grant started with its code is stored whole too.
    with_code = replace(full, grant_id="g-code")
    await store.save_authorization_code(code("h-code", now, grant_id="g-code"), grant=with_code)
    assert await store.get_grant("g-code") == with_code

    # get_grant still returns a revoked grant, with the time of its (first) revocation.
    await store.revoke_grant("g-full", now + SECOND)
    await store.revoke_grant("g-full", now + HOUR)
    assert await store.get_grant("g-full") == replace(full, revoked_at=now + SECOND)


async def test_list_grants_newest_first_unrevoked_and_filtered_by_client(store: Store, now: datetime) -> None:
    # Stored out of order: the listing is by creation time, not insertion.
    mid = Grant("g-mid", "other", "u-alice", ("openid",), now + SECOND, acr="urn:acr:1", amr=("pwd",),
                claims={"userinfo": {"email": None}}, resources=("https://api.example/",), auth_time=now,
                expires_at=now + DAY)
    await store.create_grant(grant("g-new", now + 2 * SECOND))
    await store.create_grant(grant("g-old", now))
    await store.create_grant(mid)
    await store.create_grant(grant("g-bob", now + 3 * SECOND, user_id="u-bob"))
    await store.create_grant(replace(grant("g-dead", now + 4 * SECOND), revoked_at=now + 4 * SECOND))

    assert [g.grant_id for g in await store.list_grants("u-alice")] == ["g-new", "g-mid", "g-old"]
    assert [g.grant_id for g in await store.list_grants("u-alice", "app")] == ["g-new", "g-old"]
    assert list(await store.list_grants("u-alice", "other")) == [mid]
    assert list(await store.list_grants("u-alice", "missing")) == []
    assert list(await store.list_grants("u-bob")) == [grant("g-bob", now + 3 * SECOND, user_id="u-bob")]
    assert list(await store.list_grants("u-nobody")) == []

    await store.revoke_grant("g-new", now + 5 * SECOND)
    assert [g.grant_id for g in await store.list_grants("u-alice")] == ["g-mid", "g-old"]
    assert [g.grant_id for g in await store.list_grants("u-alice", "app")] == ["g-old"]


async def test_record_tokens_records_both_or_either_in_one_transaction(store: Store, now: datetime) -> None:
    await store.create_grant(grant("g1", now))
    access = token("at-1", now, audience=("https://api.example/",), userinfo_claims=("email", "name"))
    rt = refresh("rt-1", now, expires_at=now + DAY)
    await store.record_tokens(access, rt)
    assert await store.get_access_token(jti="at-1") == access
    assert await store.get_refresh_token("rt-1") == rt
    assert await store.get_active_access_token("at-1", now) == access
    assert await store.get_refresh_token("missing") is None

    opaque = token("at-opaque", now, token_hash="o" * 64)
    await store.record_tokens(opaque, None)
    assert await store.get_access_token(token_hash="o" * 64) == opaque
    await store.record_tokens(None, refresh("rt-only", now))
    assert await store.get_refresh_token("rt-only") == refresh("rt-only", now)
    await store.record_tokens(None, None)

    # One transaction: when either insert fails, neither is kept.
    with pytest.raises(Exception):  # noqa: B017 - the backend's own integrity error
        await store.record_tokens(token("at-2", now), refresh("rt-1", now))
    assert await store.get_access_token(jti="at-2") is None
    with pytest.raises(Exception):  # noqa: B017
        await store.record_tokens(token("at-1", now), refresh("rt-2", now))
    assert await store.get_refresh_token("rt-2") is None
    assert await store.get_refresh_token("rt-1") == rt
    assert await store.get_access_token(jti="at-1") == access


async def test_rotate_refresh_token_consumes_and_records_once(store: Store, now: datetime) -> None:
    await store.create_grant(grant("g1", now))
    old = refresh("rt-0", now - HOUR, expires_at=now + HOUR)
    await store.record_tokens(None, old)

    successor, access = refresh("rt-1", now, expires_at=now + DAY), token("at-1", now, token_hash="a" * 64)
    assert await store.rotate_refresh_token("rt-0", now, successor, access) is True
    assert await store.get_refresh_token("rt-0") == replace(old, consumed_at=now)
    assert await store.get_refresh_token("rt-1") == successor
    assert await store.get_access_token(jti="at-1") == access
    assert await store.get_access_token(token_hash="a" * 64) == access

    # The consumed token rotates no more, and a failed rotation writes nothing.
    assert await store.rotate_refresh_token("rt-0", now + SECOND, refresh("rt-2", now), token("at-2", now)) is False
    assert await store.get_refresh_token("rt-2") is None
    assert await store.get_access_token(jti="at-2") is None
    assert await store.get_refresh_token("rt-0") == replace(old, consumed_at=now)
    assert await store.rotate_refresh_token("missing", now, refresh("rt-3", now), token("at-3", now)) is False
    assert await store.get_refresh_token("rt-3") is None
    assert await store.get_access_token(jti="at-3") is None

    # The successor rotates in turn; the access token is optional.
    assert await store.rotate_refresh_token("rt-1", now + SECOND, refresh("rt-4", now), None) is True
    stored = await store.get_refresh_token("rt-1")
    assert stored is not None
    assert stored.consumed_at == now + SECOND
    assert await store.get_refresh_token("rt-4") == refresh("rt-4", now)

    # Atomic: when recording a successor fails, the token is not consumed either.
    await store.record_tokens(None, refresh("rt-5", now))
    with pytest.raises(Exception):  # noqa: B017 - refresh token hash taken
        await store.rotate_refresh_token("rt-5", now, refresh("rt-1", now), token("at-5", now))
    with pytest.raises(Exception):  # noqa: B017 - access token jti taken
        await store.rotate_refresh_token("rt-5", now, refresh("rt-6", now), token("at-1", now))
    assert await store.get_refresh_token("rt-5") == refresh("rt-5", now)
    assert await store.get_refresh_token("rt-6") is None
    assert await store.get_access_token(jti="at-5") is None
    assert await store.rotate_refresh_token("rt-5", now, refresh("rt-6", now), token("at-6", now)) is True


async def test_a_refresh_token_family_is_read_in_one_piece(store: Store, now: datetime) -> None:
    """The token, its grant and the grant's user, as the refresh grant needs them; gaps are None."""
    alice = user()
    await store.create_user(alice)
    await store.create_grant(grant("g1", now))
    await store.record_tokens(None, refresh("rt-0", now))
    assert await store.get_refresh_token_family("rt-0") == (refresh("rt-0", now), await store.get_grant("g1"), alice)
    assert await store.get_refresh_token_family("missing") is None

    await store.delete_user(alice.id, now)
    family = await store.get_refresh_token_family("rt-0")
    assert family is not None and family[1] is not None and family[2] is None
    await store.record_tokens(None, refresh("rt-orphan", now, grant_id="no-such-grant"))
    assert await store.get_refresh_token_family("rt-orphan") == (refresh("rt-orphan", now, grant_id="no-such-grant"),
                                                                 None, None)


async def test_concurrent_rotations_of_one_refresh_token_let_exactly_one_win(store: Store, now: datetime) -> None:
    # A stolen refresh token used alongside the client's: one rotation, one family link, one access token.
    await store.create_grant(grant("g1", now))
    await store.record_tokens(None, refresh("rt-race", now))
    results = await asyncio.gather(*(
        store.rotate_refresh_token("rt-race", now + i * MS, refresh(f"rt-next-{i}", now), token(f"at-next-{i}", now))
        for i in range(RACERS)))
    assert results.count(True) == 1
    assert results.count(False) == RACERS - 1
    winner = results.index(True)

    successors = [i for i in range(RACERS) if await store.get_refresh_token(f"rt-next-{i}") is not None]
    accesses = [i for i in range(RACERS) if await store.get_access_token(jti=f"at-next-{i}") is not None]
    assert successors == [winner]  # nothing written by the losers
    assert accesses == [winner]
    assert await store.get_refresh_token(f"rt-next-{winner}") == refresh(f"rt-next-{winner}", now)
    assert await store.get_refresh_token("rt-race") == refresh("rt-race", now, consumed_at=now + winner * MS)


async def test_an_access_token_comes_with_its_clients_registration_and_its_user(store: Store, now: datetime) -> None:
    registered = client("app", created_at=now - HOUR)
    await store.create_client(registered)
    await store.create_user(user())
    await store.create_grant(grant("g1", now))
    await store.record_access_token(opaque := token("at-1", now, token_hash="o" * 64))
    await store.record_access_token(cc := token("at-cc", now, grant_id=None, user_id=None))

    found = await store.get_access_token_with_owners(token_hash="o" * 64)
    assert found is not None
    assert found[0] == opaque and found[1] == registered.created_at and found[2] == await store.get_user("u-alice")
    assert await store.get_access_token_with_owners(jti="at-1") == found
    assert await store.get_access_token_with_owners(jti="at-cc") == (cc, registered.created_at, None)
    assert await store.get_access_token_with_owners(jti="missing") is None
    assert await store.get_access_token_with_owners() is None

    # The user gone: no user (and the grant revoked); the client gone: no registration time.
    await store.delete_user("u-alice", now)
    assert await store.get_access_token_with_owners(jti="at-1") == (replace(opaque, revoked_at=now),
                                                                    registered.created_at, None)
    await store.delete_client("app", now)
    gone = await store.get_access_token_with_owners(jti="at-cc")
    assert gone is not None and gone[1] is None


async def test_get_access_token_by_jti_or_hash_reflects_a_revoked_grant(store: Store, now: datetime) -> None:
    await store.create_grant(grant("g1", now))
    await store.create_grant(grant("g2", now))
    jwt = token("at-jwt", now, audience=("https://api.example/",), userinfo_claims=("email",))
    opaque = token("at-opaque", now, token_hash="o" * 64, audience=("https://api.example/", "urn:example:api"))
    other = token("at-other", now, grant_id="g2")
    no_grant = token("at-cc", now, grant_id=None, user_id=None, scope=("api:read",))
    for record in (jwt, opaque, other, no_grant):
        await store.record_access_token(record)

    assert await store.get_access_token(jti="at-jwt") == jwt
    assert await store.get_access_token(jti="at-opaque") == opaque
    assert await store.get_access_token(token_hash="o" * 64) == opaque
    assert await store.get_access_token(jti="at-cc") == no_grant
    assert await store.get_access_token(jti="missing") is None
    assert await store.get_access_token(token_hash="missing") is None
    assert await store.get_access_token(token_hash="at-opaque") is None  # a jti is no hash
    assert await store.get_access_token(jti="o" * 64) is None            # nor a hash a jti

    revoked_at = now + SECOND
    await store.revoke_grant("g1", revoked_at)
    assert await store.get_access_token(jti="at-jwt") == replace(jwt, revoked_at=revoked_at)
    assert await store.get_access_token(token_hash="o" * 64) == replace(opaque, revoked_at=revoked_at)
    # Recorded after the revocation (a redemption that lost the race): revoked through its grant.
    late = token("at-late", now, grant_id="g1", token_hash="l" * 64)
    await store.record_access_token(late)
    assert await store.get_access_token(jti="at-late") == replace(late, revoked_at=revoked_at)
    assert await store.get_access_token(token_hash="l" * 64) == replace(late, revoked_at=revoked_at)
    await store.create_grant(replace(grant("g-dead", now), revoked_at=now - HOUR))
    await store.record_access_token(token("at-dead", now, grant_id="g-dead"))
    assert await store.get_access_token(jti="at-dead") == token("at-dead", now, grant_id="g-dead",
                                                                revoked_at=now - HOUR)
    # Others untouched.
    assert await store.get_access_token(jti="at-other") == other
    assert await store.get_access_token(jti="at-cc") == no_grant


async def test_revoke_access_token_marks_a_recorded_token(store: Store, now: datetime) -> None:
    await store.create_grant(grant("g1", now))
    recorded = token("at-rec", now)
    opaque = token("at-opaque", now, token_hash="o" * 64)
    sibling = token("at-sibling", now)
    for record in (recorded, opaque, sibling):
        await store.record_access_token(record)

    await store.revoke_access_token(recorded, now + SECOND)
    assert await store.get_access_token(jti="at-rec") == replace(recorded, revoked_at=now + SECOND)
    assert await store.get_active_access_token("at-rec", now) is None
    # Idempotent: a second revocation keeps the first time.
    await store.revoke_access_token(recorded, now + 2 * SECOND)
    assert await store.get_access_token(jti="at-rec") == replace(recorded, revoked_at=now + SECOND)

    await store.revoke_access_token(opaque, now + SECOND)
    assert await store.get_access_token(token_hash="o" * 64) == replace(opaque, revoked_at=now + SECOND)
    # Only that token: its grant and siblings live on.
    assert await store.get_active_access_token("at-sibling", now) == sibling
    assert [g.grant_id for g in await store.list_grants("u-alice")] == ["g1"]


async def test_revoke_access_token_denylists_an_unrecorded_jwt_until_it_expires(store: Store, now: datetime) -> None:
    # A client-credentials JWT is not recorded when issued; revoking it records it, revoked, with its expiry.
    jwt = token("at-cc", now, grant_id=None, user_id=None, scope=("api:read",), expires_at=now + 5 * 60 * SECOND,
                audience=("https://api.example/",))
    assert await store.get_access_token(jti="at-cc") is None
    await store.revoke_access_token(jwt, now + SECOND)
    stored = await store.get_access_token(jti="at-cc")
    assert stored == replace(jwt, revoked_at=now + SECOND)
    assert stored is not None
    assert stored.expires_at == jwt.expires_at
    assert await store.get_active_access_token("at-cc", now) is None

    await store.revoke_access_token(jwt, now + 2 * SECOND)  # idempotent
    assert await store.get_access_token(jti="at-cc") == replace(jwt, revoked_at=now + SECOND)

    # The denylist entry is housekept once the token has expired, not before.
    assert await store.delete_expired(jwt.expires_at - MS) == 0
    assert await store.get_access_token(jti="at-cc") is not None
    assert await store.delete_expired(jwt.expires_at) == 1
    assert await store.get_access_token(jti="at-cc") is None


async def test_concurrent_revocations_of_one_access_token_do_not_raise(store: Store, now: datetime) -> None:
    # Two revocation requests for one token at once (a double-clicked "revoke", a retried request).
    await store.create_grant(grant("g1", now))
    for racers in (2, RACERS):
        recorded = token(f"at-rec-{racers}", now)
        await store.record_access_token(recorded)
        unrecorded = token(f"at-cc-{racers}", now, grant_id=None, user_id=None)
        for record in (unrecorded, recorded):
            results = await asyncio.gather(
                *(store.revoke_access_token(record, now + i * MS) for i in range(racers)), return_exceptions=True)
            assert [r for r in results if r is not None] == [], (record.jti, results)
            stored = await store.get_access_token(jti=record.jti)
            assert stored is not None
            assert stored.revoked_at in {now + i * MS for i in range(racers)}
            assert replace(stored, revoked_at=None) == record


async def test_get_active_access_token_needs_live_unrevoked_token_and_grant(store: Store, now: datetime) -> None:
    await store.create_grant(grant("g1", now))
    await store.create_grant(grant("g2", now))
    opaque = token("at-opaque", now, token_hash="o" * 64, audience=("https://api.example/",))
    live = token("at-live", now, grant_id="g2", expires_at=now + SECOND)
    for record in (opaque, token("at-1", now), token("at-2", now), live):
        await store.record_access_token(record)
    assert await store.get_active_access_token("at-opaque", now) == opaque
    assert await store.get_active_access_token("o" * 64, now) is None  # by jti only

    await store.revoke_access_token(token("at-1", now), now)
    assert await store.get_active_access_token("at-1", now) is None
    assert await store.get_active_access_token("at-2", now) is not None
    await store.revoke_access_token(token("at-never-recorded", now, grant_id=None), now)
    assert await store.get_active_access_token("at-never-recorded", now) is None

    await store.revoke_grant("g1", now)
    assert await store.get_active_access_token("at-2", now) is None
    assert await store.get_active_access_token("at-opaque", now) is None
    assert await store.get_active_access_token("at-live", now) == live
    assert await store.get_active_access_token("at-live", now + SECOND) is None


async def test_audit_events_are_listed_newest_first_with_their_fields(store: Store, now: datetime) -> None:
    assert list(await store.list_audit_events()) == []  # type: ignore[attr-defined]
    await store.record_audit_event("refresh_token_reused", now, detail="family revoked ✓", client_id="app",
                                   user_id="u-alice", grant_id="g1")
    await store.record_audit_event("grants_revoked_by_user", now + SECOND, user_id="u-alice", client_id="app")
    await store.record_audit_event("grants_revoked_by_operator", now + 2 * SECOND)

    events = list(await store.list_audit_events())  # type: ignore[attr-defined]
    assert [e["event"] for e in events] == ["grants_revoked_by_operator", "grants_revoked_by_user",
                                            "refresh_token_reused"]
    assert len({e["id"] for e in events}) == 3
    fields = [{k: v for k, v in e.items() if k != "id"} for e in events]
    assert fields == [
        {"event": "grants_revoked_by_operator", "at": now + 2 * SECOND, "detail": "", "client_id": None,
         "user_id": None, "grant_id": None},
        {"event": "grants_revoked_by_user", "at": now + SECOND, "detail": "", "client_id": "app",
         "user_id": "u-alice", "grant_id": None},
        {"event": "refresh_token_reused", "at": now, "detail": "family revoked ✓", "client_id": "app",
         "user_id": "u-alice", "grant_id": "g1"},
    ]
    assert all(e["at"].utcoffset() == timedelta(0) for e in events)
    assert [e["event"] for e in await store.list_audit_events(limit=2)] == [  # type: ignore[attr-defined]
        "grants_revoked_by_operator", "grants_revoked_by_user"]


async def test_delete_consent_for_one_client_or_all(store: Store, now: datetime) -> None:
    for user_id, client_id in (("u-alice", "app"), ("u-alice", "other"), ("u-bob", "app")):
        await store.save_consent(Consent(user_id, client_id, ("openid",), now))

    await store.delete_consent("u-alice", "app")
    assert await store.get_consent("u-alice", "app") is None
    assert await store.get_consent("u-alice", "other") is not None
    assert await store.get_consent("u-bob", "app") is not None

    await store.save_consent(Consent("u-alice", "app", ("openid",), now))
    await store.delete_consent("u-alice")
    assert await store.get_consent("u-alice", "app") is None
    assert await store.get_consent("u-alice", "other") is None
    assert await store.get_consent("u-bob", "app") == Consent("u-bob", "app", ("openid",), now)

    await store.delete_consent("u-alice")  # nothing left: no error
    await store.delete_consent("u-nobody", "app")
    assert await store.get_consent("u-bob", "app") is not None


async def test_revoke_grant_reaches_its_access_tokens(store: Store, now: datetime) -> None:
    await grant_with_token(store, now, "g1", "at-1")
    await store.record_access_token(token("at-1-opaque", now, token_hash="o" * 64))
    await store.record_access_token(token("at-1-early", now))
    await store.record_access_token(token("at-1-long", now, expires_at=now + 7 * DAY))
    await store.revoke_access_token(token("at-1-early", now), now)
    await grant_with_token(store, now, "g2", "at-2")

    revoked_at = now + SECOND
    await store.revoke_grant("g1", revoked_at)
    for lookup in ({"jti": "at-1"}, {"token_hash": "o" * 64}):
        record = await store.get_access_token(**lookup)
        assert record is not None
        assert record.revoked_at == revoked_at, lookup
    early = await store.get_access_token(jti="at-1-early")
    assert early is not None
    assert early.revoked_at == now  # an earlier revocation keeps its time
    for jti in ("at-1", "at-1-opaque", "at-1-early"):
        assert await store.get_active_access_token(jti, now) is None
    assert await store.get_active_access_token("at-2", now) == token("at-2", now, grant_id="g2")

    grant_record = await store.get_grant("g1")
    assert grant_record is not None
    assert grant_record.revoked_at == revoked_at
    assert [g.grant_id for g in await store.list_grants("u-alice")] == ["g2"]

    # The tokens themselves are marked, not only their grant: a long-lived one stays revoked after housekeeping
    # has removed the long-revoked grant.
    later = now + 3 * DAY
    await store.delete_expired(later)
    assert await store.get_grant("g1") is None
    long_lived = await store.get_access_token(jti="at-1-long")
    assert long_lived is not None
    assert long_lived.revoked_at == revoked_at
    assert await store.get_active_access_token("at-1-long", later) is None


async def test_delete_expired_removes_expired_refresh_tokens_and_long_dead_grants(
        store: Store, now: datetime) -> None:
    past = now - 10 * DAY
    await store.create_grant(grant("g-live", past))
    for suffix, expires_at in (("old", now - SECOND), ("edge", now), ("live", now + SECOND)):
        await store.record_tokens(None, refresh(f"rt-{suffix}", past, grant_id="g-live", expires_at=expires_at))
    # Consumed but not expired: kept, so that its reuse is still recognised.
    consumed = refresh("rt-consumed", past, grant_id="g-live", expires_at=now + HOUR, consumed_at=now - HOUR)
    await store.record_tokens(None, consumed)
    ends: tuple[tuple[str, datetime | None, datetime | None], ...]
    ends = (("g-revoked-3d", now - 3 * DAY, None),
            ("g-revoked-1d", now - DAY, None),
            ("g-ended-3d", None, now - 3 * DAY),
            ("g-ended-1d", None, now - DAY),
            ("g-ends-later", None, now + DAY))
    for grant_id, revoked_at, grant_end in ends:
        await store.create_grant(replace(grant(grant_id, past), revoked_at=revoked_at, expires_at=grant_end))

    assert await store.delete_expired(now) == 4  # rt-old, rt-edge, g-revoked-3d, g-ended-3d
    assert await store.get_refresh_token("rt-old") is None
    assert await store.get_refresh_token("rt-edge") is None
    assert await store.get_refresh_token("rt-live") is not None
    assert await store.get_refresh_token("rt-consumed") == consumed
    assert await store.get_grant("g-revoked-3d") is None
    assert await store.get_grant("g-ended-3d") is None
    for kept in ("g-live", "g-revoked-1d", "g-ended-1d", "g-ends-later"):
        assert await store.get_grant(kept) is not None, kept
    assert await store.delete_expired(now) == 0

    # A day later the grants revoked or ended a day ago have been dead for two, and go with the refresh tokens.
    assert await store.delete_expired(now + DAY + SECOND) == 4  # rt-live, rt-consumed, g-revoked-1d, g-ended-1d
    assert await store.get_grant("g-revoked-1d") is None
    assert await store.get_grant("g-ended-1d") is None
    assert await store.get_grant("g-live") is not None
    assert await store.get_grant("g-ends-later") is not None


async def test_rate_limit_release_takes_one_hit_back_never_below_zero(store: Store, now: datetime) -> None:
    window = timedelta(minutes=5)
    key, other = "r" * 64, "o" * 64
    await store.rate_limit_release(key)  # nothing recorded: nothing to take back
    assert await store.rate_limit_count(key, now - window) == 0
    for _ in range(3):
        await store.rate_limit_hit(key, now, now - window)
    await store.rate_limit_hit(other, now, now - window)

    await store.rate_limit_release(key)
    assert await store.rate_limit_count(key, now - window) == 2
    await store.rate_limit_release(key)
    await store.rate_limit_release(key)
    assert await store.rate_limit_count(key, now - window) == 0
    await store.rate_limit_release(key)
    assert await store.rate_limit_count(key, now - window) == 0
    assert await store.rate_limit_hit(key, now, now - window) == 1  # counting resumes from zero, not -1
    assert await store.rate_limit_count(other, now - window) == 1

    # Concurrent releases never take the count below zero either.
    for _ in range(2):
        await store.rate_limit_hit(key, now, now - window)
    await asyncio.gather(*(store.rate_limit_release(key) for _ in range(10)))
    assert await store.rate_limit_count(key, now - window) == 0
    assert await store.rate_limit_hit(key, now, now - window) == 1
    assert await store.rate_limit_count(other, now - window) == 1


async def test_get_access_token_without_a_key_finds_nothing(store: Store, now: datetime) -> None:
    assert await store.get_access_token() is None


def device(code_hash: str, user_code: str, now: datetime, **fields: Any) -> DeviceAuthorization:
    values: dict[str, Any] = {"client_id": "tv", "scope": ("openid", "profile"), "created_at": now,
                              "expires_at": now + timedelta(minutes=10), "interval": 5}
    return DeviceAuthorization(device_code_hash=code_hash, user_code=user_code, **(values | fields))


async def test_device_authorizations_round_trip_and_unique_user_codes(store: Store, now: datetime) -> None:
    pending = device("h" * 64, "BCDFGHJK", now, resources=("https://api.example/x",))
    assert await store.create_device_authorization(pending) is True
    assert await store.get_device_authorization(device_code_hash="h" * 64) == pending
    assert await store.get_device_authorization(user_code="BCDFGHJK") == pending
    assert await store.get_device_authorization() is None
    assert await store.get_device_authorization(user_code="ZZZZZZZZ") is None
    # A user code in use cannot be issued twice: the caller draws another.
    assert await store.create_device_authorization(device("i" * 64, "BCDFGHJK", now)) is False
    await store.record_device_poll("h" * 64, now + SECOND, 10)
    polled = await store.get_device_authorization(device_code_hash="h" * 64)
    assert polled is not None and (polled.last_polled_at, polled.interval) == (now + SECOND, 10)
    assert await store.delete_expired(now + timedelta(minutes=11)) >= 1
    assert await store.get_device_authorization(device_code_hash="h" * 64) is None


async def test_device_decision_and_consumption_happen_once(store: Store, now: datetime) -> None:
    await store.create_device_authorization(device("h" * 64, "BCDFGHJK", now))
    grant = Grant(grant_id="g-dev", client_id="tv", user_id="u-alice", scope=("openid",), created_at=now)
    assert await store.consume_device_authorization("h" * 64) is False  # not approved yet
    results = await asyncio.gather(*(store.decide_device_authorization(
        "h" * 64, "approved", replace(grant, grant_id=f"g-{i}")) for i in range(20)))
    assert results.count(True) == 1
    decided = await store.get_device_authorization(device_code_hash="h" * 64)
    assert decided is not None and decided.status == "approved" and decided.grant_id is not None
    assert await store.get_grant(decided.grant_id) is not None  # written with the decision, by the winner only
    assert await store.decide_device_authorization("h" * 64, "denied", None) is False
    consumed = await asyncio.gather(*(store.consume_device_authorization("h" * 64) for _ in range(20)))
    assert consumed.count(True) == 1

    await store.create_device_authorization(device("d" * 64, "DDDDDDDD", now))
    assert await store.decide_device_authorization("d" * 64, "denied", None) is True
    denied = await store.get_device_authorization(device_code_hash="d" * 64)
    assert denied is not None and denied.status == "denied" and denied.grant_id is None



@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_reads_survive_the_server_dropping_their_connections(database_url: str, store: Store) -> None:
    """A PostgreSQL restart or failover kills pooled connections; the next read reconnects by itself."""
    from tests.conftest import _pg_admin

    await store.create_client(client())
    assert await store.get_client("app") is not None
    name = database_url.rsplit("/", 1)[-1]
    await _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    assert (await store.get_client("app")) is not None
    assert [c.client_id for c in await store.list_clients()] == ["app"]
