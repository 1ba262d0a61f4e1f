"""GET /metrics: Prometheus text for the whole of Julia, served by the api.

Two sources, chosen by who can know the fact:
- this process's counters (prometheus_client): webhooks by outcome — a 401,
  413 or 503 never reaches the database — and the process collectors;
- the database, read at scrape time in one call (`metrics_snapshot`, which
  gets a 2 s statement timeout): what the workers do (model calls and tokens,
  sends and refusals, reply latency, job failures: counters kept by SQL
  triggers, db/observability.sql) and gauges of the moment (inbound queue,
  jobs, outbox, pause, guard, numbers). The worker serves no HTTP: any
  number of workers write to Postgres, and every api replica exports the
  same database series (aggregate them with max, not sum; docs/runbook.md).

A scrape never fails: with the database unreachable the process series are
still served, with `julia_database_up 0`.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.core.config import Settings
from app.http.auth import Refusal, error, metrics_authorized
from app.store.queries import queries

logger = logging.getLogger(__name__)

# A scrape waits this long for a connection and for the snapshot query.
SCRAPE_DB_SECONDS = 2.0

disable_created_metrics()  # no *_created series: counters start at process start or in SQL
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

WEBHOOKS = Counter(
    "julia_webhooks",
    "Webhooks answered by this api process, by source, HTTP status class and outcome "
    "(queued, recorded, ignored, unauthorized, invalid, too_large, unstorable, unavailable, ...).",
    ["source", "status", "outcome"],
    registry=REGISTRY,
)

# The database's series: name -> (type, help). The histogram's rows come as _bucket/_sum/_count.
DATABASE_SERIES: dict[str, tuple[str, str]] = {
    "julia_sends_total": ("counter", "Outbox rows by kind and outcome: sent, retry (an attempt failed), failed."),
    "julia_send_refusals_total": ("counter", "Refusals of the send gate by kind and reason (paused, guard, hours...)."),
    "julia_llm_calls_total": ("counter", "Model calls of reply jobs by model and outcome (ok, error)."),
    "julia_llm_tokens_total": ("counter", "Model tokens by model and kind (input, output)."),
    "julia_job_failures_total": ("counter", "Jobs stopped for good (job_failures) by task and classification."),
    "julia_inbound_poison_total": ("counter", "Inbound messages set aside as poison (inbound_failures)."),
    "julia_inbound_queued_total": ("counter", "Messages ever put on pgmq 'inbound' (by every api replica)."),
    "julia_reply_latency_seconds": (
        "histogram",
        "Doctor message stored -> first part of Julia's reply sent, per reply.",
    ),
    "julia_inbound_queue_depth": ("gauge", "Messages waiting on pgmq 'inbound'."),
    "julia_inbound_oldest_age_seconds": ("gauge", "Age of the oldest message waiting on pgmq 'inbound'."),
    "julia_jobs": ("gauge", "Procrastinate jobs waiting (todo) and running (doing), by queue."),
    "julia_outbox_pending": ("gauge", "Outbox rows not yet sent or failed, by kind and state."),
    "julia_outbox_deferred": ("gauge", "Outbox rows held by the send gate, by the reason of their last refusal."),
    "julia_paused": ("gauge", "1 while Julia is paused (julia_status)."),
    "julia_environment_guard_ok": ("gauge", "1 when the database markers match this api's APP_ENV / project ref."),
    "julia_number_available": ("gauge", "1 when a WhatsApp number can send now (open, not paused), by instance."),
}


def _family(name: str, rows: list[dict[str, Any]]) -> Metric:
    """One metric family from the snapshot rows of one metric."""
    kind, doc = DATABASE_SERIES.get(name, ("gauge", "Read from the database (metrics_snapshot)."))
    label_names = sorted({k for r in rows for k in r["labels"]})
    if kind == "counter":
        family: Metric = CounterMetricFamily(name.removesuffix("_total"), doc, labels=label_names)
    else:
        family = GaugeMetricFamily(name, doc, labels=label_names)
    for r in rows:
        family.add_metric([str(r["labels"].get(k, "")) for k in label_names], r["value"])
    return family


def database_families(rows: Iterable[dict[str, Any]]) -> list[Metric]:
    """Metric families from `metrics_snapshot` rows (pure: tested without a database)."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    histogram: dict[str, dict[str, Any]] = defaultdict(lambda: {"buckets": [], "sum": 0.0})
    for row in rows:
        name = row["metric"]
        for suffix in ("_bucket", "_sum", "_count"):
            base = name.removesuffix(suffix)
            if name.endswith(suffix) and DATABASE_SERIES.get(base, ("",))[0] == "histogram":
                if suffix == "_bucket":
                    histogram[base]["buckets"].append((row["labels"]["le"], row["value"]))
                elif suffix == "_sum":
                    histogram[base]["sum"] = row["value"]
                break
        else:
            by_name[name].append(row)
    families = [_family(name, rows) for name, rows in by_name.items()]
    for name, h in histogram.items():
        families.append(HistogramMetricFamily(name, DATABASE_SERIES[name][1], buckets=h["buckets"], sum_value=h["sum"]))
    return families


