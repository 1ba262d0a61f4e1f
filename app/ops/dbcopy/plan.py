"""The plan: which tables, in which order (parents before children, from
pg_constraint), and per table its columns, key, sequences, COPY format and
row counts — all read from the catalogs of both databases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from app.ops.dbcopy.catalog import SCHEMA, catalog_queries, read_catalog
from app.ops.dbcopy.checksums import row_hashes
from app.ops.dbcopy.records import CopyRefused, TablePlan

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


# ------------------------------------------------------------
# Table order
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


def choose_tables(source: psycopg.Connection, target: psycopg.Connection, requested: Sequence[str] | None) -> list[str]:
    """The requested tables (or the default list) that exist in both databases, in foreign-key order."""
    names = [n.removeprefix(f"{SCHEMA}.") for n in (requested or DEFAULT_TABLES)]
    for name in names:
        if name in NEVER_COPIED:
            raise CopyRefused(f"{name} is never copied: {NEVER_COPIED[name]}")
    names = list(dict.fromkeys(names))
    in_source = {r["relname"] for r in read_catalog(source, "tables_present", names)}
    in_target = {r["relname"] for r in read_catalog(target, "tables_present", names)}
    if requested:
        absent = [n for n in names if n not in in_source or n not in in_target]
        if absent:
            raise CopyRefused(f"no such table in both databases ({SCHEMA} schema): {', '.join(absent)}")
    present = [n for n in names if n in in_source and n in in_target]
    if not present:
        raise CopyRefused("none of the tables to copy exists in both databases")
    foreign_keys = read_catalog(source, "foreign_keys", present)
    edges = [(r["child"], r["parent"]) for r in foreign_keys if r["parent_schema"] == SCHEMA]
    return fk_order(present, edges)


# ------------------------------------------------------------
# Per-table plan
# ------------------------------------------------------------


def count_rows(conn: psycopg.Connection, table: str) -> int:
    query = sql.SQL("SELECT count(*) FROM {table}").format(table=sql.Identifier(SCHEMA, table))
    return conn.cursor(row_factory=tuple_row).execute(query).fetchone()[0]


def table_bytes(conn: psycopg.Connection, table: str) -> int:
    """Size of the table with its indexes and TOAST: how long its copy will take, roughly."""
    return conn.execute(catalog_queries["table_bytes"], {"relation": f"{SCHEMA}.{table}"}).fetchone()["bytes"] or 0


def _columns_by_table(conn: psycopg.Connection, tables: Sequence[str]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {t: [] for t in tables}
    for row in read_catalog(conn, "columns", tables):
        found[row["table_name"]].append(row)
    return found


def _parents(source: psycopg.Connection, tables: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per table, its parents among `tables`, and those outside them (shown as not copied)."""
    inside: dict[str, list[str]] = {t: [] for t in tables}
    outside: dict[str, list[str]] = {t: [] for t in tables}
    for r in read_catalog(source, "foreign_keys", tables):
        if r["parent_schema"] == SCHEMA and r["parent"] in tables:
            if r["parent"] != r["child"]:
                inside[r["child"]].append(r["parent"])
        else:
            parent = r["parent"] if r["parent_schema"] == SCHEMA else f"{r['parent_schema']}.{r['parent']}"
            outside[r["child"]].append(parent)
    return inside, outside


def _binary_ok(source_col: dict, target_col: dict) -> bool:
    # Binary arrays carry their element type's oid, and records their columns':
    # those only load where the oids agree; plain values carry none.
    if not (source_col["binary_io"] and target_col["binary_io"]) or source_col["type_kind"] == "c":
        return False
    return source_col["element_oid"] == target_col["element_oid"]


def _same_columns(name: str, source_cols: list[dict], target_cols: list[dict]) -> dict[str, dict]:
    """The source's columns by name; raises CopyRefused unless both sides have the same columns."""
    by_name = {c["name"]: c for c in source_cols}
    differ = [
        c["name"]
        for c in target_cols
        if c["name"] not in by_name
        or by_name[c["name"]]["type_name"] != c["type_name"]
        or bool(by_name[c["name"]]["generated"]) != bool(c["generated"])
    ]
    if differ or len(source_cols) != len(target_cols):
        shown = ", ".join(differ) or "column count"
        raise CopyRefused(f"{name}: columns differ between source and target ({shown})")
    return by_name


def _compare_rows(
    source: psycopg.Connection, target: psycopg.Connection, name: str, key: Sequence[str], columns: Sequence[str]
) -> dict[str, int]:
    s_hashes, t_hashes = row_hashes(source, name, key, columns), row_hashes(target, name, key, columns)
    return {
        "new_rows": sum(1 for k in s_hashes if k not in t_hashes),
        "differing_rows": sum(1 for k, h in s_hashes.items() if k in t_hashes and t_hashes[k] != h),
    }


def plan_tables(
    source: psycopg.Connection, target: psycopg.Connection, tables: Sequence[str], *, compare: bool = False
) -> list[TablePlan]:
    """Columns, keys, sequences, format and row counts per table; `compare` also counts new and differing rows."""
    s_cols, t_cols = _columns_by_table(source, tables), _columns_by_table(target, tables)
    keys = {r["table_name"]: tuple(r["columns"]) for r in read_catalog(target, "primary_keys", tables)}
    inside, outside = _parents(source, tables)
    plans = []
    for name in tables:
        source_by_name = _same_columns(name, s_cols[name], t_cols[name])
        if name not in keys:
            raise CopyRefused(f"{name} has no primary key, so its copy cannot be verified row by row")
        copied = [c for c in t_cols[name] if not c["generated"]]
        columns = tuple(c["name"] for c in copied)
        compared = _compare_rows(source, target, name, keys[name], columns) if compare else {}
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
