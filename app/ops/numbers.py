"""`julia limits ...` and `julia numbers ...`: the send policy and the WhatsApp
numbers, which are data every process enforces (db/numbers.sql).

This module parses arguments and prints results; every decision and every
check is an SQL function. Changes are audited (send_policy_changes).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.core.config import load_settings
from app.core.errors import Conflict, InvalidInput, JuliaError, NotFound
from app.store.errors import wrap_db_errors
from app.store.queries import queries


class NumbersError(JuliaError):
    """A limits/numbers command failed; the message says why."""


def _run(action: Any) -> None:
    settings = load_settings("cli")
    try:
        with (
            psycopg.connect(settings.database_url, autocommit=True, row_factory=dict_row, connect_timeout=10) as conn,
            wrap_db_errors(),
        ):
            result = action(conn)
    except (InvalidInput, NotFound, Conflict) as exc:
        raise NumbersError(str(exc)) from None
    except psycopg.errors.UndefinedTable:
        raise NumbersError("the numbers tables are missing; run `julia db upgrade` first") from None
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))


# Flag name → policy key (the seed's variable each one replaces, for the help text).
POLICY_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--hour-limit", "hour_limit", int, "proactive messages per number per hour (MAX_MSGS_POR_HORA)"),
    ("--day-limit", "day_limit", int, "proactive messages per number per day (MAX_MSGS_POR_DIA)"),
    ("--start", "start", str, "business hours start, HH:MM Sao Paulo (HORARIO_INICIO)"),
    ("--end", "end", str, "business hours end, HH:MM (HORARIO_FIM)"),
    ("--weekdays", "weekdays", str, "ISO weekdays, e.g. 1,2,3,4,5 (DIAS_SEMANA)"),
    ("--cooldown-hours", "cooldown_hours", int, "hours between proactive messages to one doctor (COOLDOWN_HORAS)"),
    ("--reply-cap", "reply_cap_per_hour", int, "replies per conversation per hour (MAX_RESPOSTAS_POR_HORA)"),
    ("--warmup-start", "warmup_start_per_day", int, "a new number's day cap on its first day"),
    ("--warmup-days", "warmup_days", int, "days a new number takes to reach its cap"),
    ("--health-window", "health_window_minutes", int, "window for counting a number's problems (minutes)"),
    ("--health-max", "health_max_problems", int, "problems in the window that pause a number"),
)


def _weekdays(raw: str) -> list[int]:
    try:
        return sorted({int(part) for part in raw.replace(" ", "").split(",") if part})
    except ValueError:
        raise NumbersError(f"--weekdays must list ISO weekdays (1=Monday … 7=Sunday), got {raw!r}") from None


def cmd_limits_show(args: argparse.Namespace) -> None:
    _run(lambda conn: conn.execute(queries["rate_limit_status"]).fetchone()["status"])


def cmd_limits_set(args: argparse.Namespace) -> None:
    changes: dict[str, Any] = {}
    for flag, key, _type, _help in POLICY_FLAGS:
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            changes[key] = _weekdays(value) if key == "weekdays" else value
    if not changes:
        raise NumbersError("nothing to change: give at least one of " + ", ".join(f for f, *_ in POLICY_FLAGS))

    def action(conn: psycopg.Connection) -> dict[str, Any]:
        params = {"changes": Jsonb(changes), "motivo": args.reason, "via": "manual"}
        return conn.execute(queries["set_send_policy"], params).fetchone()["policy"]

    _run(action)


def cmd_numbers_list(args: argparse.Namespace) -> None:
    _run(lambda conn: conn.execute(queries["numbers_report"]).fetchone()["numbers"])


def cmd_numbers_add(args: argparse.Namespace) -> None:
    def action(conn: psycopg.Connection) -> dict[str, Any]:
        params = {
            "instance": args.instance,
            "phone": args.phone,
            "hour_limit": args.hour_limit,
            "day_limit": args.day_limit,
            "warmup": not args.no_warmup,
            "motivo": args.reason,
            "via": "manual",
        }
        conn.execute(queries["add_number"], params)
        numbers = conn.execute(queries["numbers_report"]).fetchone()["numbers"]
        return next(n for n in numbers if n["instance"] == args.instance)

    _run(action)


def cmd_numbers_set(args: argparse.Namespace) -> None:
    changes: dict[str, Any] = {}
    for name in ("hour_limit", "day_limit", "phone"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.hours:
        start, sep, end = args.hours.partition("-")
        if not sep:
            raise NumbersError(f"--hours must look like HH:MM-HH:MM, got {args.hours!r}")
        changes["hours_start"], changes["hours_end"] = start, end
    if args.policy_hours:
        changes["hours_start"] = changes["hours_end"] = None
    if args.policy_limits:
        changes["hour_limit"] = changes["day_limit"] = None
    if not changes:
        raise NumbersError("nothing to change: give --hour-limit, --day-limit, --hours, --phone or --policy-*")

    def action(conn: psycopg.Connection) -> dict[str, Any]:
        params = {"instance": args.instance, "changes": Jsonb(changes), "motivo": args.reason, "via": "manual"}
        conn.execute(queries["update_number"], params)
        numbers = conn.execute(queries["numbers_report"]).fetchone()["numbers"]
        return next(n for n in numbers if n["instance"] == args.instance)

    _run(action)


def cmd_numbers_pause(args: argparse.Namespace, *, resume: bool = False) -> None:
    def action(conn: psycopg.Connection) -> dict[str, Any]:
        params = {"instance": args.instance, "motivo": args.reason, "via": "manual"}
        released = None
        if resume:
            released = conn.execute(queries["resume_number"], params).fetchone()["released"]
        else:
            conn.execute(queries["pause_number"], params)
        numbers = conn.execute(queries["numbers_report"]).fetchone()["numbers"]
        row = next(n for n in numbers if n["instance"] == args.instance)
        return {**row, "released": released} if resume else row

    _run(action)


def _non_negative(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add `julia limits ...` and `julia numbers ...` to the CLI."""
    limits = sub.add_parser("limits", help="the send policy every worker enforces (in the database)")
    commands = limits.add_subparsers(dest="limits_command", required=True, metavar="LIMITS_COMMAND")
    p = commands.add_parser("show", help="the policy and each number's counters now")
    p.set_defaults(func=cmd_limits_show)
    p = commands.add_parser("set", help="change the policy (audited; applies to every process at once)")
    for flag, _key, kind, text in POLICY_FLAGS:
        p.add_argument(flag, type=_non_negative if kind is int else str, help=text)
    p.add_argument("--reason", required=True, help="why (kept in the audit)")
    p.set_defaults(func=cmd_limits_set)

    numbers = sub.add_parser("numbers", help="the WhatsApp numbers (Evolution instances) Julia sends from")
    commands = numbers.add_subparsers(dest="numbers_command", required=True, metavar="NUMBERS_COMMAND")
    p = commands.add_parser("list", help="every number: state, pause, caps, warm-up, counters now")
    p.set_defaults(func=cmd_numbers_list)
    p = commands.add_parser("add", help="add a number; it warms up (policy ramp) unless --no-warmup")
    p.add_argument("instance", help="the Evolution instance name")
    p.add_argument("--phone", help="its phone number (for operators)")
    p.add_argument("--hour-limit", type=_non_negative, help="its own hourly cap (default: the policy's)")
    p.add_argument("--day-limit", type=_non_negative, help="its own daily cap (default: the policy's)")
    p.add_argument("--no-warmup", action="store_true", help="an established number: full cap from day one")
    p.add_argument("--reason", default="julia numbers add", help="why (kept in the audit)")
    p.set_defaults(func=cmd_numbers_add)
    p = commands.add_parser("set", help="change a number's own caps, hours or phone (audited)")
    p.add_argument("instance")
    p.add_argument("--hour-limit", type=_non_negative)
    p.add_argument("--day-limit", type=_non_negative)
    p.add_argument("--hours", help="its own proactive hours, HH:MM-HH:MM (Sao Paulo), within the policy's")
    p.add_argument("--phone")
    p.add_argument("--policy-limits", action="store_true", help="use the policy's caps again")
    p.add_argument("--policy-hours", action="store_true", help="use the policy's hours again")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_numbers_set)
    p = commands.add_parser("pause", help="stop sending from a number")
    p.add_argument("instance")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=cmd_numbers_pause)
    p = commands.add_parser("resume", help="send from a number again (releases what waited for it)")
    p.add_argument("instance")
    p.add_argument("--reason", required=True)
    p.set_defaults(func=lambda a: cmd_numbers_pause(a, resume=True))
