"""Bytes Postgres cannot store: refused with a reason, or made storable."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from app.events import storable_json
from app.events.storable_json import MAX_DEPTH, NotStorable
from tests.faults.bodies import fuzzed_bodies


@pytest.mark.parametrize("text", [b'{"n": NaN}', b'{"n": Infinity}', b'{"n": -Infinity}', b'{"n": 1e400}'])
def test_non_finite_numbers_are_refused(text):
    with pytest.raises(NotStorable):
        storable_json.loads(text)


def test_deep_nesting_is_refused_without_blowing_the_stack():
    with pytest.raises(NotStorable, match="nested deeper"):
        storable_json.loads(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(NotStorable, match="nested deeper"):
        storable_json.loads(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    value, _ = storable_json.loads(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    assert storable_json.depth(value) == MAX_DEPTH


def test_nul_and_lone_surrogates_are_read_without_them_and_kept_escaped():
    value, unclean = storable_json.loads(rb'{"t\u0000": "a\u0000b", "s": ["x\ud800y", "\ud83d\ude00"]}')
    assert unclean
    assert storable_json.readable(value) == {"t": "ab", "s": ["x\ufffdy", "\U0001f600"]}
    assert storable_json.escaped(value) == {"t\\u0000": "a\\u0000b", "s": ["x\\ud800y", "\U0001f600"]}


def test_clean_bodies_need_no_cleaning():
    value, unclean = storable_json.loads('{"t": "Olá \U0001f600", "n": 1.5}'.encode())
    assert (value, unclean) == ({"t": "Olá \U0001f600", "n": 1.5}, False)


def json_only_loads(raw: bytes) -> tuple[Any, bool]:
    """`loads` as it was before orjson read bodies first: the reference it must agree with."""
    text = raw.decode("utf-8")
    try:
        value = json.loads(text, parse_constant=storable_json._refuse_constant, parse_float=storable_json._finite_float)
    except RecursionError:
        raise NotStorable(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if storable_json.depth(value) > MAX_DEPTH:
        raise NotStorable(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value, bool(re.search(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})", text))


def outcome(loads: Callable[[bytes], tuple[Any, bool]], raw: bytes) -> tuple[str, str]:
    """What `loads` makes of `raw`: the repr of its value (types, key order, -0.0 tell apart) or its error."""
    try:
        return "value", repr(loads(raw))
    except (ValueError, UnicodeDecodeError) as exc:  # NotStorable is a ValueError
        return type(exc).__name__, str(exc)


EDGE_BODIES = [
    b'{"a": 1e400}',
    b'{"a": -1e400}',
    b'{"a": 1e-400}',
    b'{"a": NaN}',
    b'{"a": -Infinity}',
    b'{"a": 12345678901234567890123}',
    b'{"a": -9223372036854775809}',
    b'{"a": 18446744073709551615}',
    b'{"a": 18446744073709551616}',
    b'{"a": 123456789012345678901234567890.5}',
    b'{"a": -0}',
    b'{"a": -0.0}',
    b'{"a": 1E2, "b": 0.1, "c": 1.0}',
    b'{"a": "\\ud800"}',
    b'{"\\ud800": 1}',
    b'{"a": "\\uDFFF\\uD800", "b": "\\ud83d\\ude00"}',
    b'{"a": "\\u0000"}',
    b'{"a": "\xed\xa0\x80"}',
    b'{"a": "\xff"}',
    b'\xef\xbb\xbf{"a": 1}',
    b'{"a": "\x01"}',
    b'{"a": 1, "a": 2, "b": 3}',
    b'{"b": 1, "a": 2, "b": 3}',
    b' \t{"a": 1}\r\n',
    b'{"a": 1}\x00',
    b'{"a": 1}\x0c',
    b'{"a": 01}',
    b'{"a": 1.}',
    b'{"a": .5}',
    b"[1, 2",
    b"",
    b"null",
    b'"x"',
    b"[" * 1000 + b"]" * 1000,
    b"[" * 5000 + b"]" * 5000,
    b'{"a": [[[[1]]]], "s": "' + b"[" * 100 + b'"}',
    b'{"n": "5511981677736", "t": 1733142040000, "id": "3EB0' + b"9" * 30 + b'"}',
]


@pytest.mark.parametrize("raw", EDGE_BODIES)
def test_loads_agrees_with_json_on_edge_cases(raw):
    assert outcome(storable_json.loads, raw) == outcome(json_only_loads, raw)


def test_loads_agrees_with_json_on_fuzzed_bodies():
    for raw in fuzzed_bodies(3000, seed=18):
        assert outcome(storable_json.loads, raw) == outcome(json_only_loads, raw), raw[:200]
