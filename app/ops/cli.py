"""`julia` command line: run the processes, migrate, operate.

The `db` and `doctors` groups are in `db_commands`, `campaigns`, `limits` and
`numbers` in their own modules; what every command checks first is in
`preflight`.

julia dev                 everything on an embedded Postgres, with stand-ins
julia api | worker        one process each (production shape)
julia run                 the container entrypoint: RUN_MODE=api|worker|scheduler
julia db upgrade|current|bootstrap|lint|import|copy
julia doctors merge --dry-run|--yes   fold rows that are one doctor (12/13-digit forms)
julia pause|resume --reason R, julia status
julia limits show|set     the send policy every worker enforces (in the database)
julia numbers list|add|set|pause|resume   the WhatsApp numbers Julia sends from
julia token --subject NAME [--minutes N]   an operator JWT for the ops API
julia kb reindex          embed knowledge chunks that are new, changed or of another model
julia trace MESSAGE_ID [--json]   the path of one message, with times (app/ops/trace.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime

import psycopg

from app.core.config import SAO_PAULO, Settings, load_settings
from app.core.errors import JuliaError
from app.ops import campaigns as campaign_cli
from app.ops import db_commands
from app.ops import numbers as numbers_cli
from app.ops import trace as trace_cli
from app.ops.preflight import (
    CommandError,
    command_settings,
    connect,
    require_direct_connection,
    require_schema,
)
from app.store.queries import queries

logger = logging.getLogger(__name__)

RUN_MODES = ("api", "worker", "scheduler")


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from app.http.app import create_app
    from app.http.protocol import CorkedHttpToolsProtocol

    settings = command_settings("api")
    require_schema(settings)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port or settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        http=CorkedHttpToolsProtocol,  # httptools, one write per answer
    )


def cmd_worker(args: argparse.Namespace, *, scheduler: bool = False) -> None:
    from app.store.errors import PermanentDatabaseError
    from app.worker.process import PERIODIC_QUEUES, run_worker, wait_for_database_at_start

    role = "scheduler" if scheduler else "worker"
    settings = command_settings(role)
    require_direct_connection(settings, role)
    try:
        if not asyncio.run(wait_for_database_at_start(settings.database_url)):
            return  # stopped while waiting
    except PermanentDatabaseError as exc:
        raise CommandError(f"{role} cannot start: the database refuses it: {exc}") from None
    require_schema(settings)
    try:
        if scheduler:
            asyncio.run(run_worker(settings, consume_inbound=False, queues=PERIODIC_QUEUES))
        else:
            asyncio.run(run_worker(settings))
    except PermanentDatabaseError as exc:
        # Exit non-zero, so an ON_FAILURE restart policy restarts it and operators see it.
        raise CommandError(f"{role} stopped: the database refuses it: {exc}") from None


def cmd_run(args: argparse.Namespace) -> None:
    mode = os.environ.get("RUN_MODE", "").strip()
    if mode not in RUN_MODES:
        shown = repr(mode) if mode else "not set"
        raise CommandError(f"RUN_MODE is {shown}; valid values: {', '.join(RUN_MODES)}")
    if mode == "api":
        cmd_api(argparse.Namespace(host="0.0.0.0", port=None))
    else:
        cmd_worker(args, scheduler=mode == "scheduler")


def cmd_dev(args: argparse.Namespace) -> None:
    from app.devkit.dev import run_dev

    run_dev(port=args.port, data_dir=args.data_dir, reset=args.reset)


def _state(conn: psycopg.Connection) -> dict:
    row = conn.execute(queries["julia_state"]).fetchone()
    return {**row, "since": row["since"].isoformat() if row["since"] else None}


def _print_state(state: dict) -> None:
    """JSON for scripts; one pt-BR line (São Paulo time) for a person at a terminal."""
    if not sys.stdout.isatty():
        print(json.dumps(state, ensure_ascii=False))
        return
    since = datetime.fromisoformat(state["since"]).astimezone(SAO_PAULO) if state["since"] else None
    when = since.strftime(" desde %d/%m às %H:%M (São Paulo)") if since else ""
    word = "ativa" if state["status"] == "ativo" else "PAUSADA"
    print(f"Julia está {word}{when} — motivo: {state['motivo'] or '-'}, via {state['alterado_via'] or '-'}")


def cmd_pause(args: argparse.Namespace, *, resume: bool = False) -> None:
    settings = command_settings("cli")
    with connect(settings) as conn:
        query = queries["resume_julia" if resume else "pause_julia"]
        changed = conn.execute(query, {"motivo": args.reason, "via": "manual"}).fetchone()["id"] is not None
        state = _state(conn)
    if not changed:
        # The first reason and "since" stand; say so instead of pretending to change them.
        already = "active" if resume else "paused"
        print(
            f"julia: already {already} since {state['since']} (motivo: {state['motivo']}); nothing changed",
            file=sys.stderr,
        )
    _print_state(state)


def cmd_status(args: argparse.Namespace) -> None:
    settings = command_settings("cli")
    with connect(settings) as conn:
        _print_state(_state(conn))


def cmd_token(args: argparse.Namespace) -> None:
    from app.core.tokens import mint_ops_token
    from app.devkit.dev import dev_jwt_secret

    # Minting needs only JWT_SECRET_KEY, not the database ("dev" requires nothing);
    # beside `julia dev` it is the secret julia dev keeps in .julia/.
    secret = load_settings("dev").jwt_secret_key or dev_jwt_secret()
    if not secret:
        raise CommandError("JWT_SECRET_KEY is not set; the ops API needs it to verify tokens")
    if not 1 <= args.minutes <= 60 * 24 * 30:
        raise CommandError(f"--minutes must be from 1 to 43200 (30 days), got {args.minutes}")
    print(mint_ops_token(secret, args.subject, args.minutes))


async def _kb_reindex(settings: Settings, batch_size: int) -> str:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from app.conversation.embeddings import build_embedder
    from app.conversation.knowledge import reindex

    embedder = build_embedder(settings)
    columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("embedding", total=None)
                result = await reindex(
                    conn,
                    embedder,
                    batch_size=batch_size,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
    finally:
        await embedder.aclose()
    return f"embedded {result.embedded} chunks with {result.model}"


def cmd_kb_reindex(args: argparse.Namespace) -> None:
    from app.conversation.knowledge import KnowledgeError
    from app.integrations.voyage import VoyageError

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be positive, got {args.batch_size}")
    settings = command_settings("cli")
    try:
        print(asyncio.run(_kb_reindex(settings, args.batch_size)))
    except (VoyageError, KnowledgeError) as exc:
        raise CommandError(str(exc)) from None


def _add_process_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev", help="run everything locally on an embedded Postgres, with stand-ins")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument("--data-dir", default=".julia", help="where the embedded database lives (default .julia/)")
    p.add_argument("--reset", action="store_true", help="start from an empty dev database (drops .julia/pgdata)")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("api", help="run the HTTP api (webhooks, health)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("worker", help="run the worker (inbound queue, replies, sends, periodic jobs)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("run", help="container entrypoint: run what RUN_MODE says (api|worker|scheduler)")
    p.set_defaults(func=cmd_run)


def _add_state_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pause", help="pause Julia (nothing is sent; inbound is still stored)")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_pause)
    p = sub.add_parser("resume", help="resume Julia and answer what arrived meanwhile")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=lambda a: cmd_pause(a, resume=True))
    p = sub.add_parser("status", help="show whether Julia is active or paused")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("token", help="print an operator JWT for the ops API (/ops/*)")
    p.add_argument("--subject", required=True, help="who the token is for (logged with each ops call)")
    p.add_argument("--minutes", type=int, default=60, help="validity in minutes (default 60)")
    p.set_defaults(func=cmd_token)


def _add_kb_commands(sub: argparse._SubParsersAction) -> None:
    kb = sub.add_parser("kb", help="knowledge base: embeddings").add_subparsers(
        dest="kb_command", required=True, metavar="KB_COMMAND"
    )
    p = kb.add_parser("reindex", help="embed chunks that are new, changed or of another model")
    p.add_argument("--batch-size", type=int, default=64, help="chunks per embedding call (default 64)")
    p.set_defaults(func=cmd_kb_reindex)


def build_parser() -> argparse.ArgumentParser:
    """The `julia` parser, with the command groups in the order `julia --help` lists them."""
    parser = argparse.ArgumentParser(prog="julia", description="Julia, the WhatsApp recruiter agent.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_process_commands(sub)
    db_commands.register(sub)
    _add_state_commands(sub)
    campaign_cli.register(sub)
    numbers_cli.register(sub)
    trace_cli.register(sub)
    _add_kb_commands(sub)
    return parser


# Commands that never use the dev database on their own: dev makes it, token needs none,
# and the servers must be pointed at a database deliberately. A subcommand that is given
# its databases (`db copy --from --to`) says so with `names_databases`.
NO_DEV_DATABASE = {"dev", "token", *RUN_MODES, "run"}


def _use_dev_database(args: argparse.Namespace) -> None:
    """With DATABASE_URL unset, a command beside `julia dev` uses its database (and says so)."""
    if args.command in NO_DEV_DATABASE or getattr(args, "names_databases", False) or os.environ.get("DATABASE_URL"):
        return
    from app.devkit.dev import dev_database_url

    if url := dev_database_url():
        os.environ["DATABASE_URL"] = url
        print("julia: using the julia dev database in .julia/ (DATABASE_URL is not set)", file=sys.stderr)


def _fail(message: str) -> None:
    print(f"julia: error: {message}", file=sys.stderr)
    raise SystemExit(1) from None


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        _use_dev_database(args)
        args.func(args)
    except JuliaError as exc:
        _fail(str(exc))
    except psycopg.OperationalError as exc:
        # libpq messages name host and user, never the password.
        _fail(f"cannot reach the database: {str(exc).strip().splitlines()[0]}")
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction):
        _fail("this database has no Julia schema, or an older one: run `julia db upgrade` first")
    except psycopg.ProgrammingError as exc:
        if exc.sqlstate is not None:
            raise
        # libpq could not parse DATABASE_URL; its message may quote the URL, so it is not shown.
        _fail("DATABASE_URL is not a PostgreSQL URL (postgresql://user:password@host:5432/database)")
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
