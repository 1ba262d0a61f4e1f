"""`run_copy`: check both sides, plan in one exported snapshot, ask, copy and
verify, printing as it goes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import psycopg
from rich.console import Console

from app.ops.dbcopy.catalog import catalog_queries, connect, error_message
from app.ops.dbcopy.checks import parse_side, read_side, refuse_same_address, refuse_same_database, refuse_unsafe_pair
from app.ops.dbcopy.plan import choose_tables, plan_tables
from app.ops.dbcopy.records import CopyError, CopyFailed, CopyRefused, CopyReport, Plan, TableResult
from app.ops.dbcopy.report import print_outcome, print_plan, results_table
from app.ops.dbcopy.transfer import PARALLEL_TABLES, copy_all
from app.store.dburl import DatabaseTarget


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
    with connect(source_url) as source, connect(target_url) as target:
        refuse_same_database(source, target, s_target.describe())
        s_side, t_side = read_side(source, s_target), read_side(target, t_target)
        refuse_unsafe_pair(s_side, t_side)
        # One snapshot of the source for the plan, the rows and the checksums.
        source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        source.read_only = True
        with source.transaction(force_rollback=True):
            snapshot = source.execute(catalog_queries["export_snapshot"]).fetchone()["id"]
            order = choose_tables(source, target, tables)
            # Row by row comparison up front only for a person deciding; the copy verifies anyway.
            compare = dry_run or not assume_yes
            plan = Plan(source=s_side, target=t_side, tables=tuple(plan_tables(source, target, order, compare=compare)))
            print_plan(out, plan)
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
    refuse_same_address(*sides)
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
        raise CopyError(f"stopped before copying anything: {error_message(exc)}") from None
    if results is None:
        return CopyReport(plan=plan)
    print_outcome(out, results)
    return CopyReport(plan=plan, results=tuple(results))
