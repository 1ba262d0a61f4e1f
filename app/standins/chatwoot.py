"""Stand-in for the Chatwoot application API endpoints the mirror calls,
plus builders of the webhook bodies Chatwoot sends (signed like Chatwoot).

It can be told to fail (`fail_next`, `fail_all`) or to hang (`hang`, until
`release`), to show that an outage never touches Julia's replies.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from app.standins.server import RecordedRequest, Reply, StandinServer, json_reply

_PATH = re.compile(r"^/api/v1/accounts/(?P<account>[^/]+)(?P<rest>/.*)$")


class ChatwootStandin(StandinServer):
    """Fake Chatwoot: checks `api_access_token`, keeps contacts, conversations and messages."""

    def __init__(self, *, api_key: str = "dev-chatwoot-key", account_id: str = "1", port: int = 0) -> None:
        super().__init__(port=port)
        self.api_key = api_key
        self.account_id = account_id
        self._ids = itertools.count(1)
        self._contacts: dict[int, dict[str, Any]] = {}
        self._conversations: dict[int, dict[str, Any]] = {}
        self._failures: deque[int] = deque()
        self._fail_all: int | None = None
        self._hanging = False
        self._released = threading.Event()

    # ------------------------------------------------------------------ control

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` API calls with `status`."""
        with self._lock:
            self._failures.extend([status] * times)

    def fail_all(self, status: int | None = 500) -> None:
        """Answer every API call with `status` until called with None."""
        with self._lock:
            self._fail_all = status

    def hang(self) -> None:
        """Hold every API call open until `release()` (then answer 503)."""
        with self._lock:
            self._hanging = True
            self._released.clear()

    def release(self) -> None:
        """Stop hanging; held calls return 503, later ones work."""
        with self._lock:
            self._hanging = False
            self._released.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._contacts.clear()
            self._conversations.clear()
            self._failures.clear()
            self._fail_all = None
        self.release()

    def delete_conversation(self, conversation_id: int) -> None:
        """Forget a conversation, as an agent deleting it in Chatwoot would."""
        with self._lock:
            self._conversations.pop(conversation_id, None)

    # ------------------------------------------------------------------ inspection

    def conversations(self) -> list[dict[str, Any]]:
        """Conversations created, oldest first (copies)."""
        with self._lock:
            return [json.loads(json.dumps(c)) for c in self._conversations.values()]

    def messages(self, conversation_id: int, *, private: bool | None = None) -> list[dict[str, Any]]:
        """Messages of a conversation, oldest first; `private` filters notes in or out."""
        with self._lock:
            conv = self._conversations.get(conversation_id)
            items = [dict(m) for m in conv["messages"]] if conv else []
        return [m for m in items if private is None or m["private"] == private]

    def api_calls(self) -> list[RecordedRequest]:
        """Requests to the API (authorised or not)."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/api/")]

    # ------------------------------------------------------------------ routes

    def handle(self, request: RecordedRequest) -> Reply:
        match = _PATH.match(request.path)
        if match is None:
            return json_reply(404, {"error": "Not found"})
        if request.headers.get("api_access_token") != self.api_key:
            return json_reply(401, {"error": "You need to sign in or sign up before continuing."})
        with self._lock:
            status = self._failures.popleft() if self._failures else self._fail_all
            hanging = self._hanging
        if hanging:
            self._released.wait(timeout=60)
            return json_reply(503, {"error": "Service Unavailable"})
        if status is not None:
            return json_reply(status, {"error": "Internal Server Error"})
        if match["account"] != self.account_id:
            return json_reply(404, {"error": "Account not found"})
        body = request.json if isinstance(request.json, dict) else {}
        rest = match["rest"].rstrip("/")
        parts = rest.strip("/").split("/")
        with self._lock:
            if request.method == "GET" and rest == "/contacts/search":
                return self._search(parse_qs(request.query).get("q", [""])[0])
            if request.method == "POST" and rest == "/contacts":
                return self._create_contact(body)
            if request.method == "POST" and len(parts) == 3 and parts[::2] == ["contacts", "contact_inboxes"]:
                return self._contact_inbox(int(parts[1]), body)
            if request.method == "POST" and rest == "/conversations":
                return self._create_conversation(body)
            if len(parts) == 3 and parts[0] == "conversations" and parts[1].isdigit():
                conv = self._conversations.get(int(parts[1]))
                if conv is None:
                    return json_reply(404, {"error": "Resource could not be found"})
                if parts[2] == "messages" and request.method == "POST":
                    return self._create_message(conv, body)
                if parts[2] == "messages" and request.method == "GET":
                    return json_reply(200, {"meta": {}, "payload": [dict(m) for m in conv["messages"]]})
                if parts[2] == "toggle_status" and request.method == "POST":
                    conv["status"] = body.get("status", "open")
                    conv["status_history"].append(conv["status"])
                    return json_reply(200, {"payload": {"success": True, "current_status": conv["status"]}})
        return json_reply(404, {"error": f"no route for {request.method} {request.path}"})

    def _search(self, q: str) -> Reply:
        found = [
            self._contact_json(c)
            for c in self._contacts.values()
            if q and (c.get("phone_number") == q or c.get("identifier") == q or q in (c.get("name") or ""))
        ]
        return json_reply(200, {"meta": {"count": len(found)}, "payload": found})

    def _create_contact(self, body: dict[str, Any]) -> Reply:
        phone = body.get("phone_number")
        if phone and any(c.get("phone_number") == phone for c in self._contacts.values()):
            return json_reply(422, {"message": "Phone number has already been taken"})
        contact_id = next(self._ids)
        inbox_id = body.get("inbox_id")
        contact = {
            "id": contact_id,
            "name": body.get("name"),
            "phone_number": phone,
            "identifier": body.get("identifier"),
            "inboxes": {inbox_id: f"src-{contact_id}-{inbox_id}"} if inbox_id else {},
        }
        self._contacts[contact_id] = contact
        inbox = {"source_id": contact["inboxes"][inbox_id], "inbox": {"id": inbox_id}} if inbox_id else None
        return json_reply(200, {"payload": {"contact": self._contact_json(contact), "contact_inbox": inbox}})

    def _contact_inbox(self, contact_id: int, body: dict[str, Any]) -> Reply:
        contact = self._contacts.get(contact_id)
        if contact is None:
            return json_reply(404, {"error": "Resource could not be found"})
        inbox_id = body.get("inbox_id")
        source = contact["inboxes"].setdefault(inbox_id, f"src-{contact_id}-{inbox_id}")
        return json_reply(200, {"source_id": source, "inbox": {"id": inbox_id}})

    def _create_conversation(self, body: dict[str, Any]) -> Reply:
        contact_id = body.get("contact_id")
        if contact_id not in self._contacts:
            return json_reply(422, {"message": "Contact can't be blank"})
        conversation_id = next(self._ids)
        self._conversations[conversation_id] = {
            "id": conversation_id,
            "inbox_id": body.get("inbox_id"),
            "contact_id": contact_id,
            "source_id": body.get("source_id"),
            "status": body.get("status", "open"),
            "status_history": [],
            "messages": [],
        }
        return json_reply(200, {"id": conversation_id, "inbox_id": body.get("inbox_id"), "status": "open"})

    def _create_message(self, conv: dict[str, Any], body: dict[str, Any]) -> Reply:
        if not body.get("content"):
            return json_reply(422, {"message": "Content can't be blank"})
        message = {
            "id": next(self._ids),
            "content": body["content"],
            "message_type": body.get("message_type", "outgoing"),
            "private": bool(body.get("private", False)),
            "content_attributes": body.get("content_attributes") or {},
            "conversation_id": conv["id"],
            "created_at": int(time.time()),
        }
        conv["messages"].append(message)
        return json_reply(200, dict(message))

    def _contact_json(self, contact: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": contact["id"],
            "name": contact["name"],
            "phone_number": contact["phone_number"],
            "identifier": contact["identifier"],
            "contact_inboxes": [{"source_id": s, "inbox": {"id": i}} for i, s in contact["inboxes"].items()],
        }


# ---------------------------------------------------------------------- webhooks


def message_created_event(
    *,
    conversation_id: int,
    message_id: int,
    content: str,
    message_type: str = "outgoing",
    private: bool = False,
    sender_type: str = "user",
    account_id: int = 1,
    content_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `message_created` webhook body as Chatwoot sends it."""
    return {
        "event": "message_created",
        "id": message_id,
        "content": content,
        "message_type": message_type,
        "private": private,
        "content_type": "text",
        "content_attributes": content_attributes or {},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "source_id": None,
        "sender": {"id": 7, "name": "Ana (equipe)", "type": sender_type},
        "conversation": {"id": conversation_id, "status": "open", "inbox_id": 1},
        "account": {"id": account_id, "name": "Revoluna"},
        "inbox": {"id": 1, "name": "Julia"},
    }


def status_changed_event(*, conversation_id: int, status: str, account_id: int = 1) -> dict[str, Any]:
    """A `conversation_status_changed` webhook body."""
    return {
        "event": "conversation_status_changed",
        "id": conversation_id,
        "status": status,
        "inbox_id": 1,
        "changed_attributes": [{"status": {"previous_value": "open", "current_value": status}}],
        "account": {"id": account_id, "name": "Revoluna"},
    }


def sign_webhook(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Chatwoot adds to a signed webhook: sha256 HMAC of "{timestamp}.{body}"."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"x-chatwoot-timestamp": ts, "x-chatwoot-signature": f"sha256={digest}", "content-type": "application/json"}
