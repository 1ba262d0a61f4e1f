"""The worker process: the inbound consumer plus procrastinate's worker
(reply, send and periodic jobs) on one database pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import procrastinate
from psycopg.types.json import Jsonb

from app import inbound, tasks
from app.config import Settings
from app.queries import queries
from app.runtime import Runtime, build_runtime, new_pool

logger = logging.getLogger(__name__)

JOB_QUEUES = ("replies", "sends", "humans")
PERIODIC_QUEUES = ("periodic",)


async def run_worker(
    settings: Settings,
    *,
    consume_inbound: bool = True,
    queues: tuple[str, ...] = JOB_QUEUES + PERIODIC_QUEUES,
    stop: asyncio.Event | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or `stop`): inbound consumer + job worker.

    `julia worker` consumes inbound and runs every queue; `scheduler` runs
    only the periodic queue. A given `runtime` (julia dev) is borrowed, not closed.
    """
    stop = stop or _stop_on_signals()
    pool = runtime.pool if runtime else new_pool(settings, max_size=settings.worker_concurrency + 4)
    if runtime is None:
        await pool.open(wait=True, timeout=30)
    rt = runtime or build_runtime(settings, pool)
    # procrastinate gets a connector (and pool) of its own per run: it sets
    # its own connection options, and a closed pool is never reused.
    connector = procrastinate.PsycopgConnector(
        conninfo=settings.database_url, min_size=1, max_size=settings.worker_concurrency + 2, name="procrastinate"
    )
    try:
        with tasks.app.replace_connector(connector):
            async with tasks.app.open_async():
                await _run(rt, consume_inbound=consume_inbound, queues=queues, stop=stop)
    finally:
        if runtime is None:
            await rt.aclose()
            await pool.close()
        logger.info("worker stopped", extra={"action": "worker_stop"})


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


async def _run(rt: Runtime, *, consume_inbound: bool, queues: tuple[str, ...], stop: asyncio.Event) -> None:
    settings = rt.settings
    await _bootstrap_sending(rt)
    rescued = await tasks.rescue_stalled_jobs(tasks.app, settings.stalled_worker_seconds)
    logger.info(
        "worker started",
        extra={"action": "worker_start", "queues": list(queues), "inbound": consume_inbound, "rescued": rescued},
    )
    workers = [
        asyncio.create_task(
            tasks.app.run_worker_async(
                queues=list(queues),
                concurrency=settings.worker_concurrency,
                additional_context={"runtime": rt},
                install_signal_handlers=False,
                stalled_worker_timeout=settings.stalled_worker_seconds,
                update_heartbeat_interval=max(1.0, settings.stalled_worker_seconds / 3),
                delete_jobs="successful",
                # LISTEN/NOTIFY wakes the worker at once; polling is the safety net.
                fetch_job_polling_interval=0.5,
            ),
            name="procrastinate",
        )
    ]
    if consume_inbound:
        workers.append(asyncio.create_task(inbound.consume_forever(rt.pool, settings, stop), name="inbound"))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*workers, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    for task in workers:
        if task not in done:
            task.cancel()
    for task in workers:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    stopper.cancel()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
