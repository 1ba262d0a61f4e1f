"""Loading reference and content data from a directory (`julia db import DIR`).

A directory holds any of the known files below, each either CSV (a header row,
`,` or `;` separated, UTF-8) or a JSON list of objects. They are loaded in
dependency order, each file in one transaction, one SQL function call per row
(`db/importer.sql`), which resolves names and aliases to ids and upserts. A bad
row aborts its file (earlier files stay loaded) with an ImportFailed naming the
file, the line and the database's reason. `db/demo/` is the example directory
`julia dev` loads.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from app.core.errors import JuliaError
from app.core.phones import e164_digits
from app.store.queries import queries
from app.store.schema import DB_DIR

logger = logging.getLogger(__name__)

DEMO_DIR = DB_DIR / "demo"


class ImportFailed(JuliaError):
    """The data could not be imported."""


@dataclass(frozen=True, kw_only=True)
class Source:
    """One kind of file: `<name>.csv` or `<name>.json`, loaded by a named query."""

    name: str
    query: str
    table: str | None = None
    # Columns holding a typed phone, written as E.164 digits before the row goes to SQL.
    phones: tuple[str, ...] = ()


# Dependency order: a row may only name things loaded by an earlier file.
SOURCES = (
    Source(name="especialidades", query="import_especialidade"),
    Source(name="hospitais", query="import_hospital"),
    Source(name="setores", query="import_lookup", table="setores"),
    Source(name="periodos", query="import_periodo"),
    Source(name="tipos_vaga", query="import_lookup", table="tipos_vaga"),
    Source(name="formas_recebimento", query="import_lookup", table="formas_recebimento"),
    Source(name="medicos", query="import_medico", phones=("telefone",)),
    Source(name="vagas", query="import_vaga", phones=("reservada_por",)),
    Source(name="conhecimento", query="import_conhecimento"),
    Source(name="diretrizes", query="import_diretriz"),
    Source(name="prompts", query="import_prompt"),
)
SUFFIXES = (".csv", ".json")


@dataclass(frozen=True, kw_only=True)
class FileReport:
    """What importing one file did."""

    file: str
    inserted: int = 0
    updated: int = 0
    skipped: int = 0

    @property
    def rows(self) -> int:
        return self.inserted + self.updated + self.skipped


def load_directory(conn: psycopg.Connection, path: str | Path, *, dry_run: bool = False) -> list[FileReport]:
    """Import every known file in `path`; with `dry_run`, check it all and write nothing.

    Raises ImportFailed when the directory has no known file or a row is bad;
    files before the bad one stay imported (unless `dry_run`).
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ImportFailed(f"{directory} is not a directory")
    found = _known_files(directory)
    if not found:
        known = ", ".join(f"{s.name}.csv|json" for s in SOURCES)
        raise ImportFailed(f"{directory} has none of the files the importer knows: {known}")
    reports = []
    # A dry run is one transaction rolled back at the end, so later files can
    # still see what earlier ones would add; each file is then a savepoint.
    with conn.transaction(force_rollback=True) if dry_run else contextlib.nullcontext():
        for source, file in found:
            report = _load_file(conn, source, file)
            logger.info(
                "imported file",
                extra={
                    "action": "import_file",
                    "file": report.file,
                    "inserted": report.inserted,
                    "updated": report.updated,
                    "skipped": report.skipped,
                    "dry_run": dry_run,
                },
            )
            reports.append(report)
    return reports


def import_directory(conn: psycopg.Connection, path: str | Path) -> dict[str, int]:
    """Import every known file in `path`; returns rows processed per file name.

    Raises ImportFailed as `load_directory` does.
    """
    return {report.file: report.rows for report in load_directory(conn, path)}


def _known_files(directory: Path) -> list[tuple[Source, Path]]:
    found = []
    for source in SOURCES:
        files = [directory / f"{source.name}{suffix}" for suffix in SUFFIXES]
        present = [file for file in files if file.is_file()]
        if len(present) > 1:
            raise ImportFailed(f"{directory} has both {present[0].name} and {present[1].name}; keep one")
        found.extend((source, file) for file in present)
    known = {file.name for _, file in found}
    for file in sorted(directory.iterdir()):
        if file.suffix in SUFFIXES and file.name not in known:
            logger.warning(
                "unknown file name, not imported", extra={"action": "import_unknown_file", "file": file.name}
            )
    return found


def _load_file(conn: psycopg.Connection, source: Source, file: Path) -> FileReport:
    counts: Counter[str] = Counter()
    cur = conn.cursor(row_factory=tuple_row)
    with conn.transaction():
        for line, row in _read_rows(file):
            row = _with_e164_phones(row, source.phones)
            try:
                found = cur.execute(queries[source.query], {"row": Jsonb(row), "table": source.table}).fetchone()
            except psycopg.OperationalError:
                raise
            except psycopg.DatabaseError as exc:
                reason = exc.diag.message_primary or str(exc)
                raise ImportFailed(f"{file.name} line {line}: {reason}") from exc
            counts[found[0] if found else "skipped"] += 1
    return FileReport(file=file.name, inserted=counts["inserted"], updated=counts["updated"], skipped=counts["skipped"])


def _with_e164_phones(row: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """The row with each typed phone as E.164 digits; what is not a phone is left for SQL to refuse."""
    out = dict(row)
    for column in columns:
        value = out.get(column)
        if isinstance(value, str) and (digits := e164_digits(value)):
            out[column] = digits
    return out


def _read_rows(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from a CSV or JSON file."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFailed(f"{file.name} is not UTF-8 text (save it as 'CSV UTF-8' or UTF-8 JSON)") from None
    if file.suffix == ".csv":
        return _csv_rows(file.name, text)
    return _json_rows(file.name, text)


def _csv_rows(name: str, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    header = text.partition("\n")[0]
    # Spreadsheets in pt-BR save CSV with ';' between cells.
    delimiter = ";" if header.count(";") > header.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if None in row:
                raise ImportFailed(f"{name} line {reader.line_num}: more cells than header columns")
            yield reader.line_num, row
    except csv.Error as exc:
        raise ImportFailed(f"{name} line {reader.line_num}: {exc}") from None


_BETWEEN_ITEMS = re.compile(r"[\s,]*")


def _json_rows(name: str, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{name} line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(items, list):
        raise ImportFailed(f"{name}: expected a JSON list of objects")
    for line, item in zip(_item_lines(text), items, strict=True):
        if not isinstance(item, dict):
            raise ImportFailed(f"{name} line {line}: expected a JSON object, got {type(item).__name__}")
        yield line, item


def _item_lines(text: str) -> Iterator[int]:
    """The line each element of a (valid) top-level JSON list starts on."""
    decoder = json.JSONDecoder()
    pos = _BETWEEN_ITEMS.match(text, text.index("[") + 1).end()
    line, counted = 1, 0
    while text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        yield line
        _, pos = decoder.raw_decode(text, pos)
        pos = _BETWEEN_ITEMS.match(text, pos).end()
