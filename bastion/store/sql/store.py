"""`Store` on SQLAlchemy Core (async): one implementation for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ...core.keys import StoredKey
from ...core.models import (
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
from ...core.scopes import format_scope, parse_scope
from ..base import DuplicateError
from . import tables as t
from .hot import HotSQL, PostgresDriver, SQLiteDriver

__all__ = ["SQLStore", "create_engine", "create_store"]

DAY = timedelta(days=1)
T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout queues writers instead of failing.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_path(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str) -> AsyncEngine:
    """`hide_parameters`: a database error logged with its traceback never carries row values."""
    if url.startswith("sqlite"):
        _sqlite_path(url)
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: it costs a round trip per checkout. A connection that died with the server is
    # detected on use instead; the pool then drops every older connection, and reads retry once.
    # The statements of token requests have a pool of their own (`hot.PostgresDriver`).
    return create_async_engine(url, pool_size=10, max_overflow=0, pool_timeout=30, hide_parameters=True)


def create_store(url: str) -> SQLStore:
    return SQLStore(create_engine(url))


def _is_unique_violation(exc: IntegrityError) -> bool:
    """A duplicate key, as opposed to any other constraint (SQLite and PostgreSQL wording)."""
    message = str(exc.orig).lower()
    return "unique" in message or "duplicate key" in message


def _client(row: Any) -> Client:
    return Client(
        client_id=row.client_id, client_name=row.client_name, secret_hash=row.secret_hash,
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        redirect_uris=tuple(row.redirect_uris), post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
        grant_types=tuple(row.grant_types), scope=parse_scope(row.scope),
        application_type=row.application_type, id_token_signed_response_alg=row.id_token_signed_response_alg,
        created_at=row.created_at, resources=tuple(row.resources), access_token_format=row.access_token_format,
        permissions=tuple(row.permissions), refresh_token_policy=row.refresh_token_policy,
    )


def _grant(row: Any) -> Grant:
    return Grant(grant_id=row.grant_id, client_id=row.client_id, user_id=row.user_id, scope=parse_scope(row.scope),
                 created_at=row.created_at, revoked_at=row.revoked_at, auth_time=row.auth_time, acr=row.acr,
                 amr=tuple(row.amr), claims=row.claims, resources=tuple(row.resources), expires_at=row.expires_at)


def _refresh_token(row: Any) -> RefreshToken:
    return RefreshToken(token_hash=row.token_hash, grant_id=row.grant_id, client_id=row.client_id,
                        user_id=row.user_id, scope=parse_scope(row.scope), created_at=row.created_at,
                        expires_at=row.expires_at, consumed_at=row.consumed_at)


def _access_token(row: Any, grant: Any) -> AccessTokenRecord:
    """`grant`: its `revoked_at`, if the grant was found."""
    return AccessTokenRecord(jti=row.jti, grant_id=row.grant_id, client_id=row.client_id, user_id=row.user_id,
                             scope=parse_scope(row.scope), expires_at=row.expires_at,
                             revoked_at=row.revoked_at or (grant.revoked_at if grant else None),
                             userinfo_claims=tuple(row.userinfo_claims), token_hash=row.token_hash,
                             audience=tuple(row.audience))


def _user(row: Any) -> User:
    return User(id=row.id, username=row.username, password_hash=row.password_hash, claims=dict(row.claims),
                created_at=row.created_at, updated_at=row.updated_at)


def _interaction(row: Any) -> Interaction:
    return Interaction(uid=row.uid, binding_hash=row.binding_hash, request=dict(row.request),
                       created_at=row.created_at, expires_at=row.expires_at, login_at=row.login_at,
                       consent_given=bool(row.consent_given), user_id=row.user_id)


def _code(row: Any) -> AuthorizationCode:
    return AuthorizationCode(
        code_hash=row.code_hash, grant_id=row.grant_id, client_id=row.client_id, user_id=row.user_id,
        redirect_uri=row.redirect_uri, code_challenge=row.code_challenge, scope=parse_scope(row.scope),
        nonce=row.nonce, claims=row.claims, acr=row.acr, amr=tuple(row.amr), session_id=row.session_id,
        auth_time=row.auth_time, expires_at=row.expires_at, consumed_at=row.consumed_at,
    )


class _Connection:
    """A synchronous SQLAlchemy connection behind the `execute` of an async one."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    async def execute(self, statement: sa.Executable) -> Any:
        return self._conn.execute(statement)


