"""Consume pgmq 'inbound': each message is stored, its reply job deferred
and the message archived by SQL (`process_inbound`; a read's batch in one
call and one transaction, `process_inbound_batch`, one at a time when the
batch fails).

A message that fails is left for its visibility timeout to expire and is
read again; after `inbound_max_reads` reads it is archived as poison with
its error, so nothing is retried forever and nothing is lost. A lost
database is not the message's fault: it never counts towards poison, and
the consumer waits for the database with growing pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.core.config import Settings
from app.store.errors import describe, is_connection_error
from app.store.queries import queries

logger = logging.getLogger(__name__)

BATCH = 20
POLL_SECONDS = 1
POLL_INTERVAL_MS = 50
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0


async def consume_once(pool: AsyncConnectionPool, settings: Settings, *, poll_seconds: int = POLL_SECONDS) -> int:
    """Read one batch (long-polling) and process it; returns messages handled."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            queries["read_inbound"],
            {
                "vt": settings.inbound_visibility_timeout,
                "qty": BATCH,
                "max_poll_seconds": poll_seconds,
                "poll_interval_ms": POLL_INTERVAL_MS,
            },
        )
        batch = await cur.fetchall()
        if batch:
            await _process_batch(conn, settings, batch)
    return len(batch)


async def _process_batch(conn, settings: Settings, batch: list[dict]) -> None:
    """The read's messages in one call and one transaction; when that fails
    (one message took the batch with it) each is processed alone."""
    params = {"msg_ids": [m["msg_id"] for m in batch], "bodies": [Jsonb(m["message"]) for m in batch]}
    try:
        results = await (await conn.execute(queries["process_inbound_batch"], params)).fetchall()
    except Exception as exc:
        if is_connection_error(exc):
            raise  # the database went away: the messages stay queued, read again later
        logger.info(
            "inbound batch failed, one message at a time",
            extra={"action": "inbound_batch_split", "messages": len(batch), "error": describe(exc)},
        )
        for msg in batch:
            await _process(conn, settings, msg)
        return
    by_id = {r["msg_id"]: r for r in results}
    for msg in batch:
        _log_stored(msg, by_id[msg["msg_id"]])


async def _process(conn, settings: Settings, msg: dict) -> None:
    log = {"msg_id": msg["msg_id"], "read_ct": msg["read_ct"]}
    try:
        cur = await conn.execute(queries["process_inbound"], {"msg_id": msg["msg_id"], "body": Jsonb(msg["message"])})
        result = await cur.fetchone()
    except Exception as exc:
        if is_connection_error(exc):
            raise  # the database went away: the message stays queued, read again later
        error = f"{type(exc).__name__}: {exc}"
        if msg["read_ct"] >= settings.inbound_max_reads:
            await conn.execute(
                queries["archive_poison_inbound"],
                {"msg_id": msg["msg_id"], "read_ct": msg["read_ct"], "error": error, "body": Jsonb(msg["message"])},
            )
            logger.error(
                "inbound message archived as poison", extra={"action": "inbound_poison", "error": error, **log}
            )
        else:
            logger.warning(
                "inbound message failed, will retry", extra={"action": "inbound_failed", "error": error, **log}
            )
        return
    _log_stored(msg, result)


def _log_stored(msg: dict, result: dict) -> None:
    logger.info(
        "inbound message stored",
        extra={
            "action": "inbound_duplicate" if result["duplicate"] else "inbound_stored",
            "conversation_id": result["conversation_id"],
            "interacao_id": result["interacao_id"],
            "reply_job_id": result["reply_job_id"],
            "msg_id": msg["msg_id"],
            "read_ct": msg["read_ct"],
        },
    )


async def consume_forever(pool: AsyncConnectionPool, settings: Settings, stop: asyncio.Event) -> None:
    """Consume until `stop` is set.

    A lost database is retried with growing pauses (logged each time);
    any other failure outside a message (the queue is missing, a bug) is
    raised, and stops the worker.
    """
    logger.info("inbound consumer started", extra={"action": "inbound_consumer_start"})
    backoff = BACKOFF_FIRST_SECONDS
    while not stop.is_set():
        try:
            await consume_once(pool, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            logger.error(
                "inbound consumer: database unavailable",
                extra={"action": "inbound_db_unavailable", "error": describe(exc), "retry_in": backoff},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
            continue
        backoff = BACKOFF_FIRST_SECONDS
    logger.info("inbound consumer stopped", extra={"action": "inbound_consumer_stop"})
