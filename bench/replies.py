"""Reply-path benchmark: webhook accepted -> reply sent, through real
`julia api` and `julia worker` processes, zero-latency Claude and Evolution
stand-ins on 127.0.0.1, an embedded PostgreSQL on a Unix socket.

1. before each phase, the baseline: procrastinate no-op jobs/s on the same
   database, with the worker's concurrency (WORKER_CONCURRENCY), connector and
   fetch settings, in process (the julia worker idle beside it);
2. for each debounce (app_settings 'reply_debounce_ms'; default 0 and the
   production 2500 ms): DOCTORS new doctors each send one message; every
   reply must be sent. Steady-state replies/s counts from the first reply job
   started to the last reply sent (the debounce is not in it); the latency
   split of each reply is read from SQL timestamps afterwards;
3. --profile: one more message with log_min_duration_statement=0; prints every
   statement the reply path ran (its round trips) with its server time, beside
   the same length of idle noise.

    uv run python bench/replies.py [--doctors 300] [--debounce 0,2500] [--noop 2000] [--profile] [--client raw|httpx]
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root first, for the webhook bodies in tests/payloads.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

import benchkit
import httpx
import procrastinate
import psutil
import psycopg
from ingest import RawConnection

from app.devkit.standins.anthropic import AnthropicStandin
from app.devkit.standins.evolution import EvolutionStandin
from app.worker.process import job_connector
from tests import payloads

SECRET = "replies-bench-webhook-secret"  # noqa: S105 - the local run's own secret
EVOLUTION_KEY = "replies-bench-evolution-key"
INSTANCE = "julia-test"  # the instance tests/payloads.py names
CONCURRENCY = 8  # WORKER_CONCURRENCY's default, for the worker and the baseline
POLLING_SECONDS = 0.5  # app/worker/process.py's fetch_job_polling_interval
START_SECONDS = 60.0
SETTLE_SECONDS = 300.0
POSTERS = 16

SET_DEBOUNCE = """
INSERT INTO public.app_settings (key, value, description) VALUES ('reply_debounce_ms', %s, 'bench')
ON CONFLICT (key) DO UPDATE SET value = excluded.value"""
COUNT_SENT = """
SELECT count(DISTINCT o.reply_to_id) FROM public.outbox AS o
 WHERE o.kind = 'reply' AND o.state = 'sent' AND o.reply_to_id >= %s"""
# One row per doctor message answered: the timestamps of each step, in order.
SPLIT = """
WITH msg AS (
    SELECT i.id, i.conversation_id, i.created_at AS stored_at, a.enqueued_at AS accepted_at
      FROM public.interacoes AS i
      JOIN pgmq.a_inbound AS a ON a.message -> 'message' ->> 'message_id' = i.message_id
     WHERE i.autor = 'medico' AND i.id >= %(first_id)s
), reply_job AS (
    SELECT DISTINCT ON (l.reply_to_id) l.reply_to_id, j.scheduled_at,
           (SELECT min(e.at) FROM public.procrastinate_events AS e
             WHERE e.job_id = j.id AND e.type = 'started') AS started_at
      FROM public.llm_calls AS l JOIN public.procrastinate_jobs AS j ON j.id = l.job_id
     ORDER BY l.reply_to_id, l.id
), llm AS (
    SELECT l.reply_to_id, min(l.started_at) AS started_at, max(l.finished_at) AS finished_at,
           sum(l.finished_at - l.started_at) AS spent
      FROM public.llm_calls AS l GROUP BY l.reply_to_id
), out AS (
    SELECT DISTINCT ON (o.reply_to_id) o.reply_to_id, o.created_at, o.sent_at AS first_sent_at,
           (SELECT min(e.at) FROM public.procrastinate_jobs AS j
              JOIN public.procrastinate_events AS e ON e.job_id = j.id AND e.type = 'started'
             WHERE j.task_name = 'send_outbox' AND (j.args ->> 'outbox_id')::bigint = o.id) AS send_started_at,
           max(o.sent_at) OVER (PARTITION BY o.reply_to_id) AS sent_at
      FROM public.outbox AS o WHERE o.kind = 'reply'
     ORDER BY o.reply_to_id, o.id
)
SELECT extract(epoch FROM m.accepted_at) AS accepted,
       extract(epoch FROM m.stored_at) AS stored,
       extract(epoch FROM coalesce(r.scheduled_at, m.stored_at)) AS due,
       extract(epoch FROM r.started_at) AS reply_started,
       extract(epoch FROM l.started_at) AS llm_started,
       extract(epoch FROM l.spent) AS llm_spent,
       extract(epoch FROM l.finished_at) AS llm_finished,
       extract(epoch FROM o.created_at) AS outbox_written,
       extract(epoch FROM o.send_started_at) AS send_started,
       extract(epoch FROM o.first_sent_at) AS first_sent,
       extract(epoch FROM o.sent_at) AS sent
  FROM msg AS m
  JOIN reply_job AS r ON r.reply_to_id = m.id
  JOIN llm AS l ON l.reply_to_id = m.id
  JOIN out AS o ON o.reply_to_id = m.id"""
# (name, from, to): each step of a reply; "total" is webhook accepted -> last part sent.
STEPS = (
    ("ingest (pgmq → interacao)", "accepted", "stored"),
    ("debounce wait", "stored", "due"),
    ("reply job pickup", "due", "reply_started"),
    ("context SQL", "reply_started", "llm_started"),
    ("LLM call(s)", "llm_started", "llm_finished"),
    ("outbox write", "llm_finished", "outbox_written"),
    ("send job pickup", "outbox_written", "send_started"),
    ("send (gate + Evolution + mark)", "send_started", "first_sent"),
    ("total: accepted → sent", "accepted", "sent"),
)


class BenchError(Exception):
    """The benchmark could not run or its results do not check out."""


# ------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(log: IO[str], chars: int = 3000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-chars:]


@contextlib.contextmanager
def julia(args: list[str], env: dict[str, str], ready: str, profile_to: str = "") -> Iterator[int]:
    """A running `julia <args>` whose log contains `ready` (yields its pid); stopped with SIGTERM after.
    `profile_to`: run it under cProfile, the stats written there when it stops."""
    profiler = ["-m", "cProfile", "-o", profile_to] if profile_to else []
    command = [sys.executable, *profiler, "-m", "app.ops.cli", *args]
    with tempfile.TemporaryFile(mode="w+") as log:  # a file, not a pipe: a full pipe would block it
        proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + START_SECONDS
            while ready not in log_tail(log, 10**7):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"julia {args[0]} did not start:\n{log_tail(log)}")
                time.sleep(0.1)
            yield proc.pid
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# ------------------------------------------------------------------
# Baseline: procrastinate no-op jobs
# ------------------------------------------------------------------


def noop_jobs_per_second(url: str, jobs: int) -> tuple[float, float]:
    """Defer `jobs` no-op jobs, then drain them with the worker's concurrency
    and fetch settings; jobs ÷ (last finished − first started), from
    procrastinate_events, and the CPU ms one job cost (this process + Postgres)."""
    app = procrastinate.App(connector=job_connector(url, CONCURRENCY))

    @app.task(name="bench_noop", queue="bench_noop")
    async def noop(n: int) -> None:
        return None

    with psycopg.connect(url, autocommit=True) as conn:
        after_id = conn.execute("SELECT coalesce(max(id), 0) FROM public.procrastinate_jobs").fetchone()[0]

    async def run() -> None:
        async with app.open_async():
            await noop.batch_defer_async(*({"n": n} for n in range(jobs)))
            await app.run_worker_async(
                queues=["bench_noop"],
                concurrency=CONCURRENCY,
                wait=False,
                install_signal_handlers=False,
                delete_jobs="never",
                fetch_job_polling_interval=POLLING_SECONDS,
            )

    postgres = {"postgres": postmaster_pid(url)}
    cpu_before = time.process_time() + cpu_seconds(postgres)["postgres"]
    asyncio.run(run())
    cpu_ms = (time.process_time() + cpu_seconds(postgres)["postgres"] - cpu_before) / jobs * 1000
    with psycopg.connect(url, autocommit=True) as conn:
        done, seconds = conn.execute(
            "SELECT count(DISTINCT j.id) FILTER (WHERE j.status = 'succeeded'),"
            "       extract(epoch FROM max(e.at) FILTER (WHERE e.type = 'succeeded')"
            "                        - min(e.at) FILTER (WHERE e.type = 'started'))"
            "  FROM public.procrastinate_jobs AS j JOIN public.procrastinate_events AS e ON e.job_id = j.id"
            " WHERE j.task_name = 'bench_noop' AND j.id > %s",
            (after_id,),
        ).fetchone()
    if done != jobs:
        raise BenchError(f"{done} of {jobs} no-op jobs succeeded")
    print(f"no-op job: {jobs / float(seconds):.0f} jobs/s, CPU {cpu_ms:.2f} ms a job (procrastinate + Postgres)")
    return jobs / float(seconds), cpu_ms


# ------------------------------------------------------------------
# Replies
# ------------------------------------------------------------------


def doctor_body(doctor: int) -> dict[str, Any]:
    phone = f"55119{60000000 + doctor:08d}"
    return payloads.upsert(text="Oi, tudo bem? Tem plantão de UTI no sábado?", phone=phone, push_name=f"Dr. {doctor}")


async def post_all(api_url: str, bodies: Sequence[dict[str, Any]], client_kind: str = "raw") -> None:
    """POST every body to /webhooks/evolution from POSTERS clients; all must be queued.
    `client_kind` "raw": bench/ingest.py's hand-written keep-alive connections (tens of µs of
    the shared CPUs a request); "httpx": what runs before issue 18's third round used (~1.5 ms)."""
    if client_kind == "raw":
        await _post_raw(api_url, bodies)
        return
    headers = {"x-webhook-secret": SECRET}
    pending = iter(bodies)
    failures: list[str] = []
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:

        async def poster() -> None:
            for body in pending:
                response = await client.post("/webhooks/evolution", json=body, headers=headers)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

        async with asyncio.TaskGroup() as group:
            for _ in range(POSTERS):
                group.create_task(poster())
    if failures:
        raise BenchError(f"{len(failures)} webhooks not queued, first: {failures[0]}")


