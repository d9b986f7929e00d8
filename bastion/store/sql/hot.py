"""The statements of every token request, run on the database drivers themselves (asyncpg, sqlite3).

SQLAlchemy Core builds and runs every other statement. These few run on each token, UserInfo and
introspection request, where SQLAlchemy's async execution costs about 260 µs of CPU per PostgreSQL
query against about 35 µs for an asyncpg prepared statement (measured on one connection; see the
closing notes of bench/). Their SQL is generated once from the table metadata in `tables.py`, so the
schema keeps one definition, and values are stored exactly as SQLAlchemy stores them: datetimes as
naive UTC (SQLite: its text format, so that comparisons stay textual and right), JSON as text.

The SQL text holds only identifiers from `tables.py` (looked up there, so a misspelt one fails at
start-up) and fixed operators; every value is a bound parameter.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .tables import UTCDateTime, aware_utc, naive_utc

__all__ = ["HotSQL", "PostgresDriver", "SQLiteDriver", "Select"]

SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DATETIME on SQLite
Row = tuple[sa.Table, dict[str, Any]]
Convert = Callable[[Any], Any]


# Values in and out, by column type

def _sqlite_datetime(value: datetime) -> str:
    return naive_utc(value).strftime(SQLITE_DATETIME)


def _nullable(convert: Convert) -> Convert:
    return lambda value: None if value is None else convert(value)


def _encoder(column: sa.Column[Any], sqlite: bool) -> Convert | None:
    if isinstance(column.type, UTCDateTime):
        return _nullable(_sqlite_datetime if sqlite else naive_utc)
    if isinstance(column.type, sa.JSON):
        return json.dumps  # None becomes JSON null, as SQLAlchemy stores it
    return None


def _decoder(column: sa.Column[Any]) -> Convert | None:
    if isinstance(column.type, UTCDateTime):
        return _nullable(aware_utc)
    if isinstance(column.type, sa.JSON):
        return _nullable(json.loads)
    return None


def _encode(encoders: Sequence[Convert | None], values: Sequence[Any]) -> list[Any]:
    return [v if encode is None else encode(v) for encode, v in zip(encoders, values, strict=True)]


class _Columns:
    """Some columns of one table in a SELECT list, and how each value comes back as Python."""

    def __init__(self, table: sa.Table, alias: str, names: Sequence[str] | None = None) -> None:
        columns = [table.c[n] for n in names] if names is not None else list(table.c)
        self.names = [c.name for c in columns]
        self.decoders = [_decoder(c) for c in columns]
        self.sql = ", ".join(f"{alias}.{c.name}" for c in columns)

    def decode(self, values: Sequence[Any]) -> SimpleNamespace | None:
        if values[0] is None:  # the first column is NULL only when an outer join found no row
            return None
        return SimpleNamespace(**{name: value if decode is None else decode(value) for name, decode, value
                                  in zip(self.names, self.decoders, values, strict=True)})


class Select:
    """`SELECT` a table's row by some of its columns, with outer-joined rows of other tables."""

    def __init__(self, sqlite: bool, table: sa.Table, where: Sequence[tuple[str, str]],
                 joins: Sequence[tuple[sa.Table, str, str, Sequence[str] | None]] = ()) -> None:
        """`where`: (column, operator) pairs, one argument each; `joins`: (table, alias, ON, columns)."""
        self.parts = [_Columns(table, "t")] + [_Columns(j, alias, names) for j, alias, _, names in joins]
        self.encoders = [_encoder(table.c[name], sqlite) for name, _ in where]
        placeholder = _placeholder(sqlite)
        self.sql = (f"SELECT {', '.join(p.sql for p in self.parts)} FROM {table.name} t"  # noqa: S608
                    + "".join(f" LEFT JOIN {j.name} {alias} ON {on}" for j, alias, on, _ in joins)
                    + " WHERE " + " AND ".join(f"t.{name} {op} {placeholder(n)}"
                                               for n, (name, op) in enumerate(where, 1)))

    def decode(self, row: Sequence[Any]) -> list[Any]:
        """One namespace per table (by column name), None for a joined row not found."""
        decoded: list[Any] = []
        start = 0
        for part in self.parts:
            decoded.append(part.decode(row[start:start + len(part.names)]))
            start += len(part.names)
        return decoded


