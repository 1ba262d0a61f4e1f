"""Signed handoff links for an external system (the `external_handoff` flag).

A link is `EXTERNAL_HANDOFF_URL?token=<JWT>`: HS256 with JWT_SECRET_KEY,
audience "julia-handoff", `exp` required. The external system may call
`GET /handoff/context` with the token to read the conversation.
"""

from __future__ import annotations

import time
import warnings
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt

AUDIENCE = "julia-handoff"
LINK_MINUTES = 24 * 60


class InvalidHandoffToken(Exception):
    """The handoff token is missing, expired, for another audience or forged."""


def mint_handoff_token(secret: str, conversation_id: int, minutes: int = LINK_MINUTES) -> str:
    """A token naming one conversation, valid for `minutes`."""
    now = int(time.time())
    claims = {"sub": str(conversation_id), "aud": AUDIENCE, "iat": now, "exp": now + 60 * minutes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm="HS256")


def verify_handoff_token(token: str, secret: str) -> int:
    """The conversation id a valid token names; raises InvalidHandoffToken with a reason."""
    if not token:
        raise InvalidHandoffToken("missing handoff token")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            claims = jwt.decode(
                token, secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp", "aud", "sub"]}
            )
    except jwt.ExpiredSignatureError:
        raise InvalidHandoffToken("handoff token expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidHandoffToken(f"token audience is not {AUDIENCE}") from None
    except jwt.PyJWTError:
        raise InvalidHandoffToken("invalid handoff token") from None
    if not str(claims["sub"]).isdecimal():
        raise InvalidHandoffToken("handoff token names no conversation")
    return int(claims["sub"])


def handoff_link(base_url: str, token: str) -> str:
    """`base_url` with `token=` added to its query."""
    parts = urlsplit(base_url)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=query + urlencode({"token": token})))
