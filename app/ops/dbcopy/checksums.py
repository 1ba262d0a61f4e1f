"""Verification: row hashes computed by each server, checksums over them, and
the key-by-key comparison of a table's rows before and after its copy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from app.ops.dbcopy.catalog import SCHEMA
from app.ops.dbcopy.records import TableResult


def row_hashes(conn: psycopg.Connection, table: str, key: Sequence[str], columns: Sequence[str]) -> dict[str, str]:
    """key text → md5 of the row's copied columns as text, computed by the server."""
    query = sql.SQL("SELECT ROW({key})::text, md5(ROW({cols})::text) FROM {table}").format(
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(SCHEMA, table),
    )
    return dict(conn.cursor(row_factory=tuple_row).execute(query))


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
