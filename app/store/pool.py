"""The connection pool and the two ways a process asks Postgres something:
`fetch_one` and `fetch_all` run one named query (app/store/queries.sql) on a
pooled connection, with SQL's own errors translated (`wrap_db_errors`).
"""

from __future__ import annotations

import select
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import ConnStatus
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
    # Connections are checked when taken (check_if_closed): after a database
    # restart a stale one is replaced instead of failing the caller.
    return AsyncConnectionPool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        name=name,
        kwargs=kwargs,
        timeout=timeout,
        check=check_if_closed,
    )


async def check_if_closed(conn: AsyncConnection) -> None:
    """The check of a connection taken from a pool, without a round trip when
    nothing says it is stale.

    A server that closes a connection (a restart, a terminated backend, an
    idle timeout) says so on the socket: its FATAL message or EOF waits
    there, while an idle healthy connection has nothing to read. Only then is
    the connection asked (psycopg_pool's check: an empty query), which raises
    when it is gone, and the pool replaces it. A connection that dies between
    this check and its query fails that query, as it did with a round trip.
    """
    if conn.closed or conn.pgconn.status != ConnStatus.OK or _readable(conn.pgconn.socket):
        await AsyncConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether the socket has something to read (or is closed), without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


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
