"""`julia db copy`: copy reference and content tables between two Julia
databases (DEV → PROD), fast, safe to re-run, and verified.

Rows stream from the source with COPY (binary when every column type allows
it) into a staging table on the target, then `INSERT ... SELECT ... ON
CONFLICT DO NOTHING` adds what is missing: nothing already in the target is
overwritten. A table the target has no rows of (checked again under a lock
that keeps writers out, and only when the session owns it) takes its rows
straight from the COPY instead, its GIN and HNSW indexes dropped and built
again after the rows from their own `pg_get_indexdef`, so the catalog ends as
the revisions made it; a failure rolls that back too. One transaction per table, a table only after its parents
(foreign keys read from pg_constraint), two tables at a time, identity
sequences advanced past the copied ids. Every source connection reads the same
exported REPEATABLE READ snapshot, so counts, rows and checksums agree. After
each table, row hashes of both sides are compared key by key.

Before anything is written the copy is refused (CopyRefused) when a URL is a
transaction pooler, when source and target are the same database, when their
alembic revisions differ, when an environment marker is missing, or when
production data would go to a database that is not production.

The modules, by role: `catalog` (the fixed catalog reads of `catalog.sql`
and the connection setup), `records` (errors and dataclasses), `checks` (the
refusals), `plan` (table order and per-table plan), `transfer` (the data
movement and its threads), `checksums` (verification), `report` (terminal
output) and `command` (`run_copy`, which ties them together).
"""

from __future__ import annotations

from app.ops.dbcopy.checks import parse_side, refuse_same_database, refuse_unsafe_pair
from app.ops.dbcopy.checksums import checksum, row_hashes, verify
from app.ops.dbcopy.command import ask_on_terminal, run_copy
from app.ops.dbcopy.plan import DEFAULT_TABLES, NEVER_COPIED, choose_tables, fk_order, plan_tables
from app.ops.dbcopy.records import (
    CopyError,
    CopyFailed,
    CopyRefused,
    CopyReport,
    Plan,
    Side,
    TablePlan,
    TableResult,
)
from app.ops.dbcopy.report import plan_table, results_table
from app.ops.dbcopy.transfer import PARALLEL_TABLES, copy_all, copy_table, critical_path

__all__ = [
    "DEFAULT_TABLES",
    "NEVER_COPIED",
    "PARALLEL_TABLES",
    "CopyError",
    "CopyFailed",
    "CopyRefused",
    "CopyReport",
    "Plan",
    "Side",
    "TablePlan",
    "TableResult",
    "ask_on_terminal",
    "checksum",
    "choose_tables",
    "copy_all",
    "copy_table",
    "critical_path",
    "fk_order",
    "parse_side",
    "plan_table",
    "plan_tables",
    "refuse_same_database",
    "refuse_unsafe_pair",
    "results_table",
    "row_hashes",
    "run_copy",
    "verify",
]
