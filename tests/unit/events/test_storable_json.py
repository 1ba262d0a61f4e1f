"""Bytes Postgres cannot store: refused with a reason, or made storable."""

from __future__ import annotations

import pytest

from app.events import storable_json
from app.events.storable_json import MAX_DEPTH, NotStorable


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
