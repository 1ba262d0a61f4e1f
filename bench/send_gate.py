"""Send-gate benchmark: claim_send_slot() under 1, 8 and 32 concurrent
connections, with no number row (the global counter), one WhatsApp number
(the one-number baseline) and ten numbers, in the same run.

Starts its own embedded PostgreSQL, migrates it, creates one doctor and one
campaign outbox row per claim attempt, then lets C threads (one connection
each) claim rows as fast as they can against an hourly limit of half the
attempts (split evenly over the numbers: each has its own cap), each
attempt what a send job does: the worker's claim query and, when it
claimed, await_durable (the claim commits without waiting for its WAL
flush; the send waits for it). Prints
claims/s and p50/p99 latency per case, and checks in the same run that no
number's claims exceed its cap (overshoot = 0) and that the counters agree
with the claimed rows. The baseline columns are a plain single-row UPDATE
of a counter without the gate's checks, same connections (its rate and
p99: what one row committed by every call costs here).

    uv run python bench/send_gate.py [--attempts N]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import benchkit
import psycopg
from psycopg.types.json import Jsonb

from app.store.queries import queries

BENCH_DB = "julia_gate_bench"
WEDNESDAY_10H = datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("America/Sao_Paulo"))
POLICY = {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59", "cooldown_hours": 0}
CLAIM = queries["claim_send_slot"]  # the send job's claim, then await_durable when it claimed
NUMBER_CASES = (0, 1, 10)  # 0 = no number row: the single global counter
BASELINE = "UPDATE public.bench_counter SET n = n + 1 WHERE id = 1"


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


def run(
    url: str, ids: list[int], concurrency: int, statement: str, limit: int | None
) -> tuple[float, list[float], int]:
    """Claim every id with `concurrency` threads; returns (seconds, latencies, successes)."""
    chunks = [ids[i::concurrency] for i in range(concurrency)]
    latencies: list[float] = []
    successes = 0
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def worker(chunk: list[int]) -> None:
        nonlocal successes
        mine: list[float] = []
        ok = 0
        with psycopg.connect(url, autocommit=True) as conn:
            barrier.wait()
            for n, outbox_id in enumerate(chunk):
                started = time.perf_counter()
                if statement == CLAIM:
                    params = {"outbox_id": outbox_id, "job_id": n + 1, "app_env": "bench", "project_ref": ""}
                    claimed = conn.execute(CLAIM, {**params, "now": WEDNESDAY_10H}).fetchone()[0]
                    if claimed:
                        conn.execute(queries["await_durable"])
                    ok += claimed
                else:
                    conn.execute(BASELINE)
                    ok += 1
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


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=3200, help="claim attempts per concurrency level")
    args = parser.parse_args()
    if not 32 <= args.attempts <= 200_000:
        parser.error("--attempts must be between 32 and 200000")

    with benchkit.embedded_database(BENCH_DB) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.bench_counter (id int PRIMARY KEY, n bigint NOT NULL)")
            conn.execute("INSERT INTO public.bench_counter VALUES (1, 0)")
        return measure(url, args.attempts)


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


def measure(url: str, attempts: int) -> int:
    """Run each concurrency level and number count, print the table; 1 when any run overshot."""
    limit = attempts // 2
    rows = []
    overshoot_total = 0
    for concurrency in (1, 8, 32):
        one_number_rate = None
        for numbers in NUMBER_CASES:
            # The baseline right before each case: on a shared machine the load changes by the minute.
            base_seconds, base_lat, _ = run(url, prepare(url, attempts), concurrency, BASELINE, None)
            base = len(base_lat) / base_seconds
            base_p99 = pct(base_lat, 99)
            seconds, lat, claimed = run(url, prepare(url, attempts, numbers, limit), concurrency, CLAIM, limit)
            overshoot = overshoot_of(url, numbers, limit, claimed)
            overshoot_total += overshoot
            rate = len(lat) / seconds
            if numbers == 1:
                one_number_rate = rate
            rows.append(
                [
                    str(concurrency),
                    str(numbers) if numbers else "0 (global)",
                    f"{rate:.0f}",
                    f"{pct(lat, 50):.2f}",
                    f"{pct(lat, 99):.2f}",
                    str(claimed),
                    str(limit),
                    str(overshoot),
                    f"{base:.0f}",
                    f"{base_p99:.2f}",
                    f"{rate / base:.2f}",
                    f"{rate / one_number_rate:.2f}" if one_number_rate and numbers > 1 else "-",
                ]
            )
    print()
    header = [
        "conns",
        "numbers",
        "claims/s",
        "p50 ms",
        "p99 ms",
        "claimed",
        "limit",
        "overshoot",
        "baseline UPDATE/s",
        "baseline p99 ms",
        "ratio",
        "vs 1 number",
    ]
    benchkit.print_table(header, rows)
    print(f"\novershoot across all runs: {overshoot_total} (must be 0)")
    return 1 if overshoot_total else 0


if __name__ == "__main__":
    raise SystemExit(main())
