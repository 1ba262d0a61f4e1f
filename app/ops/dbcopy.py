"""`julia db copy`: copy reference and content tables between two Julia
databases (DEV → PROD), fast, safe to re-run, and verified.

Rows stream from the source with COPY (binary when every column type allows
it) into a staging table on the target, then `INSERT ... SELECT ... ON
CONFLICT DO NOTHING` adds what is missing: nothing already in the target is
overwritten. One transaction per table, a table only after its parents
(foreign keys read from pg_constraint), two tables at a time, identity
sequences advanced past the copied ids. Every source connection reads the same
exported REPEATABLE READ snapshot, so counts, rows and checksums agree. After
each table, row hashes of both sides are compared key by key.

Before anything is written the copy is refused (CopyRefused) when a URL is a
transaction pooler, when source and target are the same database, when their
alembic revisions differ, when an environment marker is missing, or when
production data would go to a database that is not production.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import psycopg
from psycopg import Connection, sql
from psycopg.rows import dict_row, tuple_row
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from app.core.errors import JuliaError
from app.store.dburl import DatabaseTarget, parse_database_url

logger = logging.getLogger(__name__)

SCHEMA = "public"
# The seed's DEV → PROD list; put in foreign-key order at run time, and
# tables missing from either database (campanhas before its migration) are left out.
DEFAULT_TABLES = (
    "especialidades",
    "especialidades_alias",
    "hospitais",
    "hospitais_alias",
    "setores",
    "periodos",
    "tipos_vaga",
    "formas_recebimento",
    "clientes",
    "vagas",
    "conhecimento_julia",
    "diretrizes",
    "prompts",
    "campanhas",
)
# Per-database state that a copy must never carry over, even when asked to.
NEVER_COPIED = {
    "app_settings": "it holds the environment markers; set them with `julia db bootstrap`",
    "julia_status": "its newest row is the target's pause state; use `julia pause` / `julia resume`",
    "alembic_version": "it is the schema revision; use `julia db upgrade`",
    "schema_files": "it is the ledger of the target's replaceable SQL; use `julia db upgrade`",
    "schema_fingerprints": "it is the target's schema history; use `julia db upgrade`",
}
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

# Both sessions render values the same way, so row hashes compare across databases.
STABLE_OUTPUT = """
SELECT pg_catalog.set_config('client_encoding', 'UTF8', false),
       pg_catalog.set_config('TimeZone', 'UTC', false),
       pg_catalog.set_config('DateStyle', 'ISO, YMD', false),
       pg_catalog.set_config('IntervalStyle', 'postgres', false),
       pg_catalog.set_config('extra_float_digits', '1', false),
       pg_catalog.set_config('bytea_output', 'hex', false)
"""
SERVER_IDENTITY = """
SELECT pg_catalog.current_database() AS dbname, pg_catalog.pg_postmaster_start_time()::text AS started
"""
SYSTEM_IDENTIFIER = "SELECT system_identifier::text AS sysid FROM pg_catalog.pg_control_system()"
REGCLASS = "SELECT pg_catalog.to_regclass(%(name)s) IS NOT NULL AS present"
REVISION = "SELECT v.version_num FROM public.alembic_version AS v LIMIT 1"
MARKERS = """
SELECT s.key, s.value FROM public.app_settings AS s WHERE s.key IN ('environment', 'supabase_project_ref')
"""
TABLES_PRESENT = """
SELECT c.relname FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND c.relname = ANY(%(tables)s)
"""
COLUMNS = """
SELECT c.relname AS table_name, a.attname AS name, a.attgenerated <> '' AS generated, a.attidentity AS identity,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name, t.typtype AS type_kind,
       t.typsend <> 0 AND t.typreceive <> 0 AS binary_io,
       CASE WHEN t.typcategory = 'A' THEN t.typelem END AS element_oid,
       pg_catalog.pg_get_serial_sequence(c.oid::regclass::text, a.attname) AS sequence
  FROM pg_catalog.pg_attribute AS a
  JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum
