"""Authentication of Evolution's webhook calls.

Evolution signs nothing; it can send a custom header or a JWT. We accept
`x-webhook-secret: <EVOLUTION_WEBHOOK_SECRET>` (compared in constant time)
or `Authorization: Bearer <HS256 JWT signed with that secret>`.
"""

from __future__ import annotations

import hmac
import warnings
from collections.abc import Mapping

import jwt


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
