"""The stand-in's webhook delivery: each event sent once, in order, on a
thread of its own, never retried; an API inbox's failed `message_created`
marks its message failed, as `Webhooks::Trigger` does."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from typing import Any

from app.devkit.standins.chatwoot.events import sign_webhook

# A webhook sink: (raw body, headers) -> HTTP status; raising counts as a failure.
WebhookSink = Callable[[bytes, dict[str, str]], int]


class WebhookDelivery:
    """Queues events and delivers them to a sink; shares the stand-in's lock (messages are its state)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._sink: WebhookSink | None = None
        self._secret = ""
        self._kind = "api_inbox"
        self._outbox: queue.Queue[tuple[bytes, dict[str, Any]] | None] = queue.Queue()
        self._deliveries: list[dict[str, Any]] = []
        self._pending = 0
        self._thread: threading.Thread | None = None

    def configure(self, sink: WebhookSink | None, *, secret: str, kind: str) -> None:
        """Deliver to `sink` from now on, signed with `secret`; starts the delivery thread once."""
        with self._lock:
            self._sink, self._secret, self._kind = sink, secret, kind
            if sink is not None and self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="chatwoot-webhooks", daemon=True)
                self._thread.start()

    def idle(self) -> bool:
        with self._lock:
            return self._pending == 0

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self._deliveries]

    def stop(self) -> None:
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def queue(self, body: dict[str, Any], message: dict[str, Any] | None = None) -> None:
        """Queue one event (nothing without a sink); `message` is the stored message it is about."""
        if self._sink is None:
            return
        self._pending += 1
        self._outbox.put((json.dumps(body).encode(), {"event": body["event"], "id": body["id"], "message": message}))

    def _send(self, raw: bytes) -> tuple[int | None, str | None, str]:
        with self._lock:
            sink, secret, kind = self._sink, self._secret, self._kind
        status, error = None, None
        try:
            headers = sign_webhook(secret, raw) if secret else {"content-type": "application/json"}
            status = sink(raw, headers) if sink is not None else None
        except Exception as exc:  # noqa: BLE001 - a failed delivery, as Chatwoot logs it
            error = f"{type(exc).__name__}: {exc}"
        return status, error, kind

    def _loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            raw, info = item
            status, error, kind = self._send(raw)
            failed = error is not None or status is None or status >= 300
            with self._lock:
                message = info["message"]
                # Webhooks::Trigger: only an API inbox's message_created marks the message failed.
                if failed and message is not None and kind == "api_inbox":
                    message["status"] = "failed"
                    message["content_attributes"] = {
                        **message["content_attributes"],
                        "external_error": error or f"{status} Service Unavailable",
                    }
                self._deliveries.append({"event": info["event"], "id": info["id"], "status": status, "error": error})
                self._pending -= 1