class _Snapshot:
    """A collector yielding families already read (the database is read asynchronously)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


async def _read_database(request: Request) -> list[dict[str, Any]]:
    settings: Settings = request.state.settings
    async with request.state.pool.connection(timeout=SCRAPE_DB_SECONDS) as conn, conn.transaction():
        await conn.execute(queries["metrics_timeout"], {"ms": str(int(SCRAPE_DB_SECONDS * 1000))})
        cur = await conn.execute(
            queries["metrics_snapshot"], {"app_env": settings.app_env, "project_ref": settings.supabase_project_ref}
        )
        return await cur.fetchall()


async def metrics(request: Request) -> Response:
    """GET /metrics: this process's counters and the database's series (never a 500)."""
    settings: Settings = request.state.settings
    if not metrics_authorized(request.headers, settings.metrics_token):
        return error(401, "missing or invalid metrics token")
    started = time.perf_counter()
    try:
        families = database_families(await _read_database(request))
        up = 1.0
    except Exception as exc:  # noqa: BLE001 - a scrape reports the database as down instead of failing
        logger.warning("metrics without the database", extra={"action": "metrics_db_down", "error": type(exc).__name__})
        families, up = [], 0.0
    families.append(GaugeMetricFamily("julia_database_up", "1 when this scrape could read the database.", value=up))
    families.append(
        GaugeMetricFamily(
            "julia_metrics_database_seconds",
            "Time this scrape spent reading the database.",
            value=time.perf_counter() - started,
        )
    )
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(families))
    return Response(generate_latest(REGISTRY) + generate_latest(snapshot), media_type=CONTENT_TYPE_LATEST)


# HTTP status of an error answer -> the webhook outcome it means.
ERROR_OUTCOMES = {400: "invalid", 401: "unauthorized", 411: "no_length", 413: "too_large", 422: "unstorable"}


def webhook_outcome(status: int, body: bytes) -> str:
    """The outcome label of one answered webhook: the body's status for a 2xx."""
    if 200 <= status < 300:
        for outcome in ("queued", "recorded", "ignored"):
            if f'"status":"{outcome}"'.encode() in body:
                return outcome
        return "ok"
    if status == 503:
        return "unavailable"
    return ERROR_OUTCOMES.get(status, f"http_{status}")


def count_webhooks(
    source: str, handler: Callable[[Request], Awaitable[JSONResponse]]
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """Wrap a webhook handler so each answer (or refusal) is counted in julia_webhooks_total."""

    async def counted(request: Request) -> JSONResponse:
        try:
            response = await handler(request)
        except Refusal as refusal:
            WEBHOOKS.labels(source, f"{refusal.status // 100}xx", webhook_outcome(refusal.status, b"")).inc()
            raise
        except Exception:
            WEBHOOKS.labels(source, "5xx", "error").inc()
            raise
        status = response.status_code
        WEBHOOKS.labels(source, f"{status // 100}xx", webhook_outcome(status, bytes(response.body))).inc()
        return response

    counted.__doc__ = handler.__doc__
    return counted


ROUTES: list[BaseRoute] = [Route("/metrics", metrics, methods=["GET"])]
