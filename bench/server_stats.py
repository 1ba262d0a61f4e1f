"""What the bench's server did during one phase: WAL flushes,
checkpoints, autovacuum and autoanalyze runs (from the cumulative statistics
views, before and after), and what its client backends were waiting on
(pg_stat_activity sampled every few milliseconds from another connection).
Read beside a phase's latencies: a stall in the tail shows up as a
checkpoint, a vacuum, or one WAL flush per commit; a serial point as a wait
event most backends share.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg

SAMPLE_SECONDS = 0.005

COUNTERS = """
SELECT (SELECT coalesce(sum(fsyncs), 0) FROM pg_catalog.pg_stat_io WHERE object = 'wal'),
       (SELECT num_done FROM pg_catalog.pg_stat_checkpointer),
       (SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_catalog.pg_stat_user_tables)
"""

# Client backends of the load (not this sampler): active ones by wait event (CPU when none),
# the others by state (idle: waiting for their client's next statement).
WAITS = """
SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU') ELSE state END
  FROM pg_catalog.pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()
   AND datname = pg_catalog.current_database() AND state IS NOT NULL
"""


@dataclass
class PhaseStats:
    wal_flushes: int = 0
    checkpoints: int = 0
    vacuums: int = 0  # autovacuum and autoanalyze runs on user tables
    waits: collections.Counter[str] = field(default_factory=collections.Counter)

    def top_waits(self, n: int = 3) -> str:
        """The n most sampled states, each with its share of the samples."""
        total = sum(self.waits.values()) or 1
        return ", ".join(f"{name} {count / total:.0%}" for name, count in self.waits.most_common(n))


def _counters(url: str) -> tuple[int, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
        return tuple(int(v) for v in conn.execute(COUNTERS).fetchone())


@contextlib.contextmanager
def observe(url: str) -> Iterator[PhaseStats]:
    """Statistics of the phase run inside the block (filled in when it ends)."""
    stats = PhaseStats()
    stop = threading.Event()

    def sample() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                stats.waits.update(row[0] for row in conn.execute(WAITS))
                time.sleep(SAMPLE_SECONDS)

    before = _counters(url)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield stats
    finally:
        stop.set()
        sampler.join()
    time.sleep(0.6)  # backends report their statistics at most every 0.5 s when busy, at once when idle
    after = _counters(url)
    stats.wal_flushes, stats.checkpoints, stats.vacuums = (a - b for a, b in zip(after, before, strict=True))
