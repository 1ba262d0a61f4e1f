"""What the copy prints: both sides, the plan, the progress bars (on a
terminal only), the verification table and the closing verdict."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from app.ops.dbcopy.records import Plan, Side, TableResult


def side_line(role: str, side: Side) -> str:
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


def print_plan(out: Console, plan: Plan) -> None:
    """Both sides, then the plan table."""
    out.print(side_line("from", plan.source), highlight=False)
    out.print(side_line("to  ", plan.target), highlight=False)
    out.print(plan_table(plan))


def _status(r: TableResult) -> Text:
    if not r.ok:
        problems = [f"{r.missing:,} missing"] * bool(r.missing) + [f"{r.corrupted:,} differ"] * bool(r.corrupted)
        problems += [f"{r.same_person:,} same doctor under another id"] * bool(r.same_person)
        return Text("FAIL: " + ", ".join(problems), style="bold red")
    if r.kept_differs:
        return Text(f"ok, {r.kept_differs:,} kept (differs)", style="yellow")
    return Text("ok", style="green")


def results_table(results: Sequence[TableResult]) -> Table:
    table = Table(title="verification (rows by primary key; checksums over the source's keys)", title_justify="left")
    headers = ("table", "source", "target before", "target after", "inserted", "kept (differs)", "missing")
    for header in (*headers, "checksum source", "checksum target", "MB/s", "status"):
        table.add_column(header, justify="left" if header in ("table", "status") else "right")
    for r in results:
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
            _status(r),
        )
    return table


def print_outcome(out: Console, results: Sequence[TableResult]) -> None:
    """The verification table and the verdict: verified, or what failed and what to do."""
    out.print(results_table(results))
    failed = [r.name for r in results if not r.ok]
    if not failed:
        kept = sum(r.kept_differs for r in results)
        note = f"; {kept:,} rows the target already had with other content were kept" if kept else ""
        out.print(f"verified: every source key of {len(results)} tables is in the target{note}", style="green")
        return
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


class _Throughput(ProgressColumn):
    """MB/s of the bytes streamed so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0
        size = task.fields.get("bytes", 0)
        rate = size / elapsed / 1e6 if elapsed > 0 else 0.0
        return Text(f"{size / 1e6:.1f} MB · {rate:.1f} MB/s", style="progress.data.speed")


def progress_bars(err: Console) -> Progress:
    """One bar per table (rows, MB/s) — only on a terminal; logs and CI get the verification table."""
    columns = (
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        _Throughput(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=err, disable=not err.is_terminal)
