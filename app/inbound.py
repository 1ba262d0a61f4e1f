"""Consume pgmq 'inbound': each message is stored, its reply job deferred
and the message archived by one SQL call (`process_inbound`).

A message that fails is left for its visibility timeout to expire and is
read again; after `inbound_max_reads` reads it is archived as poison with
its error, so nothing is retried forever and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.config import Settings
from app.queries import queries

logger = logging.getLogger(__name__)

BATCH = 20
POLL_SECONDS = 1
POLL_INTERVAL_MS = 50


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
        for msg in batch:
            await _process(conn, settings, msg)
    return len(batch)


async def _process(conn, settings: Settings, msg: dict) -> None:
    log = {"msg_id": msg["msg_id"], "read_ct": msg["read_ct"]}
    try:
        cur = await conn.execute(queries["process_inbound"], {"msg_id": msg["msg_id"], "body": Jsonb(msg["message"])})
        result = await cur.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure: retry after vt, poison after max reads
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
    logger.info(
        "inbound message stored",
        extra={
            "action": "inbound_duplicate" if result["duplicate"] else "inbound_stored",
            "conversation_id": result["conversation_id"],
            "interacao_id": result["interacao_id"],
            "reply_job_id": result["reply_job_id"],
            **log,
        },
    )


async def consume_forever(pool: AsyncConnectionPool, settings: Settings, stop: asyncio.Event) -> None:
    """Consume until `stop` is set; a database hiccup is logged and retried."""
    logger.info("inbound consumer started", extra={"action": "inbound_consumer_start"})
    while not stop.is_set():
        try:
            await consume_once(pool, settings)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the loop must outlive a database hiccup
            logger.error(
                "inbound consumer error",
                extra={"action": "inbound_consumer_error", "error": f"{type(exc).__name__}: {exc}"},
            )
            await asyncio.sleep(1)
    logger.info("inbound consumer stopped", extra={"action": "inbound_consumer_stop"})
