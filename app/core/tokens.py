"""Signed tokens (HS256 with JWT_SECRET_KEY), each kind with its own audience.

- Operator tokens (`aud` = "julia-ops", `exp` required) for the ops API and
  console. Mint one with `julia token --subject NAME --minutes N`.
- Hand-off links for an external system (the `external_handoff` flag):
  `EXTERNAL_HANDOFF_URL?token=<JWT>` (`aud` = "julia-handoff", `sub` = the
  conversation id). The external system may call `GET /handoff/context`
  with the token to read the conversation.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt

from app.core.errors import Unauthorized

OPS_AUDIENCE = "julia-ops"
HANDOFF_AUDIENCE = "julia-handoff"
LINK_MINUTES = 24 * 60


class InvalidHandoffToken(Unauthorized):
    """The handoff token is missing, expired, for another audience or forged."""


def _mint(secret: str, subject: str, audience: str, minutes: int) -> str:
    now = int(time.time())
    claims = {"sub": subject, "aud": audience, "iat": now, "exp": now + 60 * minutes}
    with warnings.catch_warnings():
        # The secret's length is the operator's choice, not a reason to fail.
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm="HS256")


def _verify(token: str, secret: str, audience: str, require: list[str], error: type[Unauthorized], noun: str) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            return jwt.decode(token, secret, algorithms=["HS256"], audience=audience, options={"require": require})
    except jwt.ExpiredSignatureError:
        raise error(f"{noun} expired") from None
    except jwt.InvalidAudienceError:
        raise error(f"token audience is not {audience}") from None
    except jwt.PyJWTError:
        raise error(f"invalid {noun}") from None


def mint_ops_token(secret: str, subject: str, minutes: int = 60) -> str:
    """A signed operator token valid for `minutes`."""
    return _mint(secret, subject, OPS_AUDIENCE, minutes)


def verify_ops_token(headers: Mapping[str, str], secret: str) -> dict[str, Any]:
    """Return the token's claims; raise Unauthorized with a short reason."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return _verify(token.strip(), secret, OPS_AUDIENCE, ["exp", "aud"], Unauthorized, "token")


def mint_handoff_token(secret: str, conversation_id: int, minutes: int = LINK_MINUTES) -> str:
    """A token naming one conversation, valid for `minutes`."""
    return _mint(secret, str(conversation_id), HANDOFF_AUDIENCE, minutes)


def verify_handoff_token(token: str, secret: str) -> int:
    """The conversation id a valid token names; raises InvalidHandoffToken with a reason."""
    if not token:
        raise InvalidHandoffToken("missing handoff token")
    claims = _verify(token, secret, HANDOFF_AUDIENCE, ["exp", "aud", "sub"], InvalidHandoffToken, "handoff token")
    if not str(claims["sub"]).isdecimal():
        raise InvalidHandoffToken("handoff token names no conversation")
    return int(claims["sub"])


def handoff_link(base_url: str, token: str) -> str:
    """`base_url` with `token=` added to its query."""
    parts = urlsplit(base_url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"token": token})))