async def _post_raw(api_url: str, bodies: Sequence[dict[str, Any]]) -> None:
    headers = {"x-webhook-secret": SECRET, "content-type": "application/json"}
    pending = iter([json.dumps(body).encode() for body in bodies])
    failures: list[str] = []
    connections = [RawConnection(api_url) for _ in range(POSTERS)]

    async def poster(connection: RawConnection) -> None:
        for body in pending:
            status, answer = await asyncio.wait_for(connection.post("/webhooks/evolution", body, headers), 30)
            if status != 200:
                failures.append(f"{status} {answer[:200]!r}")

    try:
        async with asyncio.TaskGroup() as group:
            for connection in connections:
                group.create_task(poster(connection))
    finally:
        for connection in connections:
            connection.close()
    if failures:
        raise BenchError(f"{len(failures)} webhooks not queued, first: {failures[0]}")


def next_interacao_id(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) + 1 FROM public.interacoes").fetchone()[0]


def wait_for_idle_jobs(conn: psycopg.Connection) -> None:
    """Until no job is due or running (the mirror jobs of the last phase drain first)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while conn.execute(
        "SELECT count(*) FROM public.procrastinate_jobs"
        " WHERE status = 'doing' OR (status = 'todo' AND coalesce(scheduled_at, now()) <= now())"
    ).fetchone()[0]:
        if time.monotonic() > deadline:
            raise BenchError(f"jobs still waiting after {SETTLE_SECONDS:.0f}s")
        time.sleep(0.2)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) each process and its children used so far."""
    out = {}
    for name, pid in pids.items():
        proc = psutil.Process(pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        out[name] = total
    return out


def wait_for_replies(conn: psycopg.Connection, first_id: int, expected: int) -> None:
    deadline = time.monotonic() + SETTLE_SECONDS
    while (sent := conn.execute(COUNT_SENT, (first_id,)).fetchone()[0]) < expected:
        if time.monotonic() > deadline:
            raise BenchError(f"only {sent} of {expected} replies sent after {SETTLE_SECONDS:.0f}s")
        time.sleep(0.2)


def run_replies(
    url: str,
    api_url: str,
    first_doctor: int,
    doctors: int,
    debounce_ms: int,
    pids: dict[str, int] | None = None,
    client_kind: str = "raw",
) -> tuple[list[dict[str, float]], float]:
    """Each of `doctors` new doctors sends one message; returns each reply's timestamps
    and the CPU ms `pids` spent per reply together (each printed, mirror jobs included;
    this process's, the posting clients' and the stand-ins', printed beside, not in it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SET_DEBOUNCE, (str(debounce_ms),))
        wait_for_idle_jobs(conn)
        first_id = next_interacao_id(conn)
        before = cpu_seconds(pids or {})
        bench_before = time.process_time()
        asyncio.run(post_all(api_url, [doctor_body(first_doctor + n) for n in range(doctors)], client_kind))
        wait_for_replies(conn, first_id, doctors)
        wait_for_idle_jobs(conn)
        after = cpu_seconds(pids or {})
        bench_ms = (time.process_time() - bench_before) / doctors * 1000
        total = 0.0
        if pids:
            spent = ", ".join(f"{k} {(after[k] - before[k]) / doctors * 1000:.1f} ms" for k in pids)
            total = sum(after[k] - before[k] for k in pids) / doctors * 1000
            print(
                f"CPU per reply: {spent}; total {total:.1f} ms"
                f" (beside it on the same cores, this bench: {client_kind} posting clients,"
                f" stand-ins, polling: {bench_ms:.1f} ms)",
                flush=True,
            )
        cur = conn.execute(SPLIT, {"first_id": first_id})
        names = [c.name for c in cur.description]
        rows = [dict(zip(names, (float(v) for v in r), strict=True)) for r in cur.fetchall()]
    if len(rows) != doctors:
        raise BenchError(f"{len(rows)} replies traced of {doctors}")
    return rows, total


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


# ------------------------------------------------------------------
# Profile: the statements of one reply
# ------------------------------------------------------------------

STATEMENT = re.compile(r"LOG:  duration: ([0-9.]+) ms  (?:statement|execute [^:]*): (.*)")


def postmaster_pid(url: str) -> int:
    return psutil.Process(int((server_log(url).parent / "postmaster.pid").read_text().split()[0])).pid


def server_log(url: str) -> Path:
    with psycopg.connect(url, autocommit=True) as conn:
        return Path(conn.execute("SELECT current_setting('data_directory')").fetchone()[0]) / "log"


def log_statements(url: str, on: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET log_min_duration_statement = {0 if on else -1}")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)  # every backend re-reads its configuration


def statements_between(log: Path, start: int, end: int) -> list[tuple[str, float]]:
    with log.open("rb") as f:
        f.seek(start)
        text = f.read(end - start).decode(errors="replace")
    found = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        m = STATEMENT.search(line)
        if m:
            statement = m.group(2)
            if not statement.strip() and n + 1 < len(lines) and lines[n + 1] and "LOG:  " not in lines[n + 1]:
                # A statement that starts with a newline (the bench's own SQL) goes on on the next line.
                statement = lines[n + 1]
            found.append((" ".join(statement.split())[:100], float(m.group(1))))
    return found


def profile(url: str, api_url: str, doctor: int) -> tuple[list[str], list[str]]:
    """(statements while one reply went from webhook to sent, statements in as long an idle time)."""
    log = server_log(url)
    log_statements(url, True)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SET_DEBOUNCE, ("0",))
            wait_for_idle_jobs(conn)
        time.sleep(1.0)
        mark = log.stat().st_size
        started = time.monotonic()
        rows, _ = run_replies(url, api_url, doctor, 1, 0)
        with psycopg.connect(url, autocommit=True) as conn:
            wait_for_idle_jobs(conn)  # the reply's mirror jobs are its statements too
        busy_end = log.stat().st_size
        busy = time.monotonic() - started
        time.sleep(1.0)  # the next statements are idle noise
        idle_start = log.stat().st_size
        time.sleep(busy)
        idle_end = log.stat().st_size
    finally:
        log_statements(url, False)
    del rows
    return statements_between(log, mark, busy_end), statements_between(log, idle_start, idle_end)


def print_profile(busy: list[tuple[str, float]], idle: list[tuple[str, float]]) -> None:
    idle_counts = collections.Counter(statement for statement, _ in idle)
    counts = collections.Counter(statement for statement, _ in busy)
    ms: dict[str, float] = collections.defaultdict(float)
    for statement, duration in busy:
        ms[statement] += duration
    print(f"\nstatements while one reply went through: {len(busy)}; in as long an idle time: {len(idle)}")
    print("  count  server ms  statement ('' = the pool's connection check)")
    for statement, n in counts.most_common():
        noise = f"  (idle: {idle_counts[statement]})" if idle_counts[statement] else ""
        print(f"  {n:4d}×  {ms[statement]:8.2f}  {statement or repr(statement)}{noise}")


# ------------------------------------------------------------------
# Report
# ------------------------------------------------------------------


def report(
    debounce_ms: int, rows: list[dict[str, float]], noop: float, reply_cpu: float, noop_cpu: float
) -> list[list[str]]:
    first_accepted = min(r["accepted"] for r in rows)
    last_accepted = max(r["accepted"] for r in rows)
    first_started = min(r["reply_started"] for r in rows)
    last_sent = max(r["sent"] for r in rows)
    # Steady state: from the first reply job started to the last reply sent, the
    # worker never idles (every job is due by then) and the debounce is not in it.
    # (A middle-80%-by-sent-time rate would depend on the order jobs run in.)
    steady = len(rows) / (last_sent - first_started)
    print(
        f"\ndebounce {debounce_ms} ms: {len(rows)} replies;"
        f" webhooks accepted over {last_accepted - first_accepted:.2f} s;"
        f" first webhook → last sent {last_sent - first_accepted:.2f} s;"
        f" first reply job started → last sent {last_sent - first_started:.2f} s ({steady:.1f} replies/s)"
    )
    benchkit.print_table(
        ["step", "p50 ms", "p99 ms"],
        [
            [name, f"{percentile(v, 50) * 1000:.1f}", f"{percentile(v, 99) * 1000:.1f}"]
            for name, a, b in STEPS
            for v in [[r[b] - r[a] for r in rows]]
        ],
    )
    return [
        str(debounce_ms),
        str(len(rows)),
        f"{steady:.1f}",
        f"{noop:.0f}",
        f"{steady / noop:.2f}",
        f"{reply_cpu:.1f}",
        f"{noop_cpu:.2f}",
        f"{noop_cpu / reply_cpu:.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--doctors", type=int, default=300, help="doctors, one message each (default 300)")
    parser.add_argument("--debounce", default="0,2500", help="reply_debounce_ms values (default 0,2500)")
    parser.add_argument("--noop", type=int, default=2000, help="no-op jobs for the baseline (default 2000)")
    parser.add_argument("--profile", action="store_true", help="also list the statements of one reply")
    parser.add_argument("--cprofile", default="", help="run the worker under cProfile, stats to this file")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="posting clients: raw keep-alive HTTP/1.1 (default, cheap) or httpx (what earlier runs used)",
    )
    args = parser.parse_args()
    debounces = [int(d) for d in args.debounce.split(",")]
    signal.signal(signal.SIGINT, benchkit.interrupt_once)

    summary = []
    with (
        benchkit.embedded_database("julia_replies_bench") as url,
        EvolutionStandin(api_key=EVOLUTION_KEY) as evolution,
        AnthropicStandin() as claude,
    ):
        env = {
            "APP_ENV": "bench",
            "DATABASE_URL": url,
            "EVOLUTION_API_URL": evolution.url,
            "EVOLUTION_API_KEY": EVOLUTION_KEY,
            "EVOLUTION_INSTANCE": INSTANCE,
            "EVOLUTION_WEBHOOK_SECRET": SECRET,
            "ANTHROPIC_API_KEY": "replies-bench-anthropic-key",
            "ANTHROPIC_BASE_URL": claude.url,
            "LLM_MODEL": "claude-haiku-4-5",
            "WORKER_CONCURRENCY": str(CONCURRENCY),
            "LOG_LEVEL": "INFO",  # to a temp file; the worker is ready at "worker_start"
        }
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        with (
            julia(["api", "--host", "127.0.0.1", "--port", str(port)], env, "Uvicorn running") as api_pid,
            julia(["worker"], env, "worker_start", args.cprofile) as worker_pid,
        ):
            pids = {"worker": worker_pid, "api": api_pid, "postgres": postmaster_pid(url)}
            print("warm-up: 20 replies ...", flush=True)
            run_replies(url, api_url, 0, 20, 0)
            for n, debounce_ms in enumerate(debounces):
                # The baseline right before each phase: on a shared machine the load changes by the minute.
                print(f"baseline: {args.noop} procrastinate no-op jobs, concurrency {CONCURRENCY} ...", flush=True)
                noop, noop_cpu = noop_jobs_per_second(url, args.noop)
                print(f"{args.doctors} doctors, debounce {debounce_ms} ms ...", flush=True)
                rows, reply_cpu = run_replies(
                    url, api_url, 1000 * (n + 1), args.doctors, debounce_ms, pids, args.client
                )
                summary.append(report(debounce_ms, rows, noop, reply_cpu, noop_cpu))
            if args.profile:
                print_profile(*profile(url, api_url, 999_999))
        if len(evolution.sent_texts()) < args.doctors * len(debounces):
            raise BenchError(f"Evolution received {len(evolution.sent_texts())} texts")

    print()
    # CPU ratio: CPU of a no-op job ÷ CPU of a reply (worker + api + Postgres), the
    # throughput ratio of a machine with nothing else to run (load from beside moves less).
    header = [
        "debounce ms",
        "replies",
        "steady replies/s",
        "no-op jobs/s",
        "ratio",
        "CPU ms/reply",
        "CPU ms/no-op job",
        "CPU ratio",
    ]
    benchkit.print_table(header, summary)
    print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BenchError as exc:
        sys.exit(f"bench failed: {exc}")
    except KeyboardInterrupt:
        sys.exit("bench interrupted")
