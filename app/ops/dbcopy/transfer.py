"""The data movement: one table streamed with COPY (binary when every column
type allows it) into a staging table, then `INSERT ... SELECT ... ON CONFLICT
DO NOTHING` in one transaction; and the scheduler that copies a few tables
at once on worker threads, each after its parents, verifying each after its
commit."""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import psycopg
from psycopg import Connection, sql
from rich.console import Console
from rich.progress import Progress

from app.core.errors import JuliaError
from app.ops.dbcopy.catalog import SCHEMA, catalog_queries, connect, error_message
from app.ops.dbcopy.checksums import row_hashes, verify
from app.ops.dbcopy.records import CopyFailed, TablePlan, TableResult
from app.ops.dbcopy.report import progress_bars

logger = logging.getLogger(__name__)

FLUSH_BYTES = 256 * 1024
# Tables copied at once (each in its own transaction, parents always first):
# an HNSW-indexed table's inserts then overlap the doctors' and shifts'.
PARALLEL_TABLES = 2
TINY_TABLE_BYTES = 1024 * 1024
STAGING = sql.Identifier("julia_copy_staging")
# A copied doctor must not become a second record of a person the target
# already has under another id (Brazil's 12/13-digit forms, a LID): the
# identity rule of db/identity.sql decides, and such rows are left out.
SAME_PERSON = {
    "clientes": sql.SQL("public.other_row_of_person(s.id, s.telefone, s.lid) IS NOT NULL"),
}

# A pair of connections a worker copies with: (source in the snapshot, target).
Connections = tuple[Connection, Connection]


class _Unverified(JuliaError):
    """A table was committed, but reading its rows back for the checksums failed."""


# ------------------------------------------------------------
# One table
# ------------------------------------------------------------


def _stream_rows(
    source: Connection,
    target: Connection,
    table: TablePlan,
    into_relation: sql.Composable,
    progress: Callable[[int, int], None],
) -> int:
    """COPY the table's rows from the source into `into_relation` on the target; returns (bytes streamed, rows)."""
    relation = sql.Identifier(SCHEMA, table.name)
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    fmt = sql.SQL("binary" if table.binary else "text")
    copy_out = sql.SQL("COPY {rel} ({cols}) TO STDOUT (FORMAT {fmt})").format(rel=relation, cols=cols, fmt=fmt)
    copy_in = sql.SQL("COPY {into} ({cols}) FROM STDIN (FORMAT {fmt})").format(into=into_relation, cols=cols, fmt=fmt)
    streamed = rows = 0
    into_cursor = target.cursor()
    with source.cursor().copy(copy_out) as out, into_cursor.copy(copy_in) as into:
        buffer = bytearray()
        # libpq hands COPY out one row per message (binary adds a trailer).
        for message in out:
            buffer += message
            rows += 1
            if len(buffer) >= FLUSH_BYTES:
                into.write(buffer)
                streamed += len(buffer)
                buffer = bytearray()
                progress(rows, streamed)
        into.write(buffer)
        streamed += len(buffer)
    progress(rows, streamed)
    return streamed, into_cursor.rowcount


def _leave_out_same_person(target: Connection, table: TablePlan) -> tuple[int, sql.Composable]:
    """Staged rows that are a person the target has under another id: their count, and the filter to skip them."""
    rule = SAME_PERSON.get(table.name)
    if rule is None:
        return 0, sql.SQL("")
    count = target.execute(
        sql.SQL(
            "SELECT count(*) AS n FROM {staging} AS s "
            "WHERE NOT EXISTS (SELECT 1 FROM {rel} AS t WHERE t.id = s.id) AND {rule}"
        ).format(staging=STAGING, rel=sql.Identifier(SCHEMA, table.name), rule=rule)
    ).fetchone()["n"]
    return count, sql.SQL("WHERE NOT ({rule})").format(rule=rule)


def _advance_sequences(target: Connection, table: TablePlan) -> None:
    """Move each identity/serial sequence past the highest id now in the table."""
    for column, sequence in table.sequences:
        target.execute(
            sql.SQL(
                "SELECT pg_catalog.setval(%(sequence)s::regclass, m.max_id)"
                " FROM (SELECT max({col}) AS max_id FROM {rel}) AS m"
                " WHERE m.max_id > coalesce(pg_catalog.pg_sequence_last_value(%(sequence)s::regclass), 0)"
            ).format(col=sql.Identifier(column), rel=sql.Identifier(SCHEMA, table.name)),
            {"sequence": sequence},
        )


