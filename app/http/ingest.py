"""Group commit for the Evolution webhook: the messages of concurrent requests
go to pgmq 'inbound' together in one statement (`enqueue_inbound_batch`: one
transaction, one WAL flush), and each request is answered only after that
commit — "2xx ⇒ stored" holds for every one of them.

While fewer than `max_in_flight` batches are being committed, a message goes
at once, with whatever webhooks were read in the same turn of the event loop:
a quiet api adds no wait. When that many are, the messages that arrive
meanwhile wait for one of them to finish and then go together in the next
batch; they wait at most `window_seconds` (INGEST_BATCH_WINDOW_MS), after
which they go in a transaction of their own beside them (a slow commit holds
nobody for long). So the busier the api, the larger its batches, without a
timer per batch.

A batch the database refuses as data (DataError / IntegrityError) is retried
one message at a time, so only the unstorable body gets its 4xx. Any other
failure (the database unavailable) fails every request of the batch, as it
would have failed each of them alone. `window_seconds` 0 turns batching off:
each request makes its own `enqueue_inbound` call.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.store.queries import queries

logger = logging.getLogger(__name__)

# One statement carries at most this many messages; a full batch goes without waiting.
MAX_BATCH = 100
# Batches being committed at the same time, each on its own pooled connection. Postgres
# flushes concurrent commits together (its own group commit): with a few in flight the api
# is not idle while one flush is under way, as it was with one.
MAX_IN_FLIGHT = 4


@dataclass(eq=False)
class _Waiting:
    """One request's message and the future its handler awaits (its msg_id, or the error)."""

    message: dict
    answer: asyncio.Future[int] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class InboundBatcher:
    """Collects the messages that arrive while `max_in_flight` batches are committed (at most
    `window_seconds`), then commits them together on one pooled connection."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        window_seconds: float,
        wait_seconds: float,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if window_seconds < 0:
            raise ValueError(f"window_seconds must not be negative, got {window_seconds}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.pool = pool
        self.max_in_flight = max_in_flight
        self.window_seconds = window_seconds
        self.wait_seconds = wait_seconds
        self.batches = 0  # statements committed (or tried), for tests and logs
        self._pending: list[_Waiting] = []
        self._timer: asyncio.Handle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def enqueue(self, message: dict) -> int:
        """Store `message` on the inbound queue and return its msg_id once committed.

        Raises the psycopg error that kept it from being stored (a DataError or
        IntegrityError for this message itself, anything else for the database).
        """
        if self.window_seconds == 0:
            async with self.pool.connection(timeout=self.wait_seconds) as conn:
                return await _enqueue_one(conn, message)
        waiting = _Waiting(message)
        self._pending.append(waiting)
        if len(self._pending) >= MAX_BATCH:
            self._flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            if len(self._flushes) >= self.max_in_flight:  # wait for a batch being committed, at most the window
                self._timer = loop.call_later(self.window_seconds, self._flush)
            else:  # room for one more: go once the webhooks read in this same turn of the loop have joined
                self._timer = loop.call_soon(self._flush)
        # shield: a client that hangs up must not cancel the answer the rest of its batch shares.
        return await asyncio.shield(waiting.answer)

    async def aclose(self) -> None:
        """Commit what is pending and wait for every batch in flight (api shutdown)."""
        self._flush()
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._commit(batch))
            self._flushes.add(task)
            task.add_done_callback(self._committed)

    def _committed(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        if self._pending:  # they waited for this batch: they go now, together
            self._flush()

    async def _commit(self, batch: list[_Waiting]) -> None:
        self.batches += 1
        try:
            async with self.pool.connection(timeout=self.wait_seconds) as conn:
                try:
                    msg_ids = await _enqueue_many(conn, [w.message for w in batch])
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    # Nothing of the batch was stored: find the message(s) at fault, store the others.
                    logger.warning(
                        "inbound batch refused; storing its messages one by one",
                        extra={"action": "inbound_batch_split", "size": len(batch), "error": type(exc).__name__},
                    )
                    await _commit_each(conn, batch)
                    return
        except BaseException as exc:  # the database (or shutdown): every request of the batch fails alike
            for waiting in batch:
                _answer(waiting, exc)
            if not isinstance(exc, Exception):
                raise
            return
        logger.info(
            "inbound batch committed",
            extra={"action": "inbound_batch", "size": len(batch), "first_msg_id": msg_ids[0]},
        )
        for waiting, msg_id in zip(batch, msg_ids, strict=True):
            _answer(waiting, msg_id)


async def _commit_each(conn: psycopg.AsyncConnection, batch: list[_Waiting]) -> None:
    """One statement per message: each gets its msg_id or its own refusal."""
    for waiting in batch:
        try:
            _answer(waiting, await _enqueue_one(conn, waiting.message))
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            _answer(waiting, exc)


async def _enqueue_one(conn: psycopg.AsyncConnection, message: dict) -> int:
    cur = await conn.execute(queries["enqueue_inbound"], {"message": Jsonb(message, dumps=_dumps)})
    row = await cur.fetchone()
    assert row is not None
    return row["msg_id"]


async def _enqueue_many(conn: psycopg.AsyncConnection, messages: list[dict]) -> list[int]:
    # One JSON array, not a jsonb[]: an array's text form would escape every quote of every message.
    cur = await conn.execute(queries["enqueue_inbound_batch"], {"messages": Jsonb(messages, dumps=_dumps)})
    row = await cur.fetchone()
    assert row is not None
    msg_ids = row["msg_ids"]
    if len(msg_ids) != len(messages):
        raise RuntimeError(f"enqueue_inbound_batch returned {len(msg_ids)} ids for {len(messages)} messages")
    return msg_ids


def _dumps(value: object) -> bytes | str:
    """JSON text for Postgres: orjson's (a tenth of json's time), or json's for what orjson
    refuses (an integer beyond 64 bits). Postgres reads both into the same jsonb."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def _answer(waiting: _Waiting, outcome: int | BaseException) -> None:
    if waiting.answer.done():
        return
    if isinstance(outcome, BaseException):
        waiting.answer.set_exception(outcome)
    else:
        waiting.answer.set_result(outcome)
