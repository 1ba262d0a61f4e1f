"""The connection pool and the two ways a process asks Postgres something:
`fetch_one` and `fetch_all` run one named query (app/store/queries.sql) on a
pooled connection, with SQL's own errors translated (`wrap_db_errors`).
"""

from __future__ import annotations

import select
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.core.config import Settings
from app.store.dburl import parse_database_url
from app.store.errors import wrap_db_errors
from app.store.queries import queries


def new_pool(
    settings: Settings, *, min_size: int = 1, max_size: int = 10, name: str = "julia", timeout: float = 30.0
) -> AsyncConnectionPool:
    """An unopened async pool on DATABASE_URL (autocommit, dict rows)."""
    kwargs: dict[str, object] = {"autocommit": True, "row_factory": dict_row}
    if parse_database_url(settings.database_url).is_transaction_pooler:
        # A transaction pooler cannot keep prepared statements between transactions.
        kwargs["prepare_threshold"] = None
    # Connections are checked when taken (check_idle_connection): after a database
    # restart a stale one is replaced instead of failing the caller.
    return AsyncConnectionPool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        kwargs=kwargs,
        timeout=timeout,
        check=check_idle_connection,
    )


async def check_idle_connection(conn: AsyncConnection[Any]) -> None:
    """The pool's check of a connection it hands out, without a round trip while
    nothing is wrong: an idle connection has nothing to read unless the server
    closed it (a restart, a terminated backend: its last message, then the end
    of the stream) or said something unasked. Only then is the connection asked
    (`check_connection`: one round trip), which raises for a dead one so the
    pool replaces it.
    """
    fd = -1 if conn.closed else conn.pgconn.socket
    if fd >= 0:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        if not poller.poll(0):
            return
    await AsyncConnectionPool.check_connection(conn)


async def fetch_one(
    pool: AsyncConnectionPool, query: str, /, *, wait: float | None = None, **params: Any
) -> dict[str, Any] | None:
    """The first row of named query `query` (None when it returns none);
    `wait`: seconds to wait for a pooled connection (the pool's default if None)."""
    with wrap_db_errors():
        async with pool.connection(timeout=wait) as conn:
            cur = await conn.execute(queries[query], params)
            return await cur.fetchone()


async def fetch_all(
    pool: AsyncConnectionPool, query: str, /, *, wait: float | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Every row of named query `query`."""
    with wrap_db_errors():
        async with pool.connection(timeout=wait) as conn:
            cur = await conn.execute(queries[query], params)
            return await cur.fetchall()
