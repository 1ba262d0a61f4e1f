"""The Supabase linter's security checks, run by `public.lint_schema()` (db/lint.sql).

`julia db lint` prints the findings as a table and fails when any is at or
above the chosen level, so CI can refuse a migration that exposes a table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg.rows import tuple_row

from app.store.queries import queries

Level = Literal["ERROR", "WARN", "INFO"]

# Higher is more severe; `--fail-on warn` fails on WARN and ERROR.
SEVERITY: dict[str, int] = {"INFO": 0, "WARN": 1, "ERROR": 2}

COLUMNS = ("LEVEL", "CODE", "NAME", "OBJECT")


@dataclass(frozen=True, kw_only=True)
class Finding:
    level: Level
    code: str
    name: str
    object: str
    detail: str


def run_lint(conn: psycopg.Connection) -> list[Finding]:
    """Every finding in the connected database, most severe first.

    Raises psycopg.errors.UndefinedFunction when migration 0003 is missing.
    """
    rows = conn.cursor(row_factory=tuple_row).execute(queries["lint_schema"]).fetchall()
    return [
        Finding(level=level, code=code, name=name, object=obj, detail=detail) for level, code, name, obj, detail in rows
    ]


def at_or_above(findings: Iterable[Finding], level: str) -> list[Finding]:
    """The findings at least as severe as `level` (ERROR, WARN or INFO, any case)."""
    threshold = SEVERITY[level.upper()]
    return [f for f in findings if SEVERITY[f.level] >= threshold]


def summary(findings: Sequence[Finding]) -> str:
    """`N errors, N warnings, N info`."""
    counts = Counter(f.level for f in findings)
    return f"{counts['ERROR']} errors, {counts['WARN']} warnings, {counts['INFO']} info"


def format_findings(findings: Sequence[Finding]) -> str:
    """A plain-text table (LEVEL CODE NAME OBJECT) followed by the summary line."""
    if not findings:
        return f"no findings\n{summary(findings)}"
    rows = [COLUMNS, *((f.level, f.code, f.name, f.object) for f in findings)]
    # The last column is not padded, so lines carry no trailing spaces.
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(row[i].ljust(w) for i, w in enumerate(widths)), row[-1]]) for row in rows]
    return "\n".join([*lines, summary(findings)])