def _lock_if_empty(target: Connection, table: TablePlan) -> list[dict] | None:
    """Lock an empty table the session owns against writers; None when it is not both (the staging path).

    Returns the costly indexes (name, definition) to build after the load, which
    the lock then covers too (ACCESS EXCLUSIVE: they are dropped until the commit).
    Definitions are read with an empty search path, so every name in them is
    qualified and they rebuild exactly what the revisions made.
    """
    relation = f"{SCHEMA}.{table.name}"
    if (
        table.target_rows
        or not target.execute(catalog_queries["owned_by_me"], {"relation": relation}).fetchone()["owned"]
    ):
        return None
    path = target.execute(catalog_queries["qualified_names"]).fetchone()["search_path"]
    indexes = target.execute(catalog_queries["costly_indexes"], {"relation": relation}).fetchall()
    target.execute(catalog_queries["restore_search_path"], {"search_path": path})
    # SHARE ROW EXCLUSIVE lets readers in and keeps writers out until the commit; dropping indexes needs more.
    mode = sql.SQL("ACCESS EXCLUSIVE" if indexes else "SHARE ROW EXCLUSIVE")
    rel = sql.Identifier(SCHEMA, table.name)
    target.execute(sql.SQL("LOCK TABLE {rel} IN {mode} MODE").format(rel=rel, mode=mode))
    if target.execute(sql.SQL("SELECT EXISTS (SELECT FROM {rel}) AS found").format(rel=rel)).fetchone()["found"]:
        return None  # rows came in since the plan: the staging path, which never overwrites
    return indexes


def _load_empty(
    source: Connection,
    target: Connection,
    table: TablePlan,
    indexes: list[dict],
    progress: Callable[[int, int], None],
    source_free: Callable[[], None],
) -> tuple[int, int]:
    """COPY straight into the locked, empty table, its costly indexes built once after the rows.

    Nothing can conflict (no rows, no writers, the source holds the same unique
    keys) and no row can be a person the table has under another id, so this
    inserts what the staging path would. Returns (rows inserted, bytes streamed).
    """
    for index in indexes:
        target.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(SCHEMA, index["name"])))
    streamed, inserted = _stream_rows(source, target, table, sql.Identifier(SCHEMA, table.name), progress)
    source_free()
    for index in indexes:
        target.execute(index["definition"])
    return inserted, streamed


def _load_through_staging(
    source: Connection,
    target: Connection,
    table: TablePlan,
    progress: Callable[[int, int], None],
    source_free: Callable[[], None],
) -> tuple[int, int, int]:
    """COPY into a staging table, then insert the rows the target lacks. Returns (inserted, bytes, same person)."""
    relation = sql.Identifier(SCHEMA, table.name)
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    target.execute(
        sql.SQL("CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {cols} FROM {rel} WITH NO DATA").format(
            staging=STAGING, cols=cols, rel=relation
        )
    )
    streamed, _ = _stream_rows(source, target, table, STAGING, progress)
    source_free()
    same_person, keep = _leave_out_same_person(target, table)
    overriding = sql.SQL("OVERRIDING SYSTEM VALUE") if table.overriding else sql.SQL("")
    inserted = target.execute(
        sql.SQL(
            "INSERT INTO {rel} ({cols}) {overriding} SELECT {cols} FROM {staging} AS s {keep} ON CONFLICT DO NOTHING"
        ).format(rel=relation, cols=cols, overriding=overriding, staging=STAGING, keep=keep)
    ).rowcount
    return inserted, streamed, same_person


def copy_table(
    source: psycopg.Connection,
    target: psycopg.Connection,
    table: TablePlan,
    progress: Callable[[int, int], None],
    source_free: Callable[[], None] = lambda: None,
) -> tuple[int, int, int]:
    """Copy one table in one transaction, inserting only what the target lacks.

    A table the target has no rows of (and the session owns) is locked and
    loaded with COPY straight into it, its GIN/HNSW indexes dropped and built
    again after the rows; any other table goes through a staging table and
    `INSERT ... ON CONFLICT DO NOTHING`. `source_free` is called once the source
    connection has nothing more to do for this copy. Returns (rows inserted,
    bytes streamed, rows left out because the target has the same doctor under
    another id). Raises psycopg errors; the target's transaction is then rolled
    back and nothing of this table is written (its indexes included).
    """
    with target.transaction():
        indexes = _lock_if_empty(target, table)
        if indexes is None:
            inserted, streamed, same_person = _load_through_staging(source, target, table, progress, source_free)
        else:
            same_person = 0
            inserted, streamed = _load_empty(source, target, table, indexes, progress, source_free)
        _advance_sequences(target, table)
    return inserted, streamed, same_person


# ------------------------------------------------------------
# All tables, a few at a time
# ------------------------------------------------------------


def critical_path(name: str, tables: Sequence[TablePlan]) -> int:
    """Bytes of `name` plus those of its heaviest chain of descendants."""
    by_name = {t.name: t for t in tables}
    children = [t.name for t in tables if name in t.parents]
    return by_name[name].source_bytes + max((critical_path(c, tables) for c in children), default=0)


