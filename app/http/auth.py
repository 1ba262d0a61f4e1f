"""Every check a request passes before the api acts on it, in one place:
credentials (Evolution's shared secret or JWT, operators' bearer tokens),
body limits, JSON Postgres can store, and the shape of an error response.

A check that fails raises `Refusal(status, reason)`; the app's exception
handler answers it as `{"error": reason}` with that status — always a clear
4xx (or 503 when a surface is switched off), never a 500.

Evolution signs nothing; it can send a custom header or a JWT. We accept
`x-webhook-secret: <EVOLUTION_WEBHOOK_SECRET>` (compared in constant time)
or `Authorization: Bearer <HS256 JWT signed with that secret>`.
"""

from __future__ import annotations

import hmac
import warnings
from collections.abc import Mapping
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.core.config import Settings
from app.core.errors import JuliaError, Unauthorized
from app.core.tokens import verify_ops_token
from app.events import storable_json


class Refusal(JuliaError):
    """The request is refused."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def error(status: int, reason: str) -> JSONResponse:
    """The one shape of an error answer: `{"error": reason}`."""
    return JSONResponse({"error": reason}, status_code=status)


async def answer_refusal(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler for `Refusal`."""
    assert isinstance(exc, Refusal)
    return error(exc.status, str(exc))


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 beyond `limit` bytes (declared or actual)."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise Refusal(413, f"body larger than {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise Refusal(413, f"body larger than {limit} bytes")
    return raw


def storable_body(raw: bytes) -> tuple[Any, bool]:
    """JSON Postgres can store (see `storable_json.loads`): 422 or 400 otherwise."""
    try:
        return storable_json.loads(raw)
    except storable_json.NotStorable as exc:
        raise Refusal(422, f"body cannot be stored: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refusal(400, f"malformed JSON: {exc}") from None


def require_operator(request: Request) -> dict[str, Any]:
    """The claims of a valid operator token; 503 when the ops API is off, 401 otherwise."""
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        raise Refusal(503, "ops API disabled: JWT_SECRET_KEY is not set")
    try:
        return verify_ops_token(request.headers, settings.jwt_secret_key)
    except Unauthorized as exc:
        raise Refusal(401, str(exc)) from None


def webhook_authorized(headers: Mapping[str, str], secret: str) -> bool:
    """True when the request carries the shared secret or a valid JWT."""
    if not secret:
        return False
    given = headers.get("x-webhook-secret")
    if given is not None and hmac.compare_digest(given.encode(), secret.encode()):
        return True
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    try:
        with warnings.catch_warnings():
            # The secret's length is the operator's choice; PyJWT's warning about
            # short HMAC keys must not turn a bad token into a 500.
            warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
            jwt.decode(token.strip(), secret, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.PyJWTError:
        return False
    return True


def metrics_authorized(headers: Mapping[str, str], token: str) -> bool:
    """True when no METRICS_TOKEN is set, or the request carries it as a bearer token."""
    if not token:
        return True
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