"""
PRIMARY_KEYS = """
SELECT c.relname AS table_name, array_agg(a.attname ORDER BY k.ord) AS columns
  FROM pg_catalog.pg_constraint AS con
  JOIN pg_catalog.pg_class AS c ON c.oid = con.conrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
 WHERE con.contype = 'p' AND n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
 GROUP BY c.relname
"""
FOREIGN_KEYS = """
SELECT c.relname AS child, pn.nspname AS parent_schema, p.relname AS parent
  FROM pg_catalog.pg_constraint AS con
  JOIN pg_catalog.pg_class AS c ON c.oid = con.conrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_class AS p ON p.oid = con.confrelid
  JOIN pg_catalog.pg_namespace AS pn ON pn.oid = p.relnamespace
 WHERE con.contype = 'f' AND n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
 ORDER BY c.relname, p.relname
"""
ADVANCE_SEQUENCE = """
SELECT pg_catalog.setval(%(sequence)s::regclass, m.max_id)
  FROM ({max_query}) AS m
 WHERE m.max_id > coalesce(pg_catalog.pg_sequence_last_value(%(sequence)s::regclass), 0)
"""


class CopyError(JuliaError):
    """The copy could not be done."""


class CopyRefused(CopyError):
    """The copy was refused before anything was written."""


class CopyFailed(CopyError):
    """A table could not be copied; its transaction was rolled back."""

    def __init__(self, message: str, results: Sequence[TableResult] = ()) -> None:
        super().__init__(message)
        self.results = tuple(results)


# ------------------------------------------------------------
# Records
# ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Side:
    """One database as the copy sees it."""

    target: DatabaseTarget
    environment: str | None = None
    project_ref: str | None = None
    revision: str | None = None


@dataclass(frozen=True, kw_only=True)
class TablePlan:
    """What will be copied for one table; a dry run also compares the rows (`new_rows`, `differing_rows`)."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    overriding: bool
    sequences: tuple[tuple[str, str], ...]
    binary: bool
    parents: tuple[str, ...]
    outside_parents: tuple[str, ...]
    source_rows: int
    target_rows: int
    source_bytes: int = 0
    new_rows: int | None = None
    differing_rows: int | None = None


@dataclass(frozen=True, kw_only=True)
class Plan:
    source: Side
    target: Side
    tables: tuple[TablePlan, ...]


@dataclass(frozen=True, kw_only=True)
class TableResult:
    """Counts and checksums of one table after its copy."""

    name: str
    source_rows: int
    target_before: int
    target_after: int
    inserted: int
    kept_differs: int
    missing: int
    corrupted: int
    same_person: int
    source_checksum: str
    target_checksum: str
    seconds: float
    bytes: int

    @property
    def ok(self) -> bool:
        # Rows the target already had are kept on purpose; a source key that is
        # absent, or a row this copy inserted that differs, is a failure.
        return self.missing == 0 and self.corrupted == 0


@dataclass(frozen=True, kw_only=True)
class CopyReport:
    """The plan and, unless it was a dry run, what each table's copy verified."""

    plan: Plan
    results: tuple[TableResult, ...] = ()

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


# ------------------------------------------------------------
# Pure logic
# ------------------------------------------------------------


