"""SQLite's group commit (`hot.SQLiteDriver.transaction`): writes arriving together share one
transaction, yet each caller sees exactly what a transaction of its own would give it.

What a caller relies on: once its write returns, the write is committed (another connection reads
it); a write that fails is undone whole and fails only its own caller; a guarded write that finds
nothing to change writes nothing; a caller cancelled before its turn writes nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from bastion.store.sql.hot import SQLiteDriver

INSERT = "INSERT INTO items (key, note) VALUES (?, ?)"
CONSUME = "UPDATE tickets SET used = 1 WHERE key = ? AND used = 0"


def _wal(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")


@pytest.fixture
def path(tmp_path: Path) -> str:
    db = str(tmp_path / "group.db")
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(
            "CREATE TABLE items (key TEXT PRIMARY KEY, note TEXT NOT NULL);"
            "CREATE TABLE tickets (key TEXT PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0);"
            "INSERT INTO tickets (key) VALUES ('t1');"
        )
    return db


@pytest.fixture
async def driver(path: str) -> AsyncIterator[SQLiteDriver]:
    built = SQLiteDriver(path, _wal)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
def transactions(driver: SQLiteDriver) -> Iterator[list[str]]:
    """The BEGIN, COMMIT and ROLLBACK statements the driver's connection runs."""
    seen: list[str] = []
    driver._conn.set_trace_callback(  # its statements are what is under test
        lambda sql: seen.append(sql) if sql.split()[0] in {"BEGIN", "COMMIT", "ROLLBACK"} else None)
    yield seen


def _keys(path: str) -> set[str]:
    """What another connection (another process, say) reads: committed rows only."""
    with closing(sqlite3.connect(path)) as conn:
        return {key for (key,) in conn.execute("SELECT key FROM items")}


async def test_writes_arriving_together_share_one_commit_and_each_is_committed_when_it_returns(
        driver: SQLiteDriver, path: str, transactions: list[str]) -> None:
    async def write(key: str) -> bool:
        done = await driver.transaction([(INSERT, (key, "n"))], guarded=False)
        assert key in _keys(path)  # committed before its caller hears back
        return done

    keys = [f"k{i}" for i in range(20)]
    assert await asyncio.gather(*(write(key) for key in keys)) == [True] * 20
    assert _keys(path) == set(keys)
    assert transactions == ["BEGIN IMMEDIATE", "COMMIT"]


async def test_a_write_alone_runs_without_a_transaction_around_it(
        driver: SQLiteDriver, path: str, transactions: list[str]) -> None:
    assert await driver.transaction([(INSERT, ("solo", "n"))], guarded=False)
    assert _keys(path) == {"solo"} and transactions == []


async def test_a_failing_write_fails_only_its_own_caller(driver: SQLiteDriver, path: str) -> None:
    await driver.transaction([(INSERT, ("taken", "n"))], guarded=False)
    results = await asyncio.gather(
        driver.transaction([(INSERT, ("a", "n"))], guarded=False),
        driver.transaction([(INSERT, ("taken", "again"))], guarded=False),  # primary key taken
        driver.transaction([(INSERT, ("b", "n")), (INSERT, ("c", None))], guarded=False),  # NOT NULL
        driver.transaction([(INSERT, ("d", "n")), (INSERT, ("e", "n"))], guarded=False),
        return_exceptions=True,
    )
    assert results[0] is True and results[3] is True
    assert isinstance(results[1], sqlite3.IntegrityError) and isinstance(results[2], sqlite3.IntegrityError)
    # The failed two-statement write is undone whole: "b" went in before "c" failed, and is gone.
    assert _keys(path) == {"taken", "a", "d", "e"}


async def test_racing_guarded_writes_in_one_commit_succeed_exactly_once(driver: SQLiteDriver, path: str) -> None:
    async def consume(n: int) -> bool:
        return await driver.transaction([(CONSUME, ("t1",)), (INSERT, (f"issued-{n}", "n"))], guarded=True)

    results = await asyncio.gather(*(consume(n) for n in range(10)))
    assert results.count(True) == 1
    assert _keys(path) == {f"issued-{results.index(True)}"}  # the losers' inserts were not written


