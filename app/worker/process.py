"""The worker process: the inbound consumer plus procrastinate's worker
(reply, send and periodic jobs) on one database pool, and the rescue of jobs
left running by dead workers.

A database that goes away (Postgres restarting, a failover) is waited out:
each part reconnects with growing pauses and carries on. A database that
refuses the worker for good, or any other failure, stops the worker with an
exception, so `julia worker` / `julia run` exit non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from app.core.config import Settings
from app.integrations.chatwoot import chatwoot_configured
from app.store.errors import PermanentDatabaseError, describe, is_connection_error
from app.store.pool import check_if_closed, new_pool
from app.store.queries import queries
from app.worker import humans, inbound, jobs, periodic, replies, sends  # noqa: F401 - registers the job families
from app.worker.runtime import Runtime, build_runtime

if TYPE_CHECKING:
    from procrastinate import JobContext
    from procrastinate.worker import Worker

logger = logging.getLogger(__name__)

JOB_QUEUES = ("replies", "sends", "humans")
PERIODIC_QUEUES = ("periodic",)
# Pauses between reconnection attempts grow from the first to the last.
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
# A job worker that ran this long before it stopped starts again without delay.
HEALTHY_RUN_SECONDS = 60.0
# How often an idle worker looks for jobs no NOTIFY announced (due later when deferred).
FETCH_POLL_SECONDS = 0.2
DB_WAIT_SECONDS = 5.0


async def run_worker(
    settings: Settings,
    *,
    consume_inbound: bool = True,
    queues: tuple[str, ...] = JOB_QUEUES + PERIODIC_QUEUES,
    stop: asyncio.Event | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or `stop`): inbound consumer + job worker + rescue.

    `julia worker` consumes inbound and runs every queue; `scheduler` runs
    only the periodic queue. A given `runtime` (julia dev) is borrowed, not closed.
    Raises PermanentDatabaseError (or what else failed) when the worker cannot go on.
    """
    stop = stop or _stop_on_signals()
    pool = (
        runtime.pool
        if runtime
        else new_pool(settings, max_size=settings.worker_concurrency + 4, timeout=DB_WAIT_SECONDS)
    )
    if runtime is None:
        await pool.open(wait=True, timeout=30)
    rt = runtime or build_runtime(settings, pool)
    # procrastinate gets a connector (and pool) of its own per run: a closed
    # pool is never reused.
    connector = job_connector(settings.database_url, settings.worker_concurrency)
    try:
        with jobs.app.replace_connector(connector):
            async with jobs.app.open_async():
                await _run(rt, consume_inbound=consume_inbound, queues=queues, stop=stop)
    finally:
        if runtime is None:
            await rt.aclose()
            await pool.close()
        logger.info("worker stopped", extra={"action": "worker_stop"})


def job_connector(database_url: str, concurrency: int) -> procrastinate.PsycopgConnector:
    """The connector procrastinate's worker runs on (bench/replies.py measures its no-op jobs on it too).

    Each connection it takes is checked (none left from before a database
    restart fails a job) the way Julia's pool checks them
    (app.store.pool.check_if_closed: a round trip only when the socket says
    the server closed it). A call waits at most DB_WAIT_SECONDS for a
    connection: when the database is gone procrastinate gives up soon and is
    restarted once it is back. Its connections are autocommit: each of its
    queries is one statement (a function call), so psycopg's implicit
    BEGIN and COMMIT around it were two round trips per query for nothing.
    """
    return procrastinate.PsycopgConnector(
        conninfo=database_url,
        min_size=1,
        max_size=concurrency + 2,
        name="procrastinate",
        timeout=DB_WAIT_SECONDS,
        configure=_autocommit,
        pool_factory=_checked_pool,
    )


def _checked_pool(**kwargs: Any) -> AsyncConnectionPool:
    """procrastinate's pool, with the check of app.store.pool instead of a round trip per connection taken."""
    return AsyncConnectionPool(**{**kwargs, "check": check_if_closed})


async def _autocommit(conn: psycopg.AsyncConnection) -> None:
    await conn.set_autocommit(True)


async def _bootstrap_sending(rt: Runtime) -> None:
    """Write the send policy (from this env) when the database has none, and
    EVOLUTION_INSTANCE as the first number; warn when this env disagrees with
    the policy in force (the database's wins, for every replica)."""
    settings = rt.settings
    params = {"policy": Jsonb(settings.send_policy()), "instance": settings.evolution_instance or None}
    async with rt.pool.connection() as conn:
        rows = await (await conn.execute(queries["bootstrap_sending"], params)).fetchall()
    actions = {r["item"]: r["action"] for r in rows}
    if actions.pop("send_policy_env", "same") == "differs":
        logger.warning(
            "send policy variables differ from the database's policy, which is the one enforced (julia limits show)",
            extra={"action": "send_policy_env_ignored"},
        )
    logger.info("sending bootstrap", extra={"action": "sending_bootstrap", "results": actions})


async def _record_chatwoot_mirror(rt: Runtime) -> None:
    """Record whether this worker mirrors to Chatwoot: off, stored messages are
    skipped in SQL at once and no mirror job is deferred (db/chatwoot.sql)."""
    mirror = chatwoot_configured(rt.settings)
    async with rt.pool.connection() as conn:
        await conn.execute(queries["record_chatwoot_mirror"], {"on": mirror})
    logger.info("chatwoot mirror", extra={"action": "chatwoot_mirror", "on": mirror})


