"""The pool's check of a connection it hands out (app.store.pool.check_if_closed):
no round trip for a healthy connection, a stale one replaced."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from app.core.config import Settings
from app.store.pool import check_if_closed, fetch_one, new_pool
from tests.conftest import wait_for


def terminated(db: psycopg.Connection, pid: int) -> bool:
    db.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return not db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()


async def test_a_connection_whose_backend_is_gone_is_replaced_when_taken(db, settings: Settings):
    pool = new_pool(settings, min_size=1, max_size=1)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            first = (await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]
        wait_for(lambda: terminated(db, first))
        async with pool.connection() as conn:
            second = (await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone())["pid"]
        assert second != first
        assert await fetch_one(pool, "ping") is not None
    finally:
        await pool.close()


async def test_a_healthy_connection_is_not_asked_and_a_closed_one_is(db, database_url: str, monkeypatch):
    asked = []

    async def counting_check(conn) -> None:
        asked.append(conn)
        await real_check(conn)

    real_check = AsyncConnectionPool.check_connection
    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counting_check))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await check_if_closed(conn)
        assert asked == []
        pid = conn.info.backend_pid
        wait_for(lambda: terminated(db, pid))
        with pytest.raises(psycopg.OperationalError):
            await check_if_closed(conn)
        assert asked == [conn]
