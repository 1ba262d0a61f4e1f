"""Typed phones to E.164 digits (phonenumbers); which forms are one doctor is SQL's call."""

from __future__ import annotations

import pytest

from app.core.phones import e164_digits


@pytest.mark.parametrize(
    ("typed", "digits"),
    [
        ("(11) 98167-7736", "5511981677736"),
        ("+55 11 98167-7736", "5511981677736"),
        ("5511981677736", "5511981677736"),
        ("551181677736", "551181677736"),  # an old 12-digit mobile: possible, kept as typed
        ("(11) 3333-4444", "551133334444"),  # a landline
        ("+1 415 555 2671", "14155552671"),
        ("14155552671", "14155552671"),  # not Brazilian without the +: read as international
        ("351912345678", "351912345678"),
    ],
)
def test_typed_phones_become_e164_digits(typed: str, digits: str) -> None:
    assert e164_digits(typed) == digits


@pytest.mark.parametrize("typed", ["", "   ", "12345", "11 9ABC-DEFG", "telefone"])
def test_what_is_not_a_phone_is_left_for_sql_to_refuse(typed: str) -> None:
    assert e164_digits(typed) is None
