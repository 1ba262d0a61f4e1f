"""Stand-in for Slack: `chat.postMessage` (bot token) under /api and incoming
webhooks under /services, plus signing slash-command requests like Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from typing import Any
from urllib.parse import urlencode

from app.devkit.standins.server import HangingStandin, RecordedRequest, Reply, json_reply

WEBHOOK_PATH = "/services/T000/B000/hook"


class SlackStandin(HangingStandin):
    """Fake Slack that records posted texts; can fail or hang like Chatwoot's stand-in."""

    def __init__(self, *, bot_token: str = "xoxb-dev", port: int = 0) -> None:  # noqa: S107 - a fake token
        super().__init__(port=port)
        self.bot_token = bot_token
        self._posts: list[dict[str, Any]] = []
        self._failures: deque[int] = deque()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{WEBHOOK_PATH}"

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def stop(self) -> None:
        self.release()
        super().stop()

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._posts.clear()
            self._failures.clear()
        self.release()

    def posts(self) -> list[dict[str, Any]]:
        """Accepted posts, oldest first: {"via": "bot"|"webhook", "channel", "text"}."""
        with self._lock:
            return [dict(p) for p in self._posts]

    def texts(self) -> list[str]:
        return [p["text"] for p in self.posts()]

    def handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            status = self._failures.popleft() if self._failures else None
        if self._held():
            return json_reply(503, {"ok": False, "error": "service_unavailable"})
        body = request.json if isinstance(request.json, dict) else {}
        if request.method == "POST" and request.path == "/api/chat.postMessage":
            if status is not None:
                return json_reply(status, {"ok": False, "error": "internal_error"})
            if request.headers.get("authorization") != f"Bearer {self.bot_token}":
                return json_reply(200, {"ok": False, "error": "invalid_auth"})
            if not body.get("channel"):
                return json_reply(200, {"ok": False, "error": "channel_not_found"})
            self._record_post("bot", body)
            return json_reply(200, {"ok": True, "channel": body["channel"], "ts": f"{time.time():.6f}"})
        if request.method == "POST" and request.path == WEBHOOK_PATH:
            if status is not None:
                return Reply(status=status, raw=b"internal_error", content_type="text/plain")
            if not body.get("text"):
                return Reply(status=400, raw=b"no_text", content_type="text/plain")
            self._record_post("webhook", body)
            return Reply(status=200, raw=b"ok", content_type="text/plain")
        return json_reply(404, {"ok": False, "error": "unknown_method"})

    def _record_post(self, via: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._posts.append({"via": via, "channel": body.get("channel"), "text": body.get("text")})


def slash_command_body(text: str, *, command: str = "/julia", user_name: str = "marina") -> bytes:
    """A form-encoded slash command as Slack posts it."""
    return urlencode(
        {
            "token": "deprecated-verification-token",
            "team_id": "T000",
            "channel_id": "C000",
            "channel_name": "julia-ops",
            "user_id": "U000",
            "user_name": user_name,
            "command": command,
            "text": text,
            "response_url": "https://hooks.slack.com/commands/T000/1/abc",
            "trigger_id": "1.2.3",
        }
    ).encode()


def sign_request(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for a request body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={digest}",
        "content-type": "application/x-www-form-urlencoded",
    }
