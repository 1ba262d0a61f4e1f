"""The copy's errors and records: the two sides, the plan per table and what
each table's copy verified."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.core.errors import JuliaError
from app.store.dburl import DatabaseTarget


class CopyError(JuliaError):
    """The copy could not be done."""


class CopyRefused(CopyError):
    """The copy was refused before anything was written."""


class CopyFailed(CopyError):
    """A table could not be copied; its transaction was rolled back."""

    def __init__(self, message: str, results: Sequence[TableResult] = ()) -> None:
        super().__init__(message)
        self.results = tuple(results)


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
