"""The copy's fixed catalog reads (named in `catalog.sql`) and the session
every copy connection uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from app.store.queries import parse_queries

SCHEMA = "public"

catalog_queries = parse_queries((Path(__file__).parent / "catalog.sql").read_text(encoding="utf-8"))


def connect(url: str) -> psycopg.Connection:
    """An autocommit connection (dict rows) that renders values as the other side does."""
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=10)
    conn.execute(catalog_queries["stable_output"])
    return conn


def read_catalog(conn: psycopg.Connection, name: str, tables: Sequence[str]) -> list[dict]:
    """Rows of the named catalog query for `tables` of SCHEMA."""
    return conn.execute(catalog_queries[name], {"schema": SCHEMA, "tables": list(tables)}).fetchall()


def error_message(exc: psycopg.Error) -> str:
    """The server's primary message, or the first line of the driver's."""
    return exc.diag.message_primary or str(exc).strip().splitlines()[0]
