"""Ingest benchmark: Evolution webhook -> `julia api` -> pgmq 'inbound'.

Starts its own embedded PostgreSQL and a real `julia api` subprocess (no
worker), fires N webhooks with C concurrent clients — once with group commit
off (INGEST_BATCH_WINDOW_MS=0: one transaction per webhook) and once with it on
(the window given) — then runs a baseline of N plain single-row INSERTs of the
same JSON bodies into a comparable table on the same server. Everything stays
on 127.0.0.1 and a Unix socket.

    uv run python bench/ingest.py [--requests N] [--concurrency C] [--window-ms W] [--client raw|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import benchkit
import httpx
import psycopg
from benchkit import BenchError

BENCH_DB = "julia_bench"
SECRET = secrets.token_hex(16)  # fresh per run; only this process and its api know it
WARMUP = 100
MAX_CONCURRENCY = 64  # the api pool (20) plus the baseline connections must fit in max_connections (100)
API_START_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 30.0

CPU_PARTS = ("api", "postgres", "client")
COUNT_INBOUND = "SELECT count(*) FROM pgmq.q_inbound"
CREATE_INBOX = """
CREATE TABLE public.bench_inbox (
    id bigserial PRIMARY KEY,
    message jsonb NOT NULL,
    enqueued_at timestamptz DEFAULT now()
)"""
INSERT_INBOX = "INSERT INTO public.bench_inbox (message) VALUES (%s::jsonb)"
COUNT_INBOX = "SELECT count(*) FROM public.bench_inbox"

# A few doctors with LIDs, as Evolution 2.3.7 addresses them (phone in remoteJid).
DOCTORS = [(f"55119816{n:05d}", f"{211484206436000 + n}@lid", f"Dr(a). Bench {n}") for n in range(50)]
TEXTS = [
    "Oi, tudo bem?",
    "Tenho interesse no plantão de sábado no Hospital São Luiz.",
    "Qual o valor da hora? Posso fazer 12h.",
    "Pode me mandar os detalhes da vaga de UTI, por favor?",
    "Obrigado, vou confirmar com a coordenação e te aviso.",
]


@dataclass(frozen=True, kw_only=True)
class Result:
    """Latencies (seconds) of one measured phase and its wall time."""

    name: str
    concurrency: int
    latencies: Sequence[float]
    wall_seconds: float
    cpu_seconds: Mapping[str, float]  # CPU spent during the phase by "api", "postgres", "client"

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.requests / self.wall_seconds

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        return benchkit.percentile_ms(self.latencies, p)


# ------------------------------------------------------------------
# Payloads
# ------------------------------------------------------------------


def webhook_body(n: int) -> bytes:
    """A messages.upsert body (Evolution v2.3.7 layout) with a unique key.id."""
    phone, lid, name = DOCTORS[n % len(DOCTORS)]
    pn = f"{phone}@s.whatsapp.net"
    body: dict[str, Any] = {
        "event": "messages.upsert",
        "instance": "julia-bench",
        "data": {
            "key": {"remoteJid": pn, "remoteJidAlt": lid, "addressingMode": "pn", "fromMe": False, "id": f"3B{n:018X}"},
            "pushName": name,
            "status": "DELIVERY_ACK",
            "message": {"conversation": TEXTS[n % len(TEXTS)]},
            "messageType": "conversation",
            "messageTimestamp": int(time.time()),
            "instanceId": "b1e6c1a0-0000-4000-8000-00000000be9c",
            "source": "android",
        },
        "destination": "http://127.0.0.1/webhooks/evolution",
        "date_time": "2026-11-29T10:00:00.000Z",
        "sender": pn,
        "server_url": "http://127.0.0.1:8080",
        "apikey": None,
    }
    return json.dumps(body, ensure_ascii=False).encode()


# ------------------------------------------------------------------
# Processes: embedded Postgres and `julia api`
# ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(log: IO[str], chars: int = 2000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-chars:]


@contextlib.contextmanager
def julia_api(database_url: str, window_ms: float) -> Iterator[tuple[str, int]]:
    """A running `julia api` on a free 127.0.0.1 port; yields its base URL and pid, stops it with SIGTERM."""
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "bench",
        "DATABASE_URL": database_url,
        "EVOLUTION_WEBHOOK_SECRET": SECRET,
        "LOG_LEVEL": "WARNING",
        "INGEST_BATCH_WINDOW_MS": f"{window_ms:g}",
    }
    command = [sys.executable, "-m", "app.ops.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile(mode="w+") as log:  # a file, not a pipe: a full pipe would block the api
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_for_health(proc, base_url, log)
            yield base_url, proc.pid
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_for_health(proc: subprocess.Popen[str], base_url: str, log: IO[str]) -> None:
    """Poll GET /health until 200; raise BenchError if the api exits or never answers."""
    deadline = time.monotonic() + API_START_SECONDS
    with httpx.Client(base_url=base_url, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"julia api exited with {proc.returncode}:\n{log_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/health").status_code == 200:
                    return
            time.sleep(0.2)
    raise BenchError(f"julia api did not answer /health within {API_START_SECONDS:.0f}s:\n{log_tail(log)}")


# ------------------------------------------------------------------
# CPU: what each process spent, whatever else runs on the machine
# ------------------------------------------------------------------


def process_cpu(pid: int, *, reaped_children: bool = False) -> float:
    """CPU seconds of a Linux process, from /proc (with its reaped children's, in clock ticks)."""
    # schedstat counts nanoseconds; stat's utime + stime count 10 ms ticks, too coarse for
    # 64 Postgres backends that each spend a few ms.
    seconds = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    if reaped_children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        seconds += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
    return seconds


def postgres_cpu(database_url: str) -> float:
    """CPU seconds of the embedded server: the postmaster, its live children, the exited ones."""
    socket_dir = parse_qs(urlsplit(database_url).query)["host"][0]
    postmaster = int((Path(socket_dir) / "postmaster.pid").read_text().split()[0])
    total = process_cpu(postmaster, reaped_children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                total += process_cpu(int(stat.parent.name))
    return total


def cpu_now(database_url: str, api_pid: int | None) -> dict[str, float]:
    """Cumulative CPU seconds so far of the api (if any), Postgres and this process (the clients)."""
    now = {"postgres": postgres_cpu(database_url), "client": time.process_time()}
    if api_pid is not None:
        now["api"] = process_cpu(api_pid)
    return now


def cpu_since(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {part: after[part] - before[part] for part in after}


# ------------------------------------------------------------------
# Load
# ------------------------------------------------------------------


async def run_workers(
    bodies: Sequence[bytes], concurrency: int, send: Callable[[int, bytes], Awaitable[None]]
) -> tuple[list[float], float]:
    """Run `send(worker, body)` over all bodies from C workers; return latencies and wall time."""
    latencies: list[float] = []
    pending = iter(bodies)  # shared: each worker takes the next body (no await between next() calls)

    async def worker(index: int) -> None:
        for body in pending:
            start = time.perf_counter()
            await send(index, body)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index in range(concurrency):
            group.create_task(worker(index))
    return latencies, time.perf_counter() - start


class RawConnection:
    """One keep-alive HTTP/1.1 connection that POSTs and reads the answer by hand: a load
    generator costing the shared CPUs tens of µs a request, where httpx costs ~1.5 ms
    (more than the api itself: see the client CPU column with --client httpx)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        lines = [f"POST {path} HTTP/1.1", f"host: {self.host}:{self.port}", f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def bench_webhook(
    name: str,
    api: tuple[str, int],
    database_url: str,
    bodies: Sequence[bytes],
    warmup: Sequence[bytes],
    concurrency: int,
    client_kind: str,
) -> Result:
    """POST each body to /webhooks/evolution; raise BenchError on any non-200."""
    headers = {"x-webhook-secret": SECRET, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    failures: list[str] = []
    base_url, api_pid = api
    raw = [RawConnection(base_url) for _ in range(concurrency)]
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT_SECONDS) as client:

        async def send(worker: int, body: bytes) -> None:
            if client_kind == "raw":
                status, text = await asyncio.wait_for(
                    raw[worker].post("/webhooks/evolution", body, headers), REQUEST_TIMEOUT_SECONDS
                )
            else:
                response = await client.post("/webhooks/evolution", content=body, headers=headers)
                status, text = response.status_code, response.content
            if status != 200 or json.loads(text).get("status") != "queued":
                failures.append(f"{status} {text[:200]!r}")

        try:
            await run_workers(warmup, concurrency, send)
            before = cpu_now(database_url, api_pid)
            latencies, wall = await run_workers(bodies, concurrency, send)
            cpu = cpu_since(before, cpu_now(database_url, api_pid))
        finally:
            for connection in raw:
                connection.close()
    if failures:
        raise BenchError(f"{len(failures)} webhook calls were not queued with 200, first: {failures[0]}")
    return Result(name=name, concurrency=concurrency, latencies=latencies, wall_seconds=wall, cpu_seconds=cpu)


@contextlib.asynccontextmanager
async def connections(database_url: str, count: int) -> AsyncIterator[list[psycopg.AsyncConnection]]:
    """`count` autocommit connections, one per concurrent worker."""
    async with contextlib.AsyncExitStack() as stack:
        conns = [
            await stack.enter_async_context(await psycopg.AsyncConnection.connect(database_url, autocommit=True))
            for _ in range(count)
        ]
        yield conns


async def bench_insert(database_url: str, bodies: Sequence[bytes], warmup: Sequence[bytes], concurrency: int) -> Result:
    """INSERT each body as one row of bench_inbox, one connection per worker."""
    async with connections(database_url, concurrency) as conns:
        await conns[0].execute(CREATE_INBOX)

        async def send(worker: int, body: bytes) -> None:
            await conns[worker].execute(INSERT_INBOX, (body.decode(),))

        await run_workers(warmup, concurrency, send)
        before = cpu_now(database_url, None)
        latencies, wall = await run_workers(bodies, concurrency, send)
        cpu = cpu_since(before, cpu_now(database_url, None))
    return Result(
        name="INSERT baseline (psycopg)",
        concurrency=concurrency,
        latencies=latencies,
        wall_seconds=wall,
        cpu_seconds=cpu,
    )


def count_rows(database_url: str, query: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


# ------------------------------------------------------------------
# Report
# ------------------------------------------------------------------


def print_table(results: Sequence[Result]) -> None:
    header = [
        "",
        "requests",
        "concurrency",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU ms/req: api",
        "postgres",
        "client",
    ]
    rows = [
        [
            r.name,
            str(r.requests),
            str(r.concurrency),
            f"{r.per_second:.0f}",
            f"{r.percentile_ms(50):.2f}",
            f"{r.percentile_ms(99):.2f}",
            f"{max(r.latencies) * 1000:.2f}",
            *(f"{r.cpu_seconds[part] / r.requests * 1000:.3f}" if part in r.cpu_seconds else "-" for part in CPU_PARTS),
        ]
        for r in results
    ]
    benchkit.print_table(header, rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per phase (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: raw keep-alive HTTP/1.1 (default, cheap) or httpx (what earlier runs used)",
    )
    parser.add_argument(
        "--window-ms", type=float, default=1.0, help="group-commit window of the second run (default 1)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 1_000_000:
        parser.error("--requests must be between 1 and 1000000")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--concurrency must be between 1 and {MAX_CONCURRENCY}")
    if not 0 < args.window_ms <= 1000:
        parser.error("--window-ms must be above 0 and at most 1000")

    per_run = WARMUP + args.requests
    modes = [
        ("webhook → pgmq, one transaction each (window 0)", 0.0),
        (f"webhook → pgmq, group commit (window {args.window_ms:g} ms)", args.window_ms),
    ]

    signal.signal(signal.SIGINT, benchkit.interrupt_once)
    print("starting embedded PostgreSQL, migrating ...", flush=True)
    with benchkit.embedded_database(bootstrap=True) as url:
        webhooks = []
        for run, (name, window_ms) in enumerate(modes):
            # Unique key.ids across the runs: each run's messages are new ones.
            warmup = [webhook_body(n) for n in range(run * per_run, run * per_run + WARMUP)]
            bodies = [webhook_body(n) for n in range(run * per_run + WARMUP, (run + 1) * per_run)]
            with julia_api(url, window_ms) as api:
                print(
                    f"julia api on {api[0]} (INGEST_BATCH_WINDOW_MS={window_ms:g});"
                    f" {WARMUP} warm-up + {args.requests} webhooks ...",
                    flush=True,
                )
                webhooks.append(
                    asyncio.run(bench_webhook(name, api, url, bodies, warmup, args.concurrency, args.client))
                )
            queued = count_rows(url, COUNT_INBOUND)
            print(f"pgmq.q_inbound rows: {queued} (expected {(run + 1) * per_run})", flush=True)
            if queued != (run + 1) * per_run:
                raise BenchError(f"pgmq.q_inbound holds {queued} rows, expected {(run + 1) * per_run}")

        print(f"baseline: {WARMUP} warm-up + {args.requests} INSERTs ...", flush=True)
        baseline = asyncio.run(bench_insert(url, bodies, warmup, args.concurrency))
        inserted = count_rows(url, COUNT_INBOX)
        print(f"bench_inbox rows: {inserted} (expected {WARMUP + args.requests})", flush=True)
        if inserted != WARMUP + args.requests:
            raise BenchError(f"bench_inbox holds {inserted} rows, expected {WARMUP + args.requests}")

    print()
    print_table([*webhooks, baseline])
    print()
    for webhook in webhooks:
        print(
            f"{webhook.name}: req/s ÷ baseline req/s = {webhook.per_second / baseline.per_second:.2f}; "
            f"p99 ÷ baseline p99 = {webhook.percentile_ms(99) / baseline.percentile_ms(99):.2f}"
        )


if __name__ == "__main__":
    benchkit.run(main)