def fk_order(tables: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """Tables with every parent before its children, else in the given order; raises CopyRefused on a cycle."""
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in edges:
        if child != parent and child in parents and parent in parents:
            parents[child].add(parent)
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(tables):
        ready = next((t for t in tables if t not in placed and parents[t] <= placed), None)
        if ready is None:
            raise CopyRefused(f"cannot order the tables: foreign keys form a cycle ({_find_cycle(parents, placed)})")
        order.append(ready)
        placed.add(ready)
    return order


def _find_cycle(parents: dict[str, set[str]], placed: set[str]) -> str:
    node = next(t for t in parents if t not in placed)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = sorted(parents[node] - placed)[0]
    cycle = [*path[path.index(node) :], node]
    return " → ".join(cycle)


def critical_path(name: str, tables: Sequence[TablePlan]) -> int:
    """Bytes of `name` plus those of its heaviest chain of descendants."""
    by_name = {t.name: t for t in tables}
    children = [t.name for t in tables if name in t.parents]
    return by_name[name].source_bytes + max((critical_path(c, tables) for c in children), default=0)


def checksum(keys: Iterable[str], hashes: dict[str, str]) -> str:
    """md5 over `key:row-hash` lines in key order; a missing key counts as '-'."""
    digest = hashlib.md5(usedforsecurity=False)
    for key in sorted(keys):
        digest.update(f"{key}:{hashes.get(key, '-')}\n".encode())
    return digest.hexdigest()


def verify(
    name: str,
    source: dict[str, str],
    before: dict[str, str],
    after: dict[str, str],
    *,
    inserted: int,
    seconds: float,
    size: int,
    same_person: int = 0,
) -> TableResult:
    """Compare the target's rows before and after the copy with the source's, key by key (key → row hash)."""
    missing = kept = corrupted = 0
    for key, row_hash in source.items():
        now = after.get(key)
        if now is None:
            missing += 1
        elif now != row_hash:
            if key in before:
                kept += 1
            else:
                corrupted += 1
    return TableResult(
        name=name,
        source_rows=len(source),
        target_before=len(before),
        target_after=len(after),
        inserted=inserted,
        kept_differs=kept,
        missing=missing,
        corrupted=corrupted,
        same_person=same_person,
        source_checksum=checksum(source, source),
        target_checksum=checksum(source, after),
        seconds=seconds,
        bytes=size,
    )


# ------------------------------------------------------------
# Safety checks
# ------------------------------------------------------------


def parse_side(url: str, role: str) -> DatabaseTarget:
    """Parse a URL and refuse a transaction pooler."""
    try:
        target = parse_database_url(url)
    except ValueError:
        raise CopyRefused(f"the {role} URL is not a valid PostgreSQL connection string") from None
    if target.is_transaction_pooler:
        raise CopyRefused(
            f"the {role} URL points at a transaction pooler ({target.describe()}); COPY and one transaction "
            "per table need a real session. Use the direct URL (db.<project-ref>.supabase.co:5432) or the "
            "session pooler (port 5432)."
        )
    return target


def _server_identity(conn: psycopg.Connection) -> tuple[str, str, str | None]:
    row = conn.execute(SERVER_IDENTITY).fetchone()
    try:
        sysid = conn.execute(SYSTEM_IDENTIFIER).fetchone()["sysid"]
    except psycopg.errors.InsufficientPrivilege:
        sysid = None  # not granted on managed servers; the postmaster start time tells servers apart too
    return row["dbname"], row["started"], sysid


def refuse_same_database(source: psycopg.Connection, target: psycopg.Connection, describe: str) -> None:
    """Raise CopyRefused when both connections reach the same database, however the URLs spell it."""
    s_db, s_started, s_sysid = _server_identity(source)
    t_db, t_started, t_sysid = _server_identity(target)
    same_server = s_started == t_started and (s_sysid is None or t_sysid is None or s_sysid == t_sysid)
    if s_db == t_db and same_server:
        raise CopyRefused(f"source and target are the same database ({describe}); nothing to copy")


def _read_side(conn: psycopg.Connection, target: DatabaseTarget) -> Side:
    revision = environment = project_ref = None
    if conn.execute(REGCLASS, {"name": "public.alembic_version"}).fetchone()["present"]:
        found = conn.execute(REVISION).fetchone()
        revision = found["version_num"] if found else None
    if conn.execute(REGCLASS, {"name": "public.app_settings"}).fetchone()["present"]:
        markers = {r["key"]: r["value"] for r in conn.execute(MARKERS)}
        environment, project_ref = markers.get("environment"), markers.get("supabase_project_ref")
    return Side(target=target, environment=environment, project_ref=project_ref, revision=revision)


def refuse_unsafe_pair(source: Side, target: Side) -> None:
    """Schema revisions must match, both markers must exist, production data stays in production."""
    if source.revision != target.revision:
        raise CopyRefused(
            f"schema versions differ: source is at alembic revision {source.revision or '<none>'}, target at "
            f"{target.revision or '<none>'}. Run `julia db upgrade` against the one that is behind, then copy."
        )
    for role, side in (("source", source), ("target", target)):
        if not side.environment:
            raise CopyRefused(
                f"the {role} database ({side.target.describe()}) has no environment marker in app_settings; "
                "run `julia db bootstrap` against it first, so the copy knows which way it goes"
            )
    if source.environment == "production" and target.environment != "production":
        raise CopyRefused(
            f"refusing to copy from a production database into a {target.environment} one "
            f"({source.target.describe()} → {target.target.describe()}): production data (doctors' phone "
            "numbers) never leaves production. The copy goes DEV → PROD."
        )


# ------------------------------------------------------------
# Plan
# ------------------------------------------------------------


def _catalog(conn: psycopg.Connection, query: str, tables: Sequence[str]) -> list[dict]:
    return conn.execute(query, {"schema": SCHEMA, "tables": list(tables)}).fetchall()


def choose_tables(source: psycopg.Connection, target: psycopg.Connection, requested: Sequence[str] | None) -> list[str]:
    """The requested tables (or the default list) that exist in both databases, in foreign-key order."""
    names = [n.removeprefix(f"{SCHEMA}.") for n in (requested or DEFAULT_TABLES)]
    for name in names:
        if name in NEVER_COPIED:
            raise CopyRefused(f"{name} is never copied: {NEVER_COPIED[name]}")
    names = list(dict.fromkeys(names))
    in_source = {r["relname"] for r in _catalog(source, TABLES_PRESENT, names)}
    in_target = {r["relname"] for r in _catalog(target, TABLES_PRESENT, names)}
    if requested:
        absent = [n for n in names if n not in in_source or n not in in_target]
        if absent:
            raise CopyRefused(f"no such table in both databases ({SCHEMA} schema): {', '.join(absent)}")
    present = [n for n in names if n in in_source and n in in_target]
    if not present:
        raise CopyRefused("none of the tables to copy exists in both databases")
    edges = [(r["child"], r["parent"]) for r in _catalog(source, FOREIGN_KEYS, present) if r["parent_schema"] == SCHEMA]
    return fk_order(present, edges)


def _columns_by_table(conn: psycopg.Connection, tables: Sequence[str]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {t: [] for t in tables}
    for row in _catalog(conn, COLUMNS, tables):
        found[row["table_name"]].append(row)
    return found


def _binary_ok(source_col: dict, target_col: dict) -> bool:
    # Binary arrays carry their element type's oid, and records their columns':
    # those only load where the oids agree; plain values carry none.
    if not (source_col["binary_io"] and target_col["binary_io"]) or source_col["type_kind"] == "c":
        return False
    return source_col["element_oid"] == target_col["element_oid"]


def row_hashes(conn: psycopg.Connection, table: str, key: Sequence[str], columns: Sequence[str]) -> dict[str, str]:
    """key text → md5 of the row's copied columns as text, computed by the server."""
    query = sql.SQL("SELECT ROW({key})::text, md5(ROW({cols})::text) FROM {table}").format(
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(SCHEMA, table),
    )
    return dict(conn.cursor(row_factory=tuple_row).execute(query))


def count_rows(conn: psycopg.Connection, table: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {table}").format(table=sql.Identifier(SCHEMA, table))
    return conn.cursor(row_factory=tuple_row).execute(query).fetchone()[0]


def table_bytes(conn: psycopg.Connection, table: str) -> int:
    """Size of the table with its indexes and TOAST: how long its copy will take, roughly."""
    query = "SELECT pg_catalog.pg_total_relation_size(pg_catalog.to_regclass(%s))"
    return conn.cursor(row_factory=tuple_row).execute(query, (f"{SCHEMA}.{table}",)).fetchone()[0] or 0


def plan_tables(
    source: psycopg.Connection, target: psycopg.Connection, tables: Sequence[str], *, compare: bool = False
) -> list[TablePlan]:
    """Columns, keys, sequences, format and row counts per table; `compare` also counts new and differing rows."""
    s_cols, t_cols = _columns_by_table(source, tables), _columns_by_table(target, tables)
    keys = {r["table_name"]: tuple(r["columns"]) for r in _catalog(target, PRIMARY_KEYS, tables)}
    inside: dict[str, list[str]] = {t: [] for t in tables}
    outside: dict[str, list[str]] = {t: [] for t in tables}
    for r in _catalog(source, FOREIGN_KEYS, tables):
        if r["parent_schema"] == SCHEMA and r["parent"] in tables:
            if r["parent"] != r["child"]:
                inside[r["child"]].append(r["parent"])
        else:
            parent = r["parent"] if r["parent_schema"] == SCHEMA else f"{r['parent_schema']}.{r['parent']}"
            outside[r["child"]].append(parent)
    plans = []
    for name in tables:
        source_by_name = {c["name"]: c for c in s_cols[name]}
        copied = [c for c in t_cols[name] if not c["generated"]]
        differ = [
            c["name"]
            for c in t_cols[name]
            if c["name"] not in source_by_name
            or source_by_name[c["name"]]["type_name"] != c["type_name"]
            or bool(source_by_name[c["name"]]["generated"]) != bool(c["generated"])
        ]
        if differ or len(s_cols[name]) != len(t_cols[name]):
            shown = ", ".join(differ) or "column count"
            raise CopyRefused(f"{name}: columns differ between source and target ({shown})")
        if name not in keys:
            raise CopyRefused(f"{name} has no primary key, so its copy cannot be verified row by row")
        columns = tuple(c["name"] for c in copied)
        compared = {}
        if compare:
            s_hashes, t_hashes = (
                row_hashes(source, name, keys[name], columns),
                row_hashes(target, name, keys[name], columns),
            )
            compared = {
                "new_rows": sum(1 for k in s_hashes if k not in t_hashes),
                "differing_rows": sum(1 for k, h in s_hashes.items() if k in t_hashes and t_hashes[k] != h),
            }
        plans.append(
            TablePlan(
                name=name,
                columns=columns,
                key=keys[name],
                overriding=any(c["identity"] == "a" for c in copied),
                sequences=tuple((c["name"], c["sequence"]) for c in copied if c["sequence"]),
                binary=all(_binary_ok(source_by_name[c["name"]], c) for c in copied),
                parents=tuple(dict.fromkeys(inside[name])),
                outside_parents=tuple(dict.fromkeys(outside[name])),
                source_rows=count_rows(source, name),
                source_bytes=table_bytes(source, name),
                target_rows=count_rows(target, name),
                **compared,
            )
        )
    return plans


# ------------------------------------------------------------
# Copy
# ------------------------------------------------------------


def copy_table(
    source: psycopg.Connection,
    target: psycopg.Connection,
    table: TablePlan,
    progress: Callable[[int, int], None],
    source_free: Callable[[], None] = lambda: None,
) -> tuple[int, int, int]:
    """Stream one table into a staging table and insert what is missing, in one transaction.

    `source_free` is called once the source connection has nothing more to do
    for this copy. Returns (rows inserted, bytes streamed, rows left out because
    the target has the same doctor under another id). Raises psycopg
    errors; the target's transaction is then rolled back and nothing of this
    table is written.
    """
    relation = sql.Identifier(SCHEMA, table.name)
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    fmt = sql.SQL("binary" if table.binary else "text")
    streamed = rows = 0
    with target.transaction():
        target.execute(
            sql.SQL("CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {cols} FROM {rel} WITH NO DATA").format(
                staging=STAGING, cols=cols, rel=relation
            )
        )
        copy_out = sql.SQL("COPY {rel} ({cols}) TO STDOUT (FORMAT {fmt})").format(rel=relation, cols=cols, fmt=fmt)
        copy_in = sql.SQL("COPY {staging} ({cols}) FROM STDIN (FORMAT {fmt})").format(
            staging=STAGING, cols=cols, fmt=fmt
        )
        with source.cursor().copy(copy_out) as out, target.cursor().copy(copy_in) as into:
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
        source_free()
        overriding = sql.SQL("OVERRIDING SYSTEM VALUE") if table.overriding else sql.SQL("")
        same_person = 0
        keep = sql.SQL("")
        if table.name in SAME_PERSON:
            rule = SAME_PERSON[table.name]
            same_person = target.execute(
                sql.SQL(
                    "SELECT count(*) AS n FROM {staging} AS s "
                    "WHERE NOT EXISTS (SELECT 1 FROM {rel} AS t WHERE t.id = s.id) AND {rule}"
                ).format(staging=STAGING, rel=relation, rule=rule)
            ).fetchone()["n"]
            keep = sql.SQL("WHERE NOT ({rule})").format(rule=rule)
        inserted = target.execute(
            sql.SQL(
                "INSERT INTO {rel} ({cols}) {overriding} SELECT {cols} FROM {staging} AS s {keep} "
                "ON CONFLICT DO NOTHING"
            ).format(rel=relation, cols=cols, overriding=overriding, staging=STAGING, keep=keep)
        ).rowcount
        for column, sequence in table.sequences:
            max_query = sql.SQL("SELECT max({col}) AS max_id FROM {rel}").format(
                col=sql.Identifier(column), rel=relation
            )
            target.execute(sql.SQL(ADVANCE_SEQUENCE).format(max_query=max_query), {"sequence": sequence})
    return inserted, streamed, same_person


class _Unverified(JuliaError):
    """A table was committed, but reading its rows back for the checksums failed."""


def _message(exc: psycopg.Error) -> str:
    return exc.diag.message_primary or str(exc).strip().splitlines()[0]


class _Throughput(ProgressColumn):
    """MB/s of the bytes streamed so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0
        size = task.fields.get("bytes", 0)
        rate = size / elapsed / 1e6 if elapsed > 0 else 0.0
        return Text(f"{size / 1e6:.1f} MB · {rate:.1f} MB/s", style="progress.data.speed")


@contextlib.contextmanager
def _worker_connections(source_url: str, target_url: str, snapshot: str) -> Iterator[tuple[Connection, Connection]]:
    """A source connection inside the plan's exported snapshot, and a target connection."""
    with _connect(source_url) as source, _connect(target_url) as target:
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        source.read_only = True
        with source.transaction(force_rollback=True):
            source.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            yield source, target


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
    free: queue.SimpleQueue[tuple[Connection, Connection]] = queue.SimpleQueue()
    columns = (
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        _Throughput(),
        TimeElapsedColumn(),
    )

    def run(table: TablePlan) -> TableResult:
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
                raise _Unverified(_message(exc)) from exc
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

    jobs = max(1, min(jobs, len(tables)))
    # Bars only on a terminal; logs and CI get the verification table.
    with contextlib.ExitStack() as stack, Progress(*columns, console=err, disable=not err.is_terminal) as bar:
        for _ in range(jobs):
            free.put(stack.enter_context(_worker_connections(source_url, target_url, snapshot)))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="db-copy"))
        hasher = stack.enter_context(ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="db-copy-hash"))
        # Tiny parents first (milliseconds, and they unblock their children), then the longest chain of bytes.
        parents = {p for t in tables for p in t.parents}
        pending = sorted(
            tables,
            key=lambda t: (t.name not in parents or t.source_bytes >= TINY_TABLE_BYTES, -critical_path(t.name, tables)),
        )
        running: dict[Future[TableResult], TablePlan] = {}
        while running or (pending and not failures):
            for table in [t for t in pending if set(t.parents) <= results.keys()][: jobs - len(running)]:
                if failures:
                    break
                pending.remove(table)
                running[pool.submit(run, table)] = table
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                table = running.pop(future)
                try:
                    results[table.name] = future.result()
                except psycopg.Error as exc:
                    failures[table.name] = f"{table.name}: {_message(exc)}. Nothing of {table.name} was written"
                except _Unverified as exc:
                    failures[table.name] = f"{table.name} was committed but could not be verified: {exc}"
                if table.name in failures:
                    logger.warning("table copy failed", extra={"action": "db_copy_failed", "table": table.name})
    ordered = [results[t.name] for t in tables if t.name in results]
    if failures:
        skipped = [t.name for t in tables if t.name not in results and t.name not in failures]
        raise CopyFailed(
            "; ".join(failures.values())
            + (f"; not started: {', '.join(skipped)}" if skipped else "")
            + (f"; committed: {', '.join(r.name for r in ordered)}" if ordered else "")
            + ". Re-running the copy is safe.",
            ordered,
        )
    return ordered


