from __future__ import annotations

import hmac
import time

import jwt
import pytest
from starlette.datastructures import Headers

from app.http import auth as webhook_auth
from app.http.auth import webhook_authorized

# HS256 keys of at least 32 bytes, so PyJWT has nothing to warn about.
SECRET = "julia-webhook-jwt-secret-0123456789abcdef"
OTHER_KEY = "another-key-that-is-also-32-bytes-long"


def bearer(claims: dict, key: str = SECRET, algorithm: str = "HS256") -> dict[str, str]:
    return {"authorization": f"Bearer {jwt.encode(claims, key, algorithm=algorithm)}"}


# --- x-webhook-secret header ------------------------------------------------------


def test_exact_secret_header_is_authorized():
    assert webhook_authorized({"x-webhook-secret": SECRET}, SECRET) is True


def test_header_names_are_case_insensitive_on_real_request_headers():
    assert webhook_authorized(Headers({"X-Webhook-Secret": SECRET}), SECRET) is True
    assert webhook_authorized(Headers({"Authorization": bearer({})["authorization"]}), SECRET) is True


@pytest.mark.parametrize(
    "given",
    ["", "wrong", SECRET[:-1], f"{SECRET}x", SECRET.upper(), f" {SECRET}", "sécret"],
    ids=["empty", "wrong", "prefix", "longer", "other-case", "leading-space", "non-ascii"],
)
def test_any_other_header_value_is_refused(given):
    assert webhook_authorized({"x-webhook-secret": given}, SECRET) is False


def test_header_is_compared_in_constant_time(monkeypatch):
    real_compare = hmac.compare_digest
    compared = []

    def spy(given, expected):
        compared.append(given)
        return real_compare(given, expected)

    monkeypatch.setattr(webhook_auth.hmac, "compare_digest", spy)
    assert webhook_authorized({"x-webhook-secret": "wrong"}, SECRET) is False
    assert webhook_authorized({"x-webhook-secret": SECRET}, SECRET) is True
    assert len(compared) == 2


# --- Authorization: Bearer <JWT> ---------------------------------------------------


def test_bearer_jwt_signed_with_the_secret_is_authorized():
    assert webhook_authorized(bearer({"iss": "evolution", "exp": int(time.time()) + 60}), SECRET) is True


def test_bearer_jwt_without_exp_is_authorized():
    assert webhook_authorized(bearer({"iss": "evolution"}), SECRET) is True


def test_bearer_scheme_is_case_insensitive_and_audience_is_not_checked():
    token = jwt.encode({"aud": "anything"}, SECRET, algorithm="HS256")
    assert webhook_authorized({"authorization": f"bearer {token}"}, SECRET) is True


def test_bearer_jwt_signed_with_another_key_is_refused():
    assert webhook_authorized(bearer({"iss": "evolution"}, key=OTHER_KEY), SECRET) is False


def test_expired_bearer_jwt_is_refused():
    assert webhook_authorized(bearer({"exp": int(time.time()) - 60}), SECRET) is False


def test_bearer_jwt_not_yet_valid_is_refused():
    assert webhook_authorized(bearer({"nbf": int(time.time()) + 600}), SECRET) is False


def test_bearer_jwt_with_another_algorithm_is_refused():
    token = jwt.encode({"iss": "evolution"}, SECRET + SECRET, algorithm="HS512")
    assert webhook_authorized({"authorization": f"Bearer {token}"}, SECRET + SECRET) is False


def test_unsigned_bearer_jwt_is_refused():
    token = jwt.encode({"iss": "evolution"}, None, algorithm="none")
    assert webhook_authorized({"authorization": f"Bearer {token}"}, SECRET) is False


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer not.a.jwt", "Bearer ", "Bearer", "", f"Basic {SECRET}", SECRET],
)
def test_malformed_authorization_is_refused(authorization):
    assert webhook_authorized({"authorization": authorization}, SECRET) is False


def test_no_credentials_at_all_are_refused():
    assert webhook_authorized({}, SECRET) is False


# --- empty secret ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-webhook-secret": ""},
        {"authorization": "Bearer "},
        {"authorization": f"Bearer {jwt.encode({'iss': 'evolution'}, SECRET, algorithm='HS256')}"},
    ],
    ids=["nothing", "empty-header", "empty-bearer", "some-jwt"],
)
def test_empty_secret_never_authorizes(headers):
    assert webhook_authorized(headers, "") is False


# --- short secrets ---


def test_short_secret_answers_a_forged_jwt_without_raising():
    assert webhook_authorized(bearer({"iss": "evolution"}, key=OTHER_KEY), "test-webhook-secret") is False
