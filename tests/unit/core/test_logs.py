"""Logs: JSON lines for machines, short lines for a person at a terminal."""

from __future__ import annotations

import json
import logging

from app.core import logs


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("app.x", logging.WARNING, __file__, 1, "webhook queued", (), None)
    rec.__dict__.update(extra)
    return rec


def test_json_lines_keep_every_field():
    line = json.loads(logs.JsonFormatter().format(record(action="webhook_queued", msg_id=3)))
    assert (line["action"], line["msg_id"], line["msg"], line["level"]) == (
        "webhook_queued",
        3,
        "webhook queued",
        "WARNING",
    )


def test_a_terminal_line_is_short_and_readable():
    huge = {"history": ["x" * 50] * 40}
    line = logs.TerminalFormatter(colour=False).format(record(action="reply_queued", conversation_id=7, context=huge))
    assert "WARNING" in line and "reply_queued" in line and "webhook queued" in line and "conversation_id=7" in line
    assert len(line) < 200 and line.endswith("…")
    coloured = logs.TerminalFormatter(colour=True).format(record(action="a"))
    assert "\033[33m" in coloured


def test_log_format_chooses_the_formatter(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "text")
    assert isinstance(logs._formatter(), logs.TerminalFormatter)
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert isinstance(logs._formatter(), logs.JsonFormatter)
    monkeypatch.delenv("LOG_FORMAT")
    assert isinstance(logs._formatter(), logs.JsonFormatter)  # pytest's stderr is not a terminal
