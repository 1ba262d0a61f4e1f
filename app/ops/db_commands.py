"""`julia db ...` and `julia doctors merge`: migrate, bootstrap, lint,
import and copy a database, and fold rows that are one doctor.

Each command parses arguments and prints results; the work is in
`app.store.schema`, SQL functions, `app.ops.importer`, `app.ops.lint` and
`app.ops.dbcopy`.
"""

from __future__ import annotations

import argparse
import json
import os

import psycopg
from psycopg.types.json import Jsonb

from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.logs import setup_logging
from app.ops.preflight import CommandError, command_settings, connect, require_schema
from app.store import schema
from app.store.errors import wrap_db_errors
from app.store.queries import queries


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    settings = command_settings("cli")
    schema.upgrade(settings.database_url, args.revision, allow_older=args.allow_older)
    with connect(settings) as conn:
        print(json.dumps(schema.schema_status(conn).as_json()))


def cmd_db_current(args: argparse.Namespace) -> None:
    settings = command_settings("cli")
    with connect(settings) as conn:
        status = schema.schema_status(conn)
    print(json.dumps(status.as_json()))
    if not status.ok:
        raise SystemExit(1)


def cmd_db_bootstrap(args: argparse.Namespace) -> None:
    settings = command_settings("cli")
    with connect(settings) as conn:
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

    settings = command_settings("cli")
    with connect(settings) as conn:
        try:
            findings = lint.run_lint(conn)
        except psycopg.errors.UndefinedFunction:
            raise CommandError("public.lint_schema() is missing; run `julia db upgrade` first") from None
    print(lint.format_findings(findings))
    if lint.at_or_above(findings, args.fail_on):
        raise SystemExit(1)


def cmd_db_import(args: argparse.Namespace) -> None:
    from app.ops import importer

    settings = command_settings("cli")
    require_schema(settings)
    with connect(settings) as conn:
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
    settings = command_settings("cli")
    require_schema(settings)
    with connect(settings) as conn:
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


def _add_db_commands(sub: argparse._SubParsersAction) -> None:
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
    # It never reads DATABASE_URL, so it needs no `julia dev` database (nor its imports).
    p.set_defaults(func=cmd_db_copy, names_databases=True)


def _add_doctors_commands(sub: argparse._SubParsersAction) -> None:
    doctors = sub.add_parser("doctors", help="doctors (clientes): one record per person").add_subparsers(
        dest="doctors_command", required=True, metavar="DOCTORS_COMMAND"
    )
    p = doctors.add_parser("merge", help="merge rows that are one doctor (Brazil's 12/13-digit forms); an opt-out wins")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="list the duplicates, change nothing")
    mode.add_argument("--yes", action="store_true", help="merge them")
    p.set_defaults(func=cmd_doctors_merge)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `julia db ...` and `julia doctors ...` to the command line."""
    _add_db_commands(sub)
    _add_doctors_commands(sub)