# ------------------------------------------------------------
# Output
# ------------------------------------------------------------


def _side_line(role: str, side: Side) -> str:
    ref = f", project {side.project_ref}" if side.project_ref else ""
    return (
        f"{role}: {side.target.describe()} (sslmode {side.target.sslmode}) · environment {side.environment}{ref}"
        f" · revision {side.revision}"
    )


def plan_table(plan: Plan) -> Table:
    compared = any(t.new_rows is not None for t in plan.tables)
    table = Table(title="copy plan (foreign-key order)", title_justify="left")
    headers = ("#", "table", "format", "source rows", "target rows", *(("new", "present, differs") * compared))
    for header in (*headers, "notes"):
        table.add_column(header, justify="right" if header not in ("table", "format", "notes") else "left")
    for n, t in enumerate(plan.tables, 1):
        counts = [f"{t.source_rows:,}", f"{t.target_rows:,}"]
        if compared:
            counts += [f"{t.new_rows or 0:,}", f"{t.differing_rows or 0:,}"]
        notes = f"references {', '.join(t.outside_parents)} (not copied)" if t.outside_parents else ""
        table.add_row(str(n), t.name, "binary" if t.binary else "text", *counts, notes)
    return table


def results_table(results: Sequence[TableResult]) -> Table:
    table = Table(title="verification (rows by primary key; checksums over the source's keys)", title_justify="left")
    headers = ("table", "source", "target before", "target after", "inserted", "kept (differs)", "missing")
    for header in (*headers, "checksum source", "checksum target", "MB/s", "status"):
        table.add_column(header, justify="left" if header in ("table", "status") else "right")
    for r in results:
        if not r.ok:
            problems = [f"{r.missing:,} missing"] * bool(r.missing) + [f"{r.corrupted:,} differ"] * bool(r.corrupted)
            problems += [f"{r.same_person:,} same doctor under another id"] * bool(r.same_person)
            status = Text("FAIL: " + ", ".join(problems), style="bold red")
        elif r.kept_differs:
            status = Text(f"ok, {r.kept_differs:,} kept (differs)", style="yellow")
        else:
            status = Text("ok", style="green")
        table.add_row(
            r.name,
            f"{r.source_rows:,}",
            f"{r.target_before:,}",
            f"{r.target_after:,}",
            f"{r.inserted:,}",
            f"{r.kept_differs:,}",
            f"{r.missing:,}",
            r.source_checksum[:8],
            r.target_checksum[:8],
            f"{r.bytes / r.seconds / 1e6:.1f}" if r.seconds > 0 else "-",
            status,
        )
    return table


