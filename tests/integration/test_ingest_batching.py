"""Group commit (app/http/ingest.py) and the pool's connection check
(app/store/pool.py) on a real database: when a batch goes, what waits for
what, and a connection the server closed is replaced without a failure."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from app.http.ingest import InboundBatcher
from app.store import pool as pool_module
from app.store.pool import new_pool

# Far longer than any test: a batch that waited for its window would hang the test.
NEVER = 3600.0
DEADLINE = 30.0


def message(n: int) -> dict:
    return {"v": 1, "event": "messages.upsert", "message": {"message_id": f"GC-{n}", "text": f"m{n}"}, "raw": None}


def queued(db: psycopg.Connection) -> list[str]:
    rows = db.execute("SELECT message->'message'->>'message_id' AS id FROM pgmq.q_inbound ORDER BY msg_id").fetchall()
    return [r["id"] for r in rows]


async def until(condition, what: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.01)
    assert condition(), what


@pytest.fixture
async def pool(settings):
    the_pool = new_pool(settings, min_size=1, max_size=4)
    await the_pool.open(wait=True)
    yield the_pool
    await the_pool.close()


async def test_a_lone_message_goes_at_once_without_waiting_for_the_window(pool, db):
    batcher = InboundBatcher(pool, window_seconds=NEVER, wait_seconds=5)
    async with asyncio.timeout(DEADLINE):
        msg_id = await batcher.enqueue(message(1))
    assert batcher.batches == 1
    assert queued(db) == ["GC-1"]
    assert isinstance(msg_id, int)


async def test_messages_arriving_during_a_commit_wait_for_it_and_go_together(pool, db, database_url):
    batcher = InboundBatcher(pool, window_seconds=NEVER, wait_seconds=5, max_in_flight=1)
    with psycopg.connect(database_url) as blocker:  # holds the queue table: the first batch cannot commit
        blocker.execute("LOCK TABLE pgmq.q_inbound IN ACCESS EXCLUSIVE MODE")
        first = asyncio.ensure_future(batcher.enqueue(message(0)))
        await until(lambda: batcher.batches == 1, "the first message went alone, at once")
        later = [asyncio.ensure_future(batcher.enqueue(message(n))) for n in range(1, 6)]
        await asyncio.sleep(0.2)
        assert batcher.batches == 1  # the others wait for the batch being committed
        blocker.rollback()
    async with asyncio.timeout(DEADLINE):
        msg_ids = await asyncio.gather(first, *later)
    assert batcher.batches == 2  # then went in one transaction
    assert len(set(msg_ids)) == 6
    assert queued(db) == [f"GC-{n}" for n in range(6)]


async def test_up_to_max_in_flight_batches_commit_at_once_and_the_next_messages_wait_for_one(pool, db, database_url):
    batcher = InboundBatcher(pool, window_seconds=NEVER, wait_seconds=5, max_in_flight=2)
    with psycopg.connect(database_url) as blocker:  # holds the queue table: no batch can commit
        blocker.execute("LOCK TABLE pgmq.q_inbound IN ACCESS EXCLUSIVE MODE")
        first = asyncio.ensure_future(batcher.enqueue(message(0)))
        await until(lambda: batcher.batches == 1, "the first message went alone, at once")
        second = asyncio.ensure_future(batcher.enqueue(message(1)))
        await until(lambda: batcher.batches == 2, "the second went beside it: one batch in flight leaves room")
        later = [asyncio.ensure_future(batcher.enqueue(message(n))) for n in range(2, 6)]
        await asyncio.sleep(0.2)
        assert batcher.batches == 2  # two in flight: the others wait for one of them
        assert not first.done() and not second.done()
        blocker.rollback()
    async with asyncio.timeout(DEADLINE):
        msg_ids = await asyncio.gather(first, second, *later)
    assert batcher.batches == 3  # the four waiting ones went together
    assert len(set(msg_ids)) == 6
    assert sorted(queued(db)) == [f"GC-{n}" for n in range(6)]


def test_max_in_flight_below_one_is_refused(pool):
    with pytest.raises(ValueError, match="max_in_flight must be at least 1, got 0"):
        InboundBatcher(pool, window_seconds=0.001, wait_seconds=5, max_in_flight=0)


async def test_a_slow_commit_holds_the_next_messages_only_for_the_window(pool, db, database_url):
    batcher = InboundBatcher(pool, window_seconds=0.05, wait_seconds=5, max_in_flight=1)
    with psycopg.connect(database_url) as blocker:
        blocker.execute("LOCK TABLE pgmq.q_inbound IN ACCESS EXCLUSIVE MODE")
        first = asyncio.ensure_future(batcher.enqueue(message(0)))
        await until(lambda: batcher.batches == 1, "the first message went at once")
        later = [asyncio.ensure_future(batcher.enqueue(message(n))) for n in range(1, 4)]
        # The first batch is still blocked: after the window the others go in a transaction of their own.
        await until(lambda: batcher.batches == 2, "the waiting messages went beside the blocked batch")
        assert not first.done()
        blocker.rollback()
    async with asyncio.timeout(DEADLINE):
        await asyncio.gather(first, *later)
    assert sorted(queued(db)) == [f"GC-{n}" for n in range(4)]


async def test_the_pool_asks_a_connection_only_when_the_server_has_closed_it(pool, db, monkeypatch):
    asked: list[int] = []
    full_check = AsyncConnectionPool.check_connection

    async def spy(conn):
        asked.append(conn.info.backend_pid)
        await full_check(conn)

    monkeypatch.setattr(pool_module.AsyncConnectionPool, "check_connection", spy)
    async with pool.connection() as conn:
        pid = conn.info.backend_pid
    async with pool.connection() as conn:
        assert conn.info.backend_pid == pid
    assert asked == []  # an idle, healthy connection: no round trip to check it

    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    await asyncio.sleep(0.2)
    async with pool.connection() as conn:  # the dead one is found and replaced: no error for the caller
        row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
    assert asked == [pid]
    assert row["pid"] != pid