def _no_autocheckpoint(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")


def _prepare_sqlite(conn: sqlite3.Connection) -> None:
    """The hot statements' connection is set up like the engine's (see `_LoopSQLite`)."""
    _sqlite_pragmas(conn, None)
    _no_autocheckpoint(conn, None)


class _Checkpointer:
    """Copies the WAL back into the database file every `interval` seconds on a thread of its own.

    SQLite would otherwise checkpoint inside whichever commit crosses 1,000 WAL pages, with an fsync,
    on the event loop: a stall for every request in flight (seen as p99 spikes of whole seconds).
    Often, because the fsync still stalls the loop's own writes to the WAL while the file system
    commits its journal (ext4), for as long as the dirty pages take: code flow at concurrency 64,
    p99 248-535 ms checkpointing every second, 65-75 ms every 0.2 s (79-93 ms never checkpointing)."""

    def __init__(self, path: str, interval: float = 0.2) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if path and path != ":memory:":
            self._thread = threading.Thread(target=self._run, args=(path, interval), name="sqlite-checkpoint",
                                            daemon=True)
            self._thread.start()

    def _run(self, path: str, interval: float) -> None:
        with closing(sqlite3.connect(path, timeout=30, check_same_thread=False)) as conn:
            while not self._stop.wait(interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:  # busy or gone: the next tick tries again
                    continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class _LoopSQLite:
    """SQLite through its own driver, called right on the event loop.

    A statement on a local SQLite file takes tens of microseconds: less than the thread hops that
    aiosqlite makes for every call (several per query). And since nothing awaits in the middle of a
    statement or transaction, one process's writes never overlap, so they never sleep in SQLite's
    busy backoff (seen as second-long p99 latencies under load). Another process holding the write
    lock does block the loop, for up to busy_timeout: SQLite is the single-server default;
    several processes belong on PostgreSQL.
    """

    def __init__(self, url: str) -> None:
        _sqlite_path(url)
        self.engine = sa.create_engine(url.replace("+aiosqlite", "", 1), hide_parameters=True,
                                       connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "connect", _no_autocheckpoint)
        self._checkpoints = _Checkpointer(self.engine.url.database or "")

    def close(self) -> None:
        self._checkpoints.stop()
        self.engine.dispose()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[_Connection]:
        with self.engine.connect() as conn:
            yield _Connection(conn)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[_Connection]:
        with self.engine.begin() as conn:
            yield _Connection(conn)


class SQLStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine  # also for migrations, schema checks, and tests that look at rows
        self._db: Any
        self._reader: Any
        driver: SQLiteDriver | PostgresDriver
        if engine.dialect.name == "sqlite":
            self._db = self._reader = _LoopSQLite(engine.url.render_as_string(hide_password=False))
            driver = SQLiteDriver(self._db.engine.url.database or "", _prepare_sqlite)
        else:
            self._db = engine
            # A read is one statement and needs no transaction: autocommit saves the BEGIN and
            # ROLLBACK round trips around it.
            self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
            driver = PostgresDriver(engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                                    max_size=20)
        self._hot = hot = HotSQL(driver)
        g, u = t.grants, t.users
        with_grant = [(g, "g", "g.grant_id = t.grant_id", None), (u, "u", "u.id = g.user_id", None)]
        self._client_by_id = hot.select(t.clients, [("client_id", "=")])
        self._user_by_id = hot.select(u, [("id", "=")])
        self._live_session = hot.select(t.sessions, [("session_hash", "="), ("expires_at", ">")])
        self._consent = hot.select(t.consents, [("user_id", "="), ("client_id", "=")])
        owners = [(g, "g", "g.grant_id = t.grant_id", ["grant_id", "revoked_at"]),
                  (t.clients, "c", "c.client_id = t.client_id", ["client_id", "created_at"]),
                  (u, "u", "u.id = t.user_id", None)]
        self._access_token_by = {key: hot.select(t.access_tokens, [(key, "=")], owners)
                                 for key in ("jti", "token_hash")}
        self._refresh_family = hot.select(t.refresh_tokens, [("token_hash", "=")], with_grant)
        self._code_family = hot.select(t.authorization_codes, [("code_hash", "=")], with_grant)

    async def close(self) -> None:
        await self._hot.driver.close()
        if isinstance(self._db, _LoopSQLite):
            self._db.close()
        await self.engine.dispose()

    async def _read(self, query: sa.Select[Any], fetch: Callable[[sa.Result[Any]], T]) -> T:
        """Run a read and fetch its rows while the connection is held; retried once on a connection
        the server dropped (restart, failover)."""
        for attempt in (1, 2):
            try:
                async with self._reader.connect() as conn:
                    return fetch(await conn.execute(query))
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def _one(self, query: sa.Select[Any]) -> sa.Row[Any] | None:
        return await self._read(query, sa.Result.first)

    async def _all(self, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
        return await self._read(query, sa.Result.all)

    async def _write(self, *statements: sa.Executable) -> int:
        """Run statements in one transaction; the rowcount of the first."""
        async with self._db.begin() as conn:
            first = await conn.execute(statements[0])
            for statement in statements[1:]:
                await conn.execute(statement)
            return int(first.rowcount)

    # Clients
    async def get_client(self, client_id: str) -> Client | None:
        row = await self._hot.one(self._client_by_id, client_id)
        return _client(row[0]) if row else None

    async def create_client(self, client: Client) -> None:
        values = {
            "client_id": client.client_id, "client_name": client.client_name, "secret_hash": client.secret_hash,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "redirect_uris": list(client.redirect_uris),
            "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
            "grant_types": list(client.grant_types), "scope": format_scope(client.scope),
            "application_type": client.application_type,
            "id_token_signed_response_alg": client.id_token_signed_response_alg, "created_at": client.created_at,
            "resources": list(client.resources), "access_token_format": client.access_token_format,
            "permissions": list(client.permissions), "refresh_token_policy": client.refresh_token_policy,
        }
        try:
            await self._write(sa.insert(t.clients).values(values))
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            raise DuplicateError(f"client {client.client_id!r} already exists") from exc

    async def list_clients(self) -> Sequence[Client]:
        return [_client(r) for r in await self._all(sa.select(t.clients).order_by(t.clients.c.client_id))]

    async def delete_client(self, client_id: str, now: datetime) -> bool:
        # Deleting a client revokes everything it was granted, in the same transaction.
        return bool(await self._write(
            sa.delete(t.clients).where(t.clients.c.client_id == client_id),
            sa.update(t.grants).where(t.grants.c.client_id == client_id, t.grants.c.revoked_at.is_(None))
            .values(revoked_at=now),
            sa.delete(t.consents).where(t.consents.c.client_id == client_id),
            sa.update(t.access_tokens)
            .where(t.access_tokens.c.client_id == client_id, t.access_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now),
        ))

    # Users
    async def get_user(self, user_id: str) -> User | None:
        row = await self._hot.one(self._user_by_id, user_id)
        return _user(row[0]) if row else None

    async def get_user_by_username(self, username: str) -> User | None:
        row = await self._one(sa.select(t.users).where(t.users.c.username == username))
        return _user(row) if row else None

    async def create_user(self, user: User) -> None:
        try:
            await self._write(sa.insert(t.users).values(
                id=user.id, username=user.username, password_hash=user.password_hash, claims=user.claims,
                created_at=user.created_at, updated_at=user.updated_at or user.created_at,
            ))
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            raise DuplicateError(f"user {user.username!r} already exists") from exc

    async def list_users(self) -> Sequence[User]:
        return [_user(r) for r in await self._all(sa.select(t.users).order_by(t.users.c.username))]

    async def delete_user(self, user_id: str, now: datetime) -> bool:
        return bool(await self._write(
            sa.delete(t.users).where(t.users.c.id == user_id),
            sa.update(t.grants).where(t.grants.c.user_id == user_id, t.grants.c.revoked_at.is_(None))
            .values(revoked_at=now),
            sa.delete(t.sessions).where(t.sessions.c.user_id == user_id),
            sa.delete(t.consents).where(t.consents.c.user_id == user_id),
            sa.update(t.access_tokens)
            .where(t.access_tokens.c.user_id == user_id, t.access_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now),
        ))

    # Signing keys
    async def list_keys(self, now: datetime) -> Sequence[StoredKey]:
        rows = await self._all(
            sa.select(t.signing_keys)
            .where(sa.or_(t.signing_keys.c.retire_at.is_(None), t.signing_keys.c.retire_at > now))
            .order_by(t.signing_keys.c.created_at)
        )
        return [StoredKey(r.kid, r.alg, r.encrypted_private_key, r.created_at, r.retire_at) for r in rows]

    async def add_key(self, key: StoredKey, retire_others_at: datetime | None) -> None:
        statements: list[sa.Executable] = [sa.insert(t.signing_keys).values(
            kid=key.kid, alg=key.alg, encrypted_private_key=key.encrypted_private_key,
            created_at=key.created_at, retire_at=key.retire_at,
        )]
        if retire_others_at is not None:
            statements.append(
                sa.update(t.signing_keys)
                .where(t.signing_keys.c.alg == key.alg, t.signing_keys.c.kid != key.kid,
                       t.signing_keys.c.retire_at.is_(None))
                .values(retire_at=retire_others_at)
            )
        await self._write(*statements)

    # Browser sessions and interactions
    async def create_session(self, session: BrowserSession) -> None:
        await self._write(sa.insert(t.sessions).values(
            session_hash=session.session_hash, user_id=session.user_id, auth_time=session.auth_time,
            amr=list(session.amr), expires_at=session.expires_at,
        ))

    async def get_session(self, session_hash: str, now: datetime) -> BrowserSession | None:
        found = await self._hot.one(self._live_session, session_hash, now)
        if found is None:
            return None
        row = found[0]
        return BrowserSession(row.session_hash, row.user_id, row.auth_time, row.expires_at, tuple(row.amr))

    async def delete_session(self, session_hash: str) -> None:
        await self._write(sa.delete(t.sessions).where(t.sessions.c.session_hash == session_hash))

    async def create_interaction(self, interaction: Interaction) -> None:
        await self._write(sa.insert(t.interactions).values(
            uid=interaction.uid, binding_hash=interaction.binding_hash, request=interaction.request,
            created_at=interaction.created_at, expires_at=interaction.expires_at, login_at=interaction.login_at,
            consent_given=interaction.consent_given, consumed=False, user_id=interaction.user_id,
        ))

    async def get_interaction(self, uid: str, now: datetime) -> Interaction | None:
        row = await self._one(sa.select(t.interactions).where(
            t.interactions.c.uid == uid, t.interactions.c.expires_at > now, t.interactions.c.consumed.is_(False)))
        return _interaction(row) if row else None

    async def update_interaction(self, uid: str, *, user_id: str, login_at: datetime | None = None,
                                 consent_given: bool | None = None) -> None:
        values: dict[str, Any] = {"user_id": user_id}
        if login_at is not None:
            values["login_at"] = login_at
        if consent_given is not None:
            values["consent_given"] = consent_given
        await self._write(sa.update(t.interactions).where(t.interactions.c.uid == uid).values(values))

    async def consume_interaction(self, uid: str) -> bool:
        return bool(await self._write(
            sa.update(t.interactions)
            .where(t.interactions.c.uid == uid, t.interactions.c.consumed.is_(False)).values(consumed=True)
        ))

    # Consent
    async def get_consent(self, user_id: str, client_id: str) -> Consent | None:
        found = await self._hot.one(self._consent, user_id, client_id)
        if found is None:
            return None
        row = found[0]
        return Consent(row.user_id, row.client_id, parse_scope(row.scope), row.granted_at)

    async def save_consent(self, consent: Consent) -> None:
        # An upsert, so that two tabs consenting at once both succeed (a delete-then-insert races).
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        values = {"user_id": consent.user_id, "client_id": consent.client_id,
                  "scope": format_scope(consent.scope), "granted_at": consent.granted_at}
        statement = insert(t.consents).values(values).on_conflict_do_update(
            index_elements=[t.consents.c.user_id, t.consents.c.client_id],
            set_={"scope": values["scope"], "granted_at": values["granted_at"]})
        await self._write(statement)

    async def list_consents(self, user_id: str) -> Sequence[Consent]:
        rows = await self._all(sa.select(t.consents).where(t.consents.c.user_id == user_id))
        return [Consent(r.user_id, r.client_id, parse_scope(r.scope), r.granted_at) for r in rows]

    async def delete_consent(self, user_id: str, client_id: str | None = None) -> None:
        query = sa.delete(t.consents).where(t.consents.c.user_id == user_id)
        if client_id is not None:
            query = query.where(t.consents.c.client_id == client_id)
        await self._write(query)

    # Grants, codes, tokens
    @staticmethod
    def _grant_row(grant: Grant) -> tuple[sa.Table, dict[str, Any]]:
        return t.grants, {
            "grant_id": grant.grant_id, "client_id": grant.client_id, "user_id": grant.user_id,
            "scope": format_scope(grant.scope), "created_at": grant.created_at, "revoked_at": grant.revoked_at,
            "auth_time": grant.auth_time, "acr": grant.acr, "amr": list(grant.amr), "claims": grant.claims,
            "resources": list(grant.resources), "expires_at": grant.expires_at}

    async def get_grant(self, grant_id: str) -> Grant | None:
        row = await self._one(sa.select(t.grants).where(t.grants.c.grant_id == grant_id))
        return _grant(row) if row else None

    async def list_grants(self, user_id: str, client_id: str | None = None) -> Sequence[Grant]:
        query = sa.select(t.grants).where(t.grants.c.user_id == user_id, t.grants.c.revoked_at.is_(None))
        if client_id is not None:
            query = query.where(t.grants.c.client_id == client_id)
        return [_grant(r) for r in await self._all(query.order_by(t.grants.c.created_at.desc()))]

    async def create_grant(self, grant: Grant) -> None:
        await self._write(self._insert(self._grant_row(grant)))

    async def revoke_grant(self, grant_id: str, now: datetime) -> None:
        await self._write(
            sa.update(t.grants).where(t.grants.c.grant_id == grant_id, t.grants.c.revoked_at.is_(None))
            .values(revoked_at=now),
            sa.update(t.access_tokens)
            .where(t.access_tokens.c.grant_id == grant_id, t.access_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now),
        )

    async def save_authorization_code(self, code: AuthorizationCode, grant: Grant | None = None) -> None:
        code_row = (t.authorization_codes, {
            "code_hash": code.code_hash, "grant_id": code.grant_id, "client_id": code.client_id,
            "user_id": code.user_id, "redirect_uri": code.redirect_uri, "code_challenge": code.code_challenge,
            "scope": format_scope(code.scope), "nonce": code.nonce, "claims": code.claims, "acr": code.acr,
            "amr": list(code.amr), "session_id": code.session_id, "auth_time": code.auth_time,
            "expires_at": code.expires_at, "consumed_at": None})
        await self._hot.insert(([] if grant is None else [self._grant_row(grant)]) + [code_row])

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        row = await self._one(sa.select(t.authorization_codes).where(t.authorization_codes.c.code_hash == code_hash))
        return _code(row) if row else None

    async def get_authorization_code_with_grant(
            self, code_hash: str) -> tuple[AuthorizationCode, Grant | None, User | None] | None:
        found = await self._hot.one(self._code_family, code_hash)
        if found is None:
            return None
        code, grant, user = found
        return _code(code), _grant(grant) if grant else None, _user(user) if user else None

    async def consume_authorization_code(self, code_hash: str, now: datetime, access: AccessTokenRecord | None = None,
                                         refresh: RefreshToken | None = None) -> bool:
        return await self._hot.consume(t.authorization_codes, "code_hash", code_hash, now,
                                       self._token_rows(access, refresh))

    @staticmethod
    def _access_token_row(token: AccessTokenRecord) -> tuple[sa.Table, dict[str, Any]]:
        return t.access_tokens, {
            "jti": token.jti, "grant_id": token.grant_id, "client_id": token.client_id, "user_id": token.user_id,
            "scope": format_scope(token.scope), "expires_at": token.expires_at, "revoked_at": token.revoked_at,
            "userinfo_claims": list(token.userinfo_claims), "token_hash": token.token_hash,
            "audience": list(token.audience)}

    @staticmethod
    def _refresh_token_row(token: RefreshToken) -> tuple[sa.Table, dict[str, Any]]:
        return t.refresh_tokens, {
            "token_hash": token.token_hash, "grant_id": token.grant_id, "client_id": token.client_id,
            "user_id": token.user_id, "scope": format_scope(token.scope), "created_at": token.created_at,
            "expires_at": token.expires_at, "consumed_at": token.consumed_at}

    @staticmethod
    def _insert(row: tuple[sa.Table, dict[str, Any]]) -> sa.Executable:
        table, values = row
        return sa.insert(table).values(values)

    def _token_rows(self, access: AccessTokenRecord | None,
                    refresh: RefreshToken | None) -> list[tuple[sa.Table, dict[str, Any]]]:
        return ([self._access_token_row(access)] if access is not None else []) + (
            [self._refresh_token_row(refresh)] if refresh is not None else [])

    async def record_access_token(self, token: AccessTokenRecord) -> None:
        await self._hot.insert([self._access_token_row(token)])

    async def record_tokens(self, access: AccessTokenRecord | None, refresh: RefreshToken | None) -> None:
        await self._hot.insert(self._token_rows(access, refresh))

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        row = await self._one(sa.select(t.refresh_tokens).where(t.refresh_tokens.c.token_hash == token_hash))
        return _refresh_token(row) if row else None

    async def get_refresh_token_family(self, token_hash: str) -> tuple[RefreshToken, Grant | None, User | None] | None:
        found = await self._hot.one(self._refresh_family, token_hash)
        if found is None:
            return None
        token, grant, user = found
        return _refresh_token(token), _grant(grant) if grant else None, _user(user) if user else None

    async def rotate_refresh_token(self, token_hash: str, now: datetime, new: RefreshToken,
                                   access: AccessTokenRecord | None) -> bool:
        return await self._hot.consume(t.refresh_tokens, "token_hash", token_hash, now,
                                       self._token_rows(access, new))

    async def get_access_token(self, *, jti: str | None = None,
                               token_hash: str | None = None) -> AccessTokenRecord | None:
        found = await self.get_access_token_with_owners(jti=jti, token_hash=token_hash)
        return found[0] if found else None

    async def get_access_token_with_owners(
            self, *, jti: str | None = None, token_hash: str | None = None,
    ) -> tuple[AccessTokenRecord, datetime | None, User | None] | None:
        if jti is not None:
            found = await self._hot.one(self._access_token_by["jti"], jti)
        elif token_hash is not None:
            found = await self._hot.one(self._access_token_by["token_hash"], token_hash)
        else:
            return None  # `token_hash IS NULL` would match every JWT row
        if found is None:
            return None
        token, grant, client, user = found
        return _access_token(token, grant), client.created_at if client else None, _user(user) if user else None

    async def revoke_access_token(self, token: AccessTokenRecord, now: datetime) -> None:
        """Mark a recorded token revoked, or add an unrecorded JWT to the denylist until it expires."""
        at = t.access_tokens
        if await self.get_access_token(jti=token.jti) is None:
            try:
                await self._write(self._insert(self._access_token_row(replace(token, revoked_at=now))))
                return
            except IntegrityError:
                pass  # recorded concurrently: fall through to the update
        await self._write(sa.update(at).where(at.c.jti == token.jti, at.c.revoked_at.is_(None)).values(revoked_at=now))

    async def record_audit_event(self, event: str, at: datetime, *, detail: str = "", client_id: str | None = None,
                                 user_id: str | None = None, grant_id: str | None = None) -> None:
        await self._write(sa.insert(t.audit_events).values(event=event, at=at, detail=detail, client_id=client_id,
                                                           user_id=user_id, grant_id=grant_id))

    async def list_audit_events(self, limit: int = 100) -> Sequence[dict[str, Any]]:
        rows = await self._all(sa.select(t.audit_events).order_by(t.audit_events.c.id.desc()).limit(limit))
        return [dict(r._mapping) for r in rows]

    async def get_active_access_token(self, jti: str, now: datetime) -> AccessTokenRecord | None:
        record = await self.get_access_token(jti=jti)
        if record is None or record.revoked_at is not None or record.expires_at <= now:
            return None
        return record

    # Device authorizations (RFC 8628)
    async def create_device_authorization(self, device: DeviceAuthorization) -> bool:
        """False if the user code is taken (the caller draws another)."""
        try:
            await self._write(sa.insert(t.device_authorizations).values(
                device_code_hash=device.device_code_hash, user_code=device.user_code, client_id=device.client_id,
                scope=format_scope(device.scope), resources=list(device.resources), created_at=device.created_at,
                expires_at=device.expires_at, interval=device.interval, status=device.status,
                last_polled_at=device.last_polled_at, grant_id=device.grant_id))
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            return False
        return True

    async def get_device_authorization(self, *, device_code_hash: str | None = None,
                                       user_code: str | None = None) -> DeviceAuthorization | None:
        da = t.device_authorizations
        if device_code_hash is not None:
            query = sa.select(da).where(da.c.device_code_hash == device_code_hash)
        elif user_code is not None:
            query = sa.select(da).where(da.c.user_code == user_code)
        else:
            return None
        row = await self._one(query)
        if row is None:
            return None
        return DeviceAuthorization(
            device_code_hash=row.device_code_hash, user_code=row.user_code, client_id=row.client_id,
            scope=parse_scope(row.scope), created_at=row.created_at, expires_at=row.expires_at, interval=row.interval,
            resources=tuple(row.resources), status=row.status, last_polled_at=row.last_polled_at,
            grant_id=row.grant_id)

    async def record_device_poll(self, device_code_hash: str, now: datetime, interval: int) -> None:
        da = t.device_authorizations
        await self._write(sa.update(da).where(da.c.device_code_hash == device_code_hash)
                          .values(last_polled_at=now, interval=interval))

    async def decide_device_authorization(self, device_code_hash: str, status: str, grant: Grant | None) -> bool:
        """pending → approved (with its grant, in one transaction) or denied; True for one caller."""
        da = t.device_authorizations
        async with self._db.begin() as conn:
            result = await conn.execute(
                sa.update(da).where(da.c.device_code_hash == device_code_hash, da.c.status == "pending")
                .values(status=status, grant_id=grant.grant_id if grant else None))
            if result.rowcount != 1:
                return False
            if grant is not None:
                await conn.execute(self._insert(self._grant_row(grant)))
            return True

    async def consume_device_authorization(self, device_code_hash: str) -> bool:
        da = t.device_authorizations
        return bool(await self._write(
            sa.update(da).where(da.c.device_code_hash == device_code_hash, da.c.status == "approved")
            .values(status="consumed")))

    async def rate_limit_count(self, key_hash: str, window_start: datetime) -> int:
        row = await self._one(sa.select(t.rate_limits.c.count).where(
            t.rate_limits.c.key_hash == key_hash, t.rate_limits.c.window_start >= window_start))
        return int(row[0]) if row else 0

    async def rate_limit_hit(self, key_hash: str, now: datetime, window_start: datetime) -> int:
        # One atomic upsert: concurrent failures from many processes are all counted.
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        rl = t.rate_limits
        stale = rl.c.window_start < window_start
        base = insert(rl).values(key_hash=key_hash, window_start=now, count=1)
        statement = base.on_conflict_do_update(
            index_elements=[rl.c.key_hash],
            set_={"count": sa.case((stale, 1), else_=rl.c.count + 1),
                  "window_start": sa.case((stale, base.excluded.window_start), else_=rl.c.window_start)},
        ).returning(rl.c.count)
        async with self._db.begin() as conn:
            count: int = (await conn.execute(statement)).scalar_one()
            return count

    async def rate_limit_release(self, key_hash: str) -> None:
        rl = t.rate_limits
        await self._write(sa.update(rl).where(rl.c.key_hash == key_hash, rl.c.count > 0).values(count=rl.c.count - 1))

    async def rate_limit_reset(self, key_hash: str) -> None:
        await self._write(sa.delete(t.rate_limits).where(t.rate_limits.c.key_hash == key_hash))

    async def delete_expired(self, now: datetime, *, rate_limit_window: timedelta = DAY,
                             audit_retention: timedelta | None = None) -> int:
        async with self._db.begin() as conn:
            count = 0
            for table in (t.sessions, t.interactions, t.authorization_codes, t.access_tokens, t.refresh_tokens,
                          t.device_authorizations):
                result = await conn.execute(sa.delete(table).where(table.c.expires_at <= now))
                count += int(result.rowcount)
            # A rate-limit window older than the window length (and a day) counts for nothing.
            cutoff = now - max(DAY, rate_limit_window)
            stale = await conn.execute(sa.delete(t.rate_limits).where(t.rate_limits.c.window_start <= cutoff))
            count += int(stale.rowcount)
            if audit_retention is not None:
                old = await conn.execute(sa.delete(t.audit_events).where(t.audit_events.c.at <= now - audit_retention))
                count += int(old.rowcount)
            # A grant outlives its revocation or end by longer than any access token can (TTL <= 1 day), so a
            # token recorded in a race with the revocation never finds its grant gone.
            g = t.grants
            gone = await conn.execute(sa.delete(g).where(sa.or_(g.c.revoked_at <= now - 2 * DAY,
                                                                g.c.expires_at <= now - 2 * DAY)))
            return count + int(gone.rowcount)
