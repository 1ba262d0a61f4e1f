"""JSON that Postgres can store: reading webhook bodies safely.

Pure logic, no I/O. Postgres' jsonb refuses three things Python's json
module accepts: NUL (``\\u0000``) inside strings, lone UTF-16 surrogates
(``"x\\ud800y"``) and the non-numbers ``NaN`` / ``Infinity``. Deep nesting
makes the parser itself blow the stack. The rules:

- ``NaN``, ``Infinity``, ``-Infinity`` and numbers too large for a double
  are refused (``NotStorable``, a 4xx): no WhatsApp event carries them.
- Nesting deeper than ``MAX_DEPTH`` is refused (Evolution's bodies nest about
  ten levels).
- NUL and lone surrogates are made storable instead, because WhatsApp text
  can carry them and the message must not be lost: ``readable()`` gives the
  body Julia reads (NUL removed, a lone surrogate becomes U+FFFD) and
  ``escaped()`` the body kept as raw payload (each one written as its
  six-character escape, e.g. the text ``\\u0000``), so nothing is hidden.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

MAX_DEPTH = 64

# A NUL or a UTF-16 surrogate written as an escape in the raw JSON text.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
# 19 digits in a row: maybe an integer beyond 64 bits, which orjson would read as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class NotStorable(ValueError):
    """The body is JSON Postgres cannot store; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise NotStorable(f"JSON number {name} is not allowed (only finite numbers)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotStorable(f"JSON number {text[:40]} is too large")
    return value


def loads(raw: bytes) -> tuple[Any, bool]:
    """Parse a webhook body; returns (value, needs_cleaning).

    Raises NotStorable for non-finite numbers or nesting deeper than
    MAX_DEPTH, and ValueError/UnicodeDecodeError for malformed JSON or text
    that is not UTF-8 (json.loads would let encoded surrogates through).
    `needs_cleaning` is true when a string may hold NUL or a lone surrogate.

    orjson reads a body first (a fifth of json's time). It refuses whatever
    json would refuse here, and also NaN, Infinity, numbers beyond a double
    and lone surrogates, which json reads: for every body orjson refuses, and
    for any with 19 digits in a row (orjson reads an integer beyond 64 bits
    as a float), json's answer is the one given, value or error.
    """
    value = _fast_loads(raw)
    if value is _SLOW:
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
        except RecursionError:
            raise NotStorable(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    # No more brackets than MAX_DEPTH anywhere in the text: nothing can nest deeper.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth(value) > MAX_DEPTH:
        raise NotStorable(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value, bool(_SUSPECT_ESCAPE.search(raw))


_SLOW = object()


def _fast_loads(raw: bytes) -> Any:
    """orjson's reading of `raw`, or `_SLOW` when json must read it."""
    if _LONG_DIGITS.search(raw):
        return _SLOW
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _SLOW


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _read(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def readable(value: Any) -> Any:
    """The value with NUL removed and lone surrogates replaced by U+FFFD."""
    return _map_strings(value, lambda s: _UNSTORABLE.sub(_read, s))


def escaped(value: Any) -> Any:
    """The value with NUL and lone surrogates written as their escapes."""
    return _map_strings(value, lambda s: _UNSTORABLE.sub(_escape, s))


def _map_strings(value: Any, fix: Any) -> Any:
    """Apply `fix` to every string (keys too); loads() bounded the depth."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {fix(k): _map_strings(v, fix) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fix) for v in value]
    return value