# ------------------------------------------------------------
# Command
# ------------------------------------------------------------


def _connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10)
    conn.execute(STABLE_OUTPUT)
    return conn


def ask_on_terminal(question: str) -> bool:
    """Ask on a terminal; refuse when stdin is not one (a script must pass --yes)."""
    if not sys.stdin.isatty():
        raise CopyRefused("not copying without confirmation: stdin is not a terminal; pass --yes to copy")
    from rich.prompt import Confirm

    return Confirm.ask(question, default=False)


def _plan_and_copy(
    source_url: str,
    target_url: str,
    sides: tuple[DatabaseTarget, DatabaseTarget],
    *,
    tables: Sequence[str] | None,
    dry_run: bool,
    assume_yes: bool,
    jobs: int,
    confirm: Callable[[str], bool],
    out: Console,
    err: Console,
) -> tuple[Plan, list[TableResult] | None]:
    s_target, t_target = sides
    with _connect(source_url) as source, _connect(target_url) as target:
        refuse_same_database(source, target, s_target.describe())
        s_side, t_side = _read_side(source, s_target), _read_side(target, t_target)
        refuse_unsafe_pair(s_side, t_side)
        # One snapshot of the source for the plan, the rows and the checksums.
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        source.read_only = True
        with source.transaction(force_rollback=True):
            snapshot = source.execute("SELECT pg_catalog.pg_export_snapshot() AS id").fetchone()["id"]
            order = choose_tables(source, target, tables)
            # Row by row comparison up front only for a person deciding; the copy verifies anyway.
            compare = dry_run or not assume_yes
            plan = Plan(source=s_side, target=t_side, tables=tuple(plan_tables(source, target, order, compare=compare)))
            out.print(_side_line("from", s_side), highlight=False)
            out.print(_side_line("to  ", t_side), highlight=False)
            out.print(plan_table(plan))
            if dry_run:
                out.print("dry run: nothing was written")
                return plan, None
            total = sum(t.source_rows for t in plan.tables)
            question = f"Copy up to {total:,} rows in {len(plan.tables)} tables into {t_target.describe()}?"
            if not assume_yes and not confirm(question):
                raise CopyRefused("copy cancelled; nothing was written")
            try:
                return plan, copy_all(source_url, target_url, snapshot, plan.tables, jobs=jobs, err=err)
            except CopyFailed as exc:
                if exc.results:
                    out.print(results_table(exc.results))
                raise


