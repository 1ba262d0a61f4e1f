"""Bearer JWTs for the operator API (HS256 signed with JWT_SECRET_KEY).

Tokens must carry `exp` and `aud` = "julia-ops"; anything else is refused.
Mint one with `julia token --subject NAME --minutes N`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import jwt

AUDIENCE = "julia-ops"


class Unauthorized(Exception):
    """The request carries no valid operator token."""


def verify_ops_token(headers: Mapping[str, str], secret: str) -> dict:
    """Return the token's claims; raise Unauthorized with a short reason."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return jwt.decode(
                token.strip(),
                secret,
                algorithms=["HS256"],
                audience=AUDIENCE,
                options={"require": ["exp", "aud"]},
            )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized("token audience is not julia-ops") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid token") from None


def mint_ops_token(secret: str, subject: str, minutes: int = 60) -> str:
    """A signed operator token valid for `minutes`."""
    now = int(time.time())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(
            {"sub": subject, "aud": AUDIENCE, "iat": now, "exp": now + 60 * minutes}, secret, algorithm="HS256"
        )