def _placeholder(sqlite: bool) -> Callable[[int], str]:
    return (lambda n: f"?{n}") if sqlite else (lambda n: f"${n}")


def _pg_type(column: sa.Column[Any]) -> str:
    return column.type.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]


class HotSQL:
    """The hot reads and writes, with their SQL generated once per shape and cached."""

    def __init__(self, driver: PostgresDriver | SQLiteDriver) -> None:
        self.driver = driver
        self.sqlite = isinstance(driver, SQLiteDriver)
        self._writes: dict[tuple[Any, ...], tuple[list[str], list[list[Convert | None]]]] = {}

    def select(self, table: sa.Table, where: Sequence[tuple[str, str]],
               joins: Sequence[tuple[sa.Table, str, str, Sequence[str] | None]] = ()) -> Select:
        return Select(self.sqlite, table, where, joins)

    async def one(self, query: Select, *args: Any) -> list[Any] | None:
        row = await self.driver.fetchrow(query.sql, _encode(query.encoders, args))
        return None if row is None else query.decode(row)

    async def insert(self, rows: Sequence[Row]) -> None:
        """Insert rows atomically: on PostgreSQL in one statement (one round trip)."""
        if rows:
            await self._write(None, [], rows)

    async def consume(self, table: sa.Table, key: str, value: str, now: datetime, rows: Sequence[Row]) -> bool:
        """Set `consumed_at` on the row where `key` = `value` if unset, and insert `rows` with it,
        atomically: True for exactly one of any number of racing callers; the others, and a failed
        insert, write nothing. On PostgreSQL one statement (data-modifying CTEs, each insert fed by the
        update's one row), so one round trip."""
        placeholder = _placeholder(self.sqlite)
        update = (f"UPDATE {table.name} SET consumed_at = {placeholder(1)} "  # noqa: S608
                  f"WHERE {key} = {placeholder(2)} AND consumed_at IS NULL")
        stamp = _encoder(table.c.consumed_at, self.sqlite)
        return await self._write(update, [stamp(now) if stamp else now, value], rows)

    async def _write(self, update: str | None, head: list[Any], rows: Sequence[Row]) -> bool:
        shape = (update, *((table.name, *values) for table, values in rows))
        if shape not in self._writes:
            self._writes[shape] = self._compile(update, rows)
        sqls, encoders = self._writes[shape]
        args = [_encode(e, list(values.values())) for e, (_, values) in zip(encoders, rows, strict=True)]
        if isinstance(self.driver, SQLiteDriver):
            statements = list(zip(sqls, args, strict=True))
            return await self.driver.transaction([(update, head), *statements] if update else statements,
                                                 guarded=update is not None)
        flat = head + [a for row_args in args for a in row_args]
        if update is None:
            await self.driver.fetchval(sqls[0], flat)
            return True
        return bool(await self.driver.fetchval(sqls[0], flat) == 1)

    def _compile(self, update: str | None, rows: Sequence[Row]) -> tuple[list[str], list[list[Convert | None]]]:
        """SQLite: one INSERT per row (run in one transaction). PostgreSQL: one statement whose INSERTs
        are CTEs; after an UPDATE, each inserts as many copies as the update changed rows (0 or 1), with
        casts since the values then come from a SELECT list."""
        placeholder = _placeholder(self.sqlite)
        sqls: list[str] = []
        encoders: list[list[Convert | None]] = []
        n = 1 if update is None else 3
        for table, values in rows:
            columns = [table.c[name] for name in values]
            if self.sqlite:
                n = 1  # statements of their own
            if update is None or self.sqlite:
                body = f"VALUES ({', '.join(placeholder(n + i) for i in range(len(columns)))})"
            else:
                casts = ", ".join(f"{placeholder(n + i)}::{_pg_type(c)}" for i, c in enumerate(columns))
                body = f"SELECT {casts} FROM consumed"  # noqa: S608
            sqls.append(f"INSERT INTO {table.name} ({', '.join(values)}) {body}")
            encoders.append([_encoder(c, self.sqlite) for c in columns])
            n += len(columns)
        if self.sqlite:
            return sqls, encoders
        if update is None:
            ctes = ", ".join(f"i{i} AS ({sql})" for i, sql in enumerate(sqls[:-1]))
            return [(f"WITH {ctes} " if ctes else "") + sqls[-1]], encoders
        ctes = "".join(f", i{i} AS ({sql})" for i, sql in enumerate(sqls))
        return [f"WITH consumed AS ({update} RETURNING 1){ctes} SELECT count(*) FROM consumed"], encoders  # noqa: S608