def run_copy(
    source_url: str,
    target_url: str,
    *,
    tables: Sequence[str] | None = None,
    dry_run: bool = False,
    assume_yes: bool = False,
    jobs: int = PARALLEL_TABLES,
    confirm: Callable[[str], bool] = ask_on_terminal,
    out: Console | None = None,
    err: Console | None = None,
) -> CopyReport:
    """Check, plan, copy and verify; the report's `ok` says whether every table verified.

    Raises CopyRefused before writing anything, CopyFailed when a table's copy
    failed (other tables may be committed), CopyError when the plan could not
    be read, psycopg.OperationalError when a database cannot be reached.
    """
    out = out or Console(width=None if sys.stdout.isatty() else 200)
    err = err or Console(stderr=True)
    sides = parse_side(source_url, "source"), parse_side(target_url, "target")
    if (sides[0].host, sides[0].port, sides[0].dbname) == (sides[1].host, sides[1].port, sides[1].dbname):
        raise CopyRefused(f"source and target are the same database ({sides[0].describe()}); nothing to copy")
    try:
        plan, results = _plan_and_copy(
            source_url,
            target_url,
            sides,
            tables=tables,
            dry_run=dry_run,
            assume_yes=assume_yes,
            jobs=jobs,
            confirm=confirm,
            out=out,
            err=err,
        )
    except psycopg.OperationalError:
        raise
    except psycopg.Error as exc:
        raise CopyError(f"stopped before copying anything: {_message(exc)}") from None
    if results is None:
        return CopyReport(plan=plan)
    out.print(results_table(results))
    failed = [r.name for r in results if not r.ok]
    if failed:
        out.print(
            f"verification FAILED for {', '.join(failed)}: source keys are missing from the target (a row with "
            "another key already holds one of their unique values) or copied rows differ",
            style="bold red",
        )
        doubles = sum(r.same_person for r in results)
        if doubles:
            out.print(
                f"{doubles:,} doctors were left out: the target already has each under another id (another form "
                "of the number, Brazil's 12/13 digits, or the same LID); run `julia doctors merge` on the source "
                "or copy them by hand",
                style="bold red",
            )
    else:
        kept = sum(r.kept_differs for r in results)
        note = f"; {kept:,} rows the target already had with other content were kept" if kept else ""
        out.print(f"verified: every source key of {len(results)} tables is in the target{note}", style="green")
    return CopyReport(plan=plan, results=tuple(results))
