"""The PostgreSQL connection set behind the hot statements (`hot.PostgresDriver`), on a real server.

It replaces asyncpg's pool on the token path, so what a pool guarantees is checked here: never more
connections than its size however many callers wait, no connection lost to a cancelled caller or a
failed statement, and a failed or cancelled statement's connection never handed to someone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bastion.store.sql.hot import PostgresDriver
from tests.conftest import PG_ADMIN

pytestmark = pytest.mark.postgres

PID = "SELECT pg_backend_pid()"


@pytest.fixture
async def driver(pg_available: bool) -> AsyncIterator[PostgresDriver]:
    if not pg_available:
        pytest.skip("PostgreSQL not reachable (outside CI)")
    built = PostgresDriver(PG_ADMIN, max_size=2)
    try:
        yield built
    finally:
        await built.close()


async def test_many_callers_share_at_most_max_size_connections(driver: PostgresDriver) -> None:
    pids = await asyncio.gather(*(driver.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.01)", ())
                                  for _ in range(40)))
    assert len(pids) == 40 and len(set(pids)) <= 2


async def test_a_cancelled_waiter_gives_back_its_turn(driver: PostgresDriver) -> None:
    busy = [asyncio.create_task(driver.fetchval("SELECT pg_sleep(0.3)", ())) for _ in range(2)]
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(driver.fetchval(PID, ()))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.gather(*busy)
    # Both connections are back: two concurrent callers run at once, not one after the other.
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(driver.fetchval("SELECT pg_sleep(0.2)", ()) for _ in range(2)))
    assert asyncio.get_running_loop().time() - started < 0.35


async def test_a_failed_statement_closes_its_connection_and_the_rest_carry_on(driver: PostgresDriver) -> None:
    before = await driver.fetchval(PID, ())
    with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
        await driver.fetchval("SELECT 1 / (pg_backend_pid() - pg_backend_pid())", ())
    after = await asyncio.gather(*(driver.fetchval(PID, ()) for _ in range(10)))
    assert before not in after  # the connection that failed was not reused
    assert len(set(after)) <= 2


async def test_a_cancelled_statement_never_reaches_the_next_caller(driver: PostgresDriver) -> None:
    slow = asyncio.create_task(driver.fetchval("SELECT pg_sleep(5)", ()))
    await asyncio.sleep(0.1)
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # Every caller gets its own answer, none a leftover of the cancelled statement.
    answers = await asyncio.gather(*(driver.fetchval("SELECT $1::int", (n,)) for n in range(10)))
    assert answers == list(range(10))


async def test_reads_reconnect_after_the_server_drops_every_connection(driver: PostgresDriver) -> None:
    pids = set(await asyncio.gather(*(driver.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.05)", ())
                                      for _ in range(4))))
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        for pid in pids:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    row = await driver.fetchrow("SELECT pg_backend_pid()", ())
    assert row is not None and row[0] not in pids