# A connection the server closed (restart, failover, pg_terminate_backend): a read is retried once.
# (InternalClientError: a connection whose server hung up mid-way can be left in a state asyncpg refuses.)
_DROPPED = (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.InterfaceError,
            asyncpg.exceptions.InternalClientError, ConnectionError)


class PostgresDriver:
    """Up to `max_size` asyncpg connections, opened on demand, each running one statement at a time;
    asyncpg caches each connection's prepared statements.

    Not asyncpg's Pool: its acquire and release (timeouts, a shielded reset query per release) cost as
    much CPU as the statement itself (measured: 47 against 23 µs per query). These statements need no
    reset: each is one autocommit statement that never locks, listens, opens a cursor or changes a
    setting. A connection whose statement failed or was cancelled is closed, never handed on.
    """

    def __init__(self, dsn: str, max_size: int) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._idle: list[Any] = []
        self._opened = 0  # open or being opened, idle or in use
        # Each gets a connection, or None: a slot is free, open one.
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False

    async def _acquire(self) -> Any:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._opened -= 1
        if self._opened < self._max_size:
            self._opened += 1
            return await self._connect()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except BaseException:  # cancelled, perhaps just after being handed a connection or a slot
            if waiter.done() and not waiter.cancelled():
                if waiter.result() is None:
                    self._free_slot()
                else:
                    self._release(waiter.result())
            raise
        return conn if conn is not None else await self._connect()

    async def _connect(self) -> Any:
        """Open a connection in a slot already counted in `_opened`."""
        try:
            return await asyncpg.connect(self._dsn)
        except BaseException:
            self._free_slot()
            raise

    def _hand_on(self, conn: Any) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def _release(self, conn: Any) -> None:
        if self._closed:
            conn.terminate()
        elif not self._hand_on(conn):
            self._idle.append(conn)

    def _free_slot(self) -> None:
        self._opened -= 1
        if self._hand_on(None):
            self._opened += 1  # the waiter opens it

    def _discard(self, conn: Any) -> None:
        conn.terminate()
        self._free_slot()

    async def _run(self, method: str, sql: str, args: Sequence[Any]) -> Any:
        conn = await self._acquire()
        try:
            result = await getattr(conn, method)(sql, *args)
        except BaseException:
            self._discard(conn)
            raise
        self._release(conn)
        return result

    async def fetchrow(self, sql: str, args: Sequence[Any]) -> Sequence[Any] | None:
        try:
            return await self._run("fetchrow", sql, args)  # type: ignore[no-any-return]
        except _DROPPED:
            # The server dropped it, and likely every idle one with it: all reconnect.
            while self._idle:
                self._discard(self._idle.pop())
            return await self._run("fetchrow", sql, args)  # type: ignore[no-any-return]

    async def fetchval(self, sql: str, args: Sequence[Any]) -> Any:
        """A write: never retried, since it may have been carried out before the connection broke."""
        return await self._run("fetchval", sql, args)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


Statement = tuple[str, Sequence[Any]]


class _Write:
    """One caller's statements, waiting for the next group commit."""

    __slots__ = ("answer", "guarded", "statements")

    def __init__(self, statements: Sequence[Statement], guarded: bool, answer: asyncio.Future[bool]) -> None:
        self.statements = statements
        self.guarded = guarded
        self.answer = answer