def _start_order(tables: Sequence[TablePlan]) -> list[TablePlan]:
    # Tiny parents first (milliseconds, and they unblock their children), then the longest chain of bytes.
    parents = {p for t in tables for p in t.parents}
    return sorted(
        tables,
        key=lambda t: (t.name not in parents or t.source_bytes >= TINY_TABLE_BYTES, -critical_path(t.name, tables)),
    )


@contextlib.contextmanager
def _worker_connections(source_url: str, target_url: str, snapshot: str) -> Iterator[Connections]:
    """A source connection inside the plan's exported snapshot, and a target connection."""
    with connect(source_url) as source, connect(target_url) as target:
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        source.read_only = True
        with source.transaction(force_rollback=True):
            source.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            yield source, target


def _copy_and_verify(
    table: TablePlan, *, free: queue.SimpleQueue[Connections], bar: Progress, hasher: ThreadPoolExecutor
) -> TableResult:
    """Copy one table on a free pair of connections, then compare both sides' row hashes."""
    source, target = free.get()
    hashing: list[Future[dict[str, str]]] = []
    try:
        task = bar.add_task(table.name, total=table.source_rows, bytes=0)
        before = row_hashes(target, table.name, table.key, table.columns)
        started = time.perf_counter()
        inserted, size, same_person = copy_table(
            source,
            target,
            table,
            lambda rows, size: bar.update(task, completed=min(rows, table.source_rows), bytes=size),
            # The source's checksums (same snapshot) are read while the target inserts.
            lambda: hashing.append(hasher.submit(row_hashes, source, table.name, table.key, table.columns)),
        )
        seconds = time.perf_counter() - started
        bar.stop_task(task)  # its MB/s stays what the copy achieved
        try:
            after = row_hashes(target, table.name, table.key, table.columns)
            hashes = hashing[0].result()
        except psycopg.Error as exc:
            raise _Unverified(error_message(exc)) from exc
    finally:
        wait(hashing)
        free.put((source, target))
    logger.info(
        "table copied",
        extra={"action": "db_copy_table", "table": table.name, "inserted": inserted, "seconds": seconds},
    )
    return verify(
        table.name, hashes, before, after, inserted=inserted, seconds=seconds, size=size, same_person=same_person
    )


def _collect(
    table: TablePlan, future: Future[TableResult], results: dict[str, TableResult], failures: dict[str, str]
) -> None:
    """Record a finished table's result, or why it failed."""
    try:
        results[table.name] = future.result()
    except psycopg.Error as exc:
        failures[table.name] = f"{table.name}: {error_message(exc)}. Nothing of {table.name} was written"
    except _Unverified as exc:
        failures[table.name] = f"{table.name} was committed but could not be verified: {exc}"
    if table.name in failures:
        logger.warning("table copy failed", extra={"action": "db_copy_failed", "table": table.name})


def _copy_failed(tables: Sequence[TablePlan], results: dict[str, TableResult], failures: dict[str, str]) -> CopyFailed:
    ordered = [results[t.name] for t in tables if t.name in results]
    skipped = [t.name for t in tables if t.name not in results and t.name not in failures]
    return CopyFailed(
        "; ".join(failures.values())
        + (f"; not started: {', '.join(skipped)}" if skipped else "")
        + (f"; committed: {', '.join(r.name for r in ordered)}" if ordered else "")
        + ". Re-running the copy is safe.",
        ordered,
    )


def copy_all(
    source_url: str, target_url: str, snapshot: str, tables: Sequence[TablePlan], *, jobs: int, err: Console
) -> list[TableResult]:
    """Copy the tables, up to `jobs` at a time, each once all its parents are in; verify each after its commit.

    Every worker reads the source in the same snapshot (`snapshot`, exported by
    the plan's transaction). On a failure no further table starts; CopyFailed
    then carries the results of the tables that were committed.
    """
    results: dict[str, TableResult] = {}
    failures: dict[str, str] = {}
    free: queue.SimpleQueue[Connections] = queue.SimpleQueue()
    jobs = max(1, min(jobs, len(tables)))
    with contextlib.ExitStack() as stack, progress_bars(err) as bar:
        for _ in range(jobs):
            free.put(stack.enter_context(_worker_connections(source_url, target_url, snapshot)))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="db-copy"))
        hasher = stack.enter_context(ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="db-copy-hash"))
        run = functools.partial(_copy_and_verify, free=free, bar=bar, hasher=hasher)
        pending = _start_order(tables)
        running: dict[Future[TableResult], TablePlan] = {}
        while running or (pending and not failures):
            if not failures:
                for table in [t for t in pending if set(t.parents) <= results.keys()][: jobs - len(running)]:
                    pending.remove(table)
                    running[pool.submit(run, table)] = table
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                _collect(running.pop(future), future, results, failures)
    if failures:
        raise _copy_failed(tables, results, failures)
    return [results[t.name] for t in tables if t.name in results]
