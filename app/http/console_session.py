"""The ops console's session and CSRF tokens, signed with a key derived from
JWT_SECRET_KEY (rotating the secret ends every session).

An operator signs in by pasting an operator token (`julia token`); the
console checks it once and gives a session cookie instead, so the bearer
token itself never sits in the browser. The cookie carries the token's
subject and expiry and a random session id, with an HMAC over them. Every
form carries a CSRF token, the HMAC of the session id (or, on the sign-in
form, of a nonce in a short-lived cookie), checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from app.core.errors import Unauthorized
from app.core.tokens import verify_ops_token

SESSION_COOKIE = "julia_console"
SIGN_IN_COOKIE = "julia_console_sign_in"
SIGN_IN_SECONDS = 15 * 60
_KEY_CONTEXT = b"julia-console-session-v1"


@dataclass(frozen=True, kw_only=True)
class Session:
    """A signed-in operator: the token's subject, until the token's expiry."""

    operator: str
    expires_at: int
    sid: str

    def seconds_left(self, now: float | None = None) -> int:
        return max(0, self.expires_at - int(time.time() if now is None else now))


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _KEY_CONTEXT, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, message: str) -> str:
    return _b64(hmac.new(_key(secret), message.encode(), hashlib.sha256).digest())


def session_from_token(token: str, secret: str) -> Session:
    """A new session for a valid operator token; raises Unauthorized with the reason."""
    token = token.strip()
    if not token:
        raise Unauthorized("missing token")
    claims: dict[str, Any] = verify_ops_token({"authorization": f"Bearer {token}"}, secret)
    operator = str(claims.get("sub") or "").strip()
    if not operator:
        raise Unauthorized("token names no operator (sub)")
    return Session(operator=operator[:200], expires_at=int(claims["exp"]), sid=secrets.token_urlsafe(16))


def seal(session: Session, secret: str) -> str:
    """The cookie value of a session."""
    payload = _b64(json.dumps({"op": session.operator, "exp": session.expires_at, "sid": session.sid}).encode())
    return f"{payload}.{_mac(secret, 'session:' + payload)}"


def unseal(value: str | None, secret: str, now: float | None = None) -> Session | None:
    """The session a cookie value carries; None when missing, forged, malformed or expired."""
    if not value or value.count(".") != 1:
        return None
    payload, mac = value.split(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, "session:" + payload).encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = Session(operator=str(data["op"]), expires_at=int(data["exp"]), sid=str(data["sid"]))
    except (ValueError, KeyError, TypeError):
        return None
    return session if session.seconds_left(now) > 0 else None


def csrf_token(secret: str, purpose: str, nonce: str) -> str:
    """The CSRF token of a session id (purpose 'session') or a sign-in nonce (purpose 'sign_in')."""
    return _mac(secret, f"csrf:{purpose}:{nonce}")


def csrf_ok(given: str | None, secret: str, purpose: str, nonce: str | None) -> bool:
    """True when `given` is the CSRF token of `nonce` (compared in constant time)."""
    if not given or not nonce:
        return False
    return hmac.compare_digest(given.encode(), csrf_token(secret, purpose, nonce).encode())


def new_nonce() -> str:
    return secrets.token_urlsafe(16)
