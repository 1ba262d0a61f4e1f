"""Phone numbers typed by people (spreadsheets, imported lists) to E.164 digits.

Pure logic over the `phonenumbers` library (Google's libphonenumber
metadata): no I/O. Which forms are one person is not decided here: that is
`public.phone_key()` in db/identity.sql.
"""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "BR"


def e164_digits(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """The E.164 digits (no '+') of a typed phone, or None when it is not a phone.

    '(11) 98167-7736', '+55 11 98167-7736' and '5511981677736' all give
    '5511981677736'; '+1 415 555 2671' and '14155552671' give '14155552671'.
    A number without '+' is read as Brazilian first, then as international;
    a valid reading beats one that is only possible (the 12-digit form of an
    old Brazilian mobile is possible but no longer valid, and still kept).
    """
    text = raw.strip()
    # libphonenumber reads letters as keypad digits; a typed phone has none.
    if not text or any(ch.isalpha() for ch in text):
        return None
    readings = []
    for candidate, hint in ((text, None),) if text.startswith("+") else ((text, region), ("+" + text, None)):
        try:
            readings.append(phonenumbers.parse(candidate, hint))
        except phonenumbers.NumberParseException:
            continue
    for accept in (phonenumbers.is_valid_number, phonenumbers.is_possible_number):
        for number in readings:
            if accept(number):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return None