async def test_a_guarded_single_statement_that_changes_nothing_answers_false(driver: SQLiteDriver) -> None:
    assert await driver.transaction([(CONSUME, ("t1",))], guarded=True) is True
    assert await driver.transaction([(CONSUME, ("t1",))], guarded=True) is False
    assert await driver.transaction([(CONSUME, ("no such ticket",))], guarded=True) is False


async def test_a_caller_cancelled_before_its_turn_writes_nothing(driver: SQLiteDriver, path: str) -> None:
    kept = asyncio.create_task(driver.transaction([(INSERT, ("kept", "n"))], guarded=False))
    dropped = asyncio.create_task(driver.transaction([(INSERT, ("dropped", "n"))], guarded=False))
    await asyncio.sleep(0)  # both queued, their commit not yet run
    dropped.cancel()
    assert await kept is True
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert _keys(path) == {"kept"}


async def test_when_sqlite_abandons_the_transaction_every_answer_matches_what_is_stored(path: str) -> None:
    # A full database (here: a page limit) can make SQLite roll back the whole transaction, taking
    # writes that had succeeded in it along: whatever it does, no caller may hear True for a row
    # that is not there.
    with closing(sqlite3.connect(path)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]

    def limited(conn: sqlite3.Connection) -> None:
        _wal(conn)
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    driver = SQLiteDriver(path, limited)
    try:
        keys = [f"small-{i}" for i in range(5)]
        results = await asyncio.gather(
            *(driver.transaction([(INSERT, (key, "n"))], guarded=False) for key in keys[:3]),
            driver.transaction([(INSERT, ("huge", "x" * 200_000))], guarded=False),
            *(driver.transaction([(INSERT, (key, "n"))], guarded=False) for key in keys[3:]),
            return_exceptions=True,
        )
        assert isinstance(results[3], sqlite3.Error)
        stored = _keys(path)
        assert "huge" not in stored
        for key, result in zip(keys, results[:3] + results[4:], strict=True):
            assert (result is True) == (key in stored), (key, result)
        # And the connection is usable afterwards.
        assert await driver.transaction([(INSERT, ("after", "n"))], guarded=False) is True
        assert "after" in _keys(path)
    finally:
        await driver.close()


async def test_a_failed_commit_whose_rollback_fails_too_leaves_no_caller_waiting_and_no_write_behind(
        path: str) -> None:
    # SQLite's authorizer refuses COMMIT and ROLLBACK, as a broken disk or connection might: the batch's
    # transaction can neither end nor be undone on that connection.
    refused = {"COMMIT", "ROLLBACK"}

    def refusing(conn: sqlite3.Connection) -> None:
        _wal(conn)
        conn.set_authorizer(lambda action, operation, *_: sqlite3.SQLITE_DENY
                            if action == sqlite3.SQLITE_TRANSACTION and operation in refused else sqlite3.SQLITE_OK)

    driver = SQLiteDriver(path, refusing)
    try:
        results = await asyncio.wait_for(asyncio.gather(
            *(driver.transaction([(INSERT, (key, "n"))], guarded=False) for key in ("a", "b")),
            return_exceptions=True), timeout=5)
        assert all(isinstance(result, sqlite3.Error) for result in results), results
        refused.clear()
        assert _keys(path) == set()
        # The transaction left open was dropped with its connection: later writes are committed.
        assert await driver.transaction([(INSERT, ("after", "n"))], guarded=False) is True
        assert _keys(path) == {"after"}
    finally:
        await driver.close()


async def test_writes_queued_when_the_driver_closes_are_committed(path: str) -> None:
    driver = SQLiteDriver(path, _wal)
    last = asyncio.create_task(driver.transaction([(INSERT, ("last", "n"))], guarded=False))
    await asyncio.sleep(0)  # queued, its commit not yet run
    await driver.close()
    assert await last is True
    assert _keys(path) == {"last"}
