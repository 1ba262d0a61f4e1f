"""What a DATABASE_URL points at, parsed by libpq's own rules.

A transaction pooler (Supabase's port 6543, PgBouncer in transaction mode)
cannot hold LISTEN, session advisory locks or prepared statements across
transactions: the worker and scheduler need a direct or session-pooler URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.conninfo import conninfo_to_dict

TRANSACTION_POOLER_PORT = 6543


@dataclass(frozen=True, kw_only=True)
class DatabaseTarget:
    host: str
    port: int
    dbname: str
    user: str
    sslmode: str

    @property
    def is_transaction_pooler(self) -> bool:
        return self.port == TRANSACTION_POOLER_PORT

    def describe(self) -> str:
        """host:port/dbname as user, never the password."""
        return f"{self.host or 'local socket'}:{self.port}/{self.dbname} as {self.user or 'default user'}"


def parse_database_url(url: str) -> DatabaseTarget:
    """Parse a libpq URI or key=value DSN (URL-encoded passwords work); raises ValueError."""
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:
        raise ValueError("DATABASE_URL is not a valid PostgreSQL connection string") from exc
    port = str(params.get("port") or "5432").split(",")[0]
    return DatabaseTarget(
        host=str(params.get("host") or params.get("hostaddr") or ""),
        port=int(port) if port.isdecimal() else 5432,
        dbname=str(params.get("dbname") or ""),
        user=str(params.get("user") or ""),
        sslmode=str(params.get("sslmode") or "prefer"),
    )


def pooler_problem(url: str, role: str) -> str | None:
    """A message when `role` cannot run on this URL, else None."""
    target = parse_database_url(url)
    if role in ("worker", "scheduler") and target.is_transaction_pooler:
        return (
            f"DATABASE_URL points at a transaction pooler ({target.describe()}); the {role} needs "
            "LISTEN/NOTIFY and session locks. Use the direct URL (db.<project>.supabase.co:5432) "
            "or the session pooler (port 5432)."
        )
    return None