class SQLiteDriver:
    """One sqlite3 connection, used right on the event loop (see `store._LoopSQLite` for why).

    Writes are group-committed: those that arrive in one turn of the loop run together in the next,
    in one transaction, and every caller hears back only after its COMMIT. A commit is most of an
    insert's cost (its WAL frames: the table's page and each index's, written and hashed per commit),
    so under load one commit serves many requests; alone, a write waits one turn (microseconds). Each
    write keeps its own atomicity: one that fails is undone alone (its savepoint, or SQLite's own
    statement rollback) and only its caller hears of it. The batch runs inside one loop callback, so
    the write lock is never held across an await, and no read sees a write before it is committed.
    """

    def __init__(self, path: str, prepare: Callable[[sqlite3.Connection], None]) -> None:
        self._path, self._prepare = path, prepare
        self._conn = self._connect()
        self._pending: list[_Write] = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
        self._prepare(conn)
        return conn

    async def fetchrow(self, sql: str, args: Sequence[Any]) -> Sequence[Any] | None:
        # fetchall, not fetchone: the statement runs to its end, so no read transaction stays open.
        rows = self._conn.execute(sql, args).fetchall()
        return rows[0] if rows else None

    async def transaction(self, statements: Sequence[Statement], *, guarded: bool) -> bool:
        """Run the statements atomically, committed when this returns; when `guarded` and the first
        changes no row, write nothing and answer False. A caller cancelled before its turn writes
        nothing; one cancelled later may have written (as with any database)."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._commit_pending)
        answer: asyncio.Future[bool] = loop.create_future()
        self._pending.append(_Write(statements, guarded, answer))
        return await answer

    def _commit_pending(self) -> None:
        writes = [w for w in self._pending if not w.answer.done()]  # done: its caller was cancelled
        self._pending = []
        if not writes:
            return
        try:
            if len(writes) == 1 and len(writes[0].statements) == 1:
                # A statement is a transaction of its own: no BEGIN and COMMIT.
                self._answer(writes, [self._run_one(writes[0])])
            else:
                self._answer(writes, self._run_together(writes))
        finally:
            # Whatever went wrong (a ROLLBACK that failed too, an interrupt), no caller waits forever,
            # and no transaction stays open to hold the write lock and take later writes along with it.
            unanswered = [w for w in writes if not w.answer.done()]
            self._answer(unanswered, [sqlite3.OperationalError("the write was not committed")] * len(unanswered))
            if self._conn.in_transaction:
                self._conn.close()  # which rolls the transaction back
                self._conn = self._connect()

    def _run_together(self, writes: list[_Write]) -> list[bool | Exception]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:  # every caller hears of it
            return [exc] * len(writes)
        results: list[bool | Exception] = []
        try:
            for write in writes:
                results.append(self._run_one(write))
                if not conn.in_transaction:  # SQLite rolled all back (disk full, I/O error...)
                    failed = results[-1]
                    error = failed if isinstance(failed, Exception) else sqlite3.OperationalError("rolled back")
                    return [error] * len(writes)
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [exc] * len(writes)
        return results

    def _run_one(self, write: _Write) -> bool | Exception:
        """One write's statements, atomically: a single statement is (SQLite undoes a failed one
        alone); several run in a savepoint."""
        conn = self._conn
        if len(write.statements) == 1:
            try:
                changed = conn.execute(*write.statements[0]).rowcount
            except Exception as exc:  # its caller hears of it
                return exc
            return changed != 0 or not write.guarded
        conn.execute("SAVEPOINT write")
        try:
            for n, statement in enumerate(write.statements):
                if conn.execute(*statement).rowcount == 0 and write.guarded and n == 0:
                    conn.execute("ROLLBACK TO write")
                    conn.execute("RELEASE write")
                    return False
        except Exception as exc:  # its caller hears of it
            if conn.in_transaction:
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
            return exc
        conn.execute("RELEASE write")
        return True

    @staticmethod
    def _answer(writes: list[_Write], results: Sequence[bool | Exception]) -> None:
        for write, result in zip(writes, results, strict=True):
            if isinstance(result, Exception):
                write.answer.set_exception(result)
            else:
                write.answer.set_result(result)

    async def close(self) -> None:
        self._commit_pending()  # writes already queued are carried out, not dropped
        self._conn.close()
