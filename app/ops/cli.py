"""`julia` command line: run the processes, migrate, operate.

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
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.core.config import Role, Settings, load_settings
from app.core.errors import Conflict, InvalidInput, JuliaError, NotFound
from app.core.logs import setup_logging
from app.ops import campaigns as campaign_cli
from app.ops import numbers as numbers_cli
from app.store import schema
from app.store.dburl import pooler_problem
from app.store.errors import wrap_db_errors
from app.store.queries import queries

logger = logging.getLogger(__name__)

RUN_MODES = ("api", "worker", "scheduler")


class CommandError(JuliaError):
    """A command failed with a message for the operator."""


def _settings(role: Role) -> Settings:
    settings = load_settings(role)
    setup_logging(settings.log_level)
    return settings


def _connect(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row, connect_timeout=10)


def _require_direct_connection(settings: Settings, role: str) -> None:
    try:
        problem = pooler_problem(settings.database_url, role)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if problem:
        raise CommandError(f"refusing to start: {problem}")


def _require_schema(settings: Settings) -> None:
    try:
        status = schema.require_current_schema(settings.database_url)
    except schema.SchemaBehind as exc:
        raise CommandError(f"refusing to start: {exc}") from None
    if status.ahead:
        logger.warning(
            f"{status.detail}; starting anyway",
            extra={"action": "schema_ahead", "revision": status.current, "expected": status.expected},
        )
    else:
        logger.info("schema is current", extra={"action": "schema_ok", "revision": status.current})


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from app.http.app import create_app

    settings = _settings("api")
    _require_schema(settings)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port or settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


def cmd_worker(args: argparse.Namespace, *, scheduler: bool = False) -> None:
    from app.store.errors import PermanentDatabaseError
    from app.worker.process import PERIODIC_QUEUES, run_worker, wait_for_database_at_start

    role = "scheduler" if scheduler else "worker"
    settings = _settings(role)
    _require_direct_connection(settings, role)
    try:
        if not asyncio.run(wait_for_database_at_start(settings.database_url)):
            return  # stopped while waiting
    except PermanentDatabaseError as exc:
        raise CommandError(f"{role} cannot start: the database refuses it: {exc}") from None
    _require_schema(settings)
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


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    settings = _settings("cli")
    schema.upgrade(settings.database_url, args.revision, allow_older=args.allow_older)
    with _connect(settings) as conn:
        print(json.dumps(schema.schema_status(conn).as_json()))


def cmd_db_current(args: argparse.Namespace) -> None:
    settings = _settings("cli")
    with _connect(settings) as conn:
        status = schema.schema_status(conn)
    print(json.dumps(status.as_json()))
    if not status.ok:
        raise SystemExit(1)


def cmd_db_bootstrap(args: argparse.Namespace) -> None:
    settings = _settings("cli")
    with _connect(settings) as conn:
        try:
            with wrap_db_errors():
                rows = conn.execute(
                    queries["bootstrap_database"],
                    {
                        "app_env": settings.app_env,
                        "project_ref": settings.supabase_project_ref,
                        "force": args.force,
                        "policy": Jsonb(settings.send_policy()),
                        "instance": settings.evolution_instance or None,
                    },
                ).fetchall()
        except (InvalidInput, NotFound, Conflict) as exc:
            raise CommandError(str(exc)) from None
    for row in rows:
        print(f"{row['item']}: {row['action']}")


def cmd_db_lint(args: argparse.Namespace) -> None:
    from app.ops import lint

    settings = _settings("cli")
    with _connect(settings) as conn:
        try:
            findings = lint.run_lint(conn)
        except psycopg.errors.UndefinedFunction:
            raise CommandError("public.lint_schema() is missing; run `julia db upgrade` first") from None
    print(lint.format_findings(findings))
    if lint.at_or_above(findings, args.fail_on):
        raise SystemExit(1)


def cmd_db_import(args: argparse.Namespace) -> None:
    from app.ops import importer

    settings = _settings("cli")
    _require_schema(settings)
    with _connect(settings) as conn:
        try:
            reports = importer.load_directory(conn, args.directory, dry_run=args.dry_run)
        except importer.ImportFailed as exc:
            raise CommandError(str(exc)) from None
    for r in reports:
        print(f"{r.file}: {r.rows} rows, {r.inserted} inserted, {r.updated} updated, {r.skipped} skipped")
    if args.dry_run:
        print("dry run: nothing was written")


def cmd_db_copy(args: argparse.Namespace) -> None:
    from app.ops import dbcopy

    setup_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    tables = [t for group in args.tables or () for t in group.split(",") if t]
    try:
        report = dbcopy.run_copy(args.source, args.target, tables=tables, dry_run=args.dry_run, assume_yes=args.yes)
    except dbcopy.CopyError as exc:
        raise CommandError(str(exc)) from None
    if not report.ok:
        raise SystemExit(1)


def _describe(telefone: str | None, nome: str | None, cliente_id: int) -> str:
    return f"#{cliente_id} {telefone or '-'} ({nome or 'sem nome'})"


def cmd_doctors_merge(args: argparse.Namespace) -> None:
    settings = _settings("cli")
    _require_schema(settings)
    with _connect(settings) as conn:
        try:
            with wrap_db_errors():
                rows = conn.execute(queries["merge_duplicate_clientes"], {"apply": args.yes}).fetchall()
        except (InvalidInput, NotFound, Conflict) as exc:
            raise CommandError(str(exc)) from None
    verb = "merged" if args.yes else "would merge"
    for r in rows:
        moved = f", {r['linhas_movidas']} references moved" if r["linhas_movidas"] is not None else ""
        print(
            f"{verb} {_describe(r['removido_telefone'], r['removido_nome'], r['removido_id'])} into "
            f"{_describe(r['mantido_telefone'], r['mantido_nome'], r['mantido_id'])}: {r['motivo']}; "
            f"{r['conversas']} conversations, {r['mensagens']} messages"
            f"{', opted out' if r['opt_out'] else ''}{moved}"
        )
    if not rows:
        print("no duplicate doctors")
    elif args.yes:
        print(f"merged {len(rows)} duplicate rows; the removed rows are kept in clientes_fusoes")
    else:
        print(f"dry run: {len(rows)} duplicate rows would be merged; run with --yes to merge them")


def _state(conn: psycopg.Connection) -> dict:
    row = conn.execute(queries["julia_state"]).fetchone()
    return {**row, "since": row["since"].isoformat() if row["since"] else None}


def cmd_pause(args: argparse.Namespace, *, resume: bool = False) -> None:
    settings = _settings("cli")
    with _connect(settings) as conn:
        conn.execute(queries["resume_julia" if resume else "pause_julia"], {"motivo": args.reason, "via": "manual"})
        print(json.dumps(_state(conn), ensure_ascii=False))


def cmd_status(args: argparse.Namespace) -> None:
    settings = _settings("cli")
    with _connect(settings) as conn:
        print(json.dumps(_state(conn), ensure_ascii=False))


def cmd_token(args: argparse.Namespace) -> None:
    from app.core.tokens import mint_ops_token

    # Minting needs only JWT_SECRET_KEY, not the database ("dev" requires nothing).
    settings = load_settings("dev")
    if not settings.jwt_secret_key:
        raise CommandError("JWT_SECRET_KEY is not set; the ops API needs it to verify tokens")
    if not 1 <= args.minutes <= 60 * 24 * 30:
        raise CommandError(f"--minutes must be from 1 to 43200 (30 days), got {args.minutes}")
    print(mint_ops_token(settings.jwt_secret_key, args.subject, args.minutes))


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
    settings = _settings("cli")
    try:
        print(asyncio.run(_kb_reindex(settings, args.batch_size)))
    except (VoyageError, KnowledgeError) as exc:
        raise CommandError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="julia", description="Julia, the WhatsApp recruiter agent.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    db = sub.add_parser("db", help="database: migrations and bootstrap").add_subparsers(
        dest="db_command", required=True, metavar="DB_COMMAND"
    )
    p = db.add_parser("upgrade", help="apply migrations and replaceable SQL (run this before deploying code)")
    p.add_argument("revision", nargs="?", default="head")
    p.add_argument(
        "--allow-older",
        action="store_true",
        help="apply this code's db/ SQL even where a newer release's is in place (a deliberate revert)",
    )
    p.set_defaults(func=cmd_db_upgrade)
    p = db.add_parser("current", help="show the schema vs what this code needs (exit 1 if behind)")
    p.set_defaults(func=cmd_db_current)
    p = db.add_parser("bootstrap", help="write environment markers, feature flags, first pause state")
    p.add_argument("--force", action="store_true", help="allow changing an existing environment marker")
    p.set_defaults(func=cmd_db_bootstrap)
    p = db.add_parser("lint", help="Supabase linter security checks (exit 1 on findings at or above --fail-on)")
    p.add_argument("--fail-on", choices=("warn", "error"), default="warn")
    p.set_defaults(func=cmd_db_lint)
    p = db.add_parser("import", help="load reference data, shifts and knowledge from a directory (see db/demo/)")
    p.add_argument("directory", help="directory with especialidades.csv, hospitais.csv, vagas.csv, ...")
    p.add_argument("--dry-run", action="store_true", help="check every file and row, write nothing")
    p.set_defaults(func=cmd_db_import)
    p = db.add_parser("copy", help="copy reference/content tables DEV → PROD: COPY, never overwrites, verified")
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="source database URL (DEV)")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="target database URL (PROD)")
    p.add_argument("--tables", nargs="+", metavar="TABLE", help="tables to copy (default: the seed's list)")
    p.add_argument("--dry-run", action="store_true", help="print the plan with row counts, write nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)")
    p.set_defaults(func=cmd_db_copy)

    doctors = sub.add_parser("doctors", help="doctors (clientes): one record per person").add_subparsers(
        dest="doctors_command", required=True, metavar="DOCTORS_COMMAND"
    )
    p = doctors.add_parser("merge", help="merge rows that are one doctor (Brazil's 12/13-digit forms); an opt-out wins")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="list the duplicates, change nothing")
    mode.add_argument("--yes", action="store_true", help="merge them")
    p.set_defaults(func=cmd_doctors_merge)

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

    campaign_cli.register(sub)
    numbers_cli.register(sub)

    kb = sub.add_parser("kb", help="knowledge base: embeddings").add_subparsers(
        dest="kb_command", required=True, metavar="KB_COMMAND"
    )
    p = kb.add_parser("reindex", help="embed chunks that are new, changed or of another model")
    p.add_argument("--batch-size", type=int, default=64, help="chunks per embedding call (default 64)")
    p.set_defaults(func=cmd_kb_reindex)
    return parser


# Commands that never use the dev database on their own: dev makes it, token needs none,
# and the servers must be pointed at a database deliberately.
NO_DEV_DATABASE = {"dev", "token", *RUN_MODES, "run"}


def _use_dev_database(command: str) -> None:
    """With DATABASE_URL unset, a command beside `julia dev` uses its database (and says so)."""
    if command in NO_DEV_DATABASE or os.environ.get("DATABASE_URL"):
        return
    from app.devkit.dev import dev_database_url

    if url := dev_database_url():
        os.environ["DATABASE_URL"] = url
        print("julia: using the julia dev database in .julia/ (DATABASE_URL is not set)", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        _use_dev_database(args.command)
        args.func(args)
    except JuliaError as exc:
        print(f"julia: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except psycopg.OperationalError as exc:
        # libpq messages name host and user, never the password.
        print(f"julia: error: cannot reach the database: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