async def _run(rt: Runtime, *, consume_inbound: bool, queues: tuple[str, ...], stop: asyncio.Event) -> None:
    settings = rt.settings
    await _bootstrap_sending(rt)
    if "humans" in queues:
        await _record_chatwoot_mirror(rt)
    rescued = await periodic.rescue_stalled_jobs(rt.pool, settings.stalled_worker_seconds)
    logger.info(
        "worker started",
        extra={"action": "worker_start", "queues": list(queues), "inbound": consume_inbound, "rescued": rescued},
    )
    own = JobWorker()
    parts = {"jobs": _run_jobs(rt, queues, stop, own), "rescue": _rescue_forever(rt, stop, own)}
    if consume_inbound:
        parts["inbound"] = inbound.consume_forever(rt.pool, settings, stop)
    workers = [asyncio.create_task(coro, name=name) for name, coro in parts.items()]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*workers, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    failures = [t for t in done if t is not stopper and not t.cancelled() and t.exception() is not None]
    for task in workers:
        if task not in done:
            task.cancel()
    for task in workers:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    stopper.cancel()
    if failures:
        exc = failures[0].exception()
        logger.error(
            "worker stops on a permanent error",
            extra={"action": "worker_failed", "part": failures[0].get_name(), "error": describe(exc)},
        )
        raise exc


class JobWorker:
    """The procrastinate worker id this process runs its jobs under, noted by a
    worker middleware as each job starts: this process's rescue never puts a
    job of its own back to 'todo', however late its heartbeat (a starved
    machine, a long pause of the event loop), since a second run beside the
    first could send what the first is sending."""

    def __init__(self) -> None:
        self.id: int | None = None

    async def note(self, call_next: Callable[[], Awaitable[Any]], context: JobContext, worker: Worker) -> Any:
        self.id = worker.worker_id
        return await call_next()


async def _run_jobs(rt: Runtime, queues: tuple[str, ...], stop: asyncio.Event, own: JobWorker) -> None:
    """procrastinate's worker, started again whenever it stops for lack of a database.

    procrastinate stops itself when its LISTEN connection or heartbeat fails
    ("Side task ... failed ... stopping worker") and raises when a fetch
    fails; both mean the database went away unless the database says
    otherwise when it is asked again.
    """
    settings = rt.settings
    backoff = BACKOFF_FIRST_SECONDS
    while not stop.is_set():
        started = time.monotonic()
        cause: BaseException | None = None
        try:
            await jobs.app.run_worker_async(
                queues=list(queues),
                concurrency=settings.worker_concurrency,
                additional_context={"runtime": rt},
                install_signal_handlers=False,
                stalled_worker_timeout=settings.stalled_worker_seconds,
                update_heartbeat_interval=max(1.0, settings.stalled_worker_seconds / 3),
                # Finished jobs and their events stay for `julia trace` until the daily prune (periodic_prune).
                delete_jobs="never",
                # LISTEN/NOTIFY wakes the worker at once for a job due now; a job deferred
                # to later (a debounced reply) is found by this poll: one cheap fetch every
                # FETCH_POLL_SECONDS while idle, and at most that long past its time.
                fetch_job_polling_interval=FETCH_POLL_SECONDS,
                worker_middleware=[own.note],
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            cause = exc
        finally:
            own.id = None  # that run's jobs are over: what it left 'doing' is for the rescue
        if stop.is_set():
            return
        if time.monotonic() - started > HEALTHY_RUN_SECONDS:
            backoff = BACKOFF_FIRST_SECONDS
        logger.error(
            "job worker stopped: database unavailable; it restarts when the database answers",
            extra={
                "action": "worker_db_lost",
                "error": describe(cause) if cause else "listener or heartbeat lost the database",
            },
        )
        await wait_for_database(settings.database_url, stop, component="jobs")
        await _sleep(stop, backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)


async def _rescue_forever(rt: Runtime, stop: asyncio.Event, own: JobWorker) -> None:
    """Rescue the jobs of dead workers as soon as they are known dead (no
    heartbeat for STALLED_WORKER_SECONDS), not on the next minute tick."""
    seconds = rt.settings.stalled_worker_seconds
    interval = max(0.5, seconds / 4)
    while not stop.is_set():
        await _sleep(stop, interval)
        if stop.is_set():
            return
        try:
            await periodic.rescue_stalled_jobs(rt.pool, seconds, except_worker=own.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_connection_error(exc):
                raise
            logger.warning("rescue skipped: database unavailable", extra={"action": "rescue_db_unavailable"})


async def wait_for_database_at_start(database_url: str) -> bool:
    """Before start-up: wait (with growing pauses) until the database answers;
    False when SIGINT/SIGTERM came first. A database restarting while a worker
    starts must not look like a failure to the platform's restart policy."""
    stop = _stop_on_signals()
    await wait_for_database(database_url, stop, component="startup", quiet_if_up=True)
    return not stop.is_set()


async def wait_for_database(
    database_url: str, stop: asyncio.Event, *, component: str, quiet_if_up: bool = False
) -> None:
    """Connect with growing pauses until the database answers (or `stop`).

    A connection of its own, not the pool's: a pool only says "timeout",
    while the server says why it refuses. Raises PermanentDatabaseError when
    that refusal is one waiting will not fix (credentials, missing database).
    """
    backoff = BACKOFF_FIRST_SECONDS
    down_since = time.monotonic()
    while not stop.is_set():
        try:
            conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True, connect_timeout=5)
            async with conn:
                await conn.execute(queries["ping"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_connection_error(exc):
                raise PermanentDatabaseError(describe(exc)) from exc
            logger.error(
                "database unavailable",
                extra={
                    "action": "worker_db_unavailable",
                    "component": component,
                    "error": describe(exc),
                    "retry_in": backoff,
                },
            )
            await _sleep(stop, backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
            quiet_if_up = False
            continue
        if quiet_if_up:
            return
        logger.warning(
            "database is back",
            extra={
                "action": "worker_db_back",
                "component": component,
                "down_seconds": round(time.monotonic() - down_since, 1),
            },
        )
        return


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
