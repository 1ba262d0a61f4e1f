"""Stand-in for the Chatwoot application API endpoints the mirror calls, and
for the webhooks Chatwoot sends, shaped like Chatwoot's own code (v4.13+):

- REST answers carry `message_type` as an integer (0 incoming, 1 outgoing,
  2 activity, 3 template); webhooks carry its name (`Message#webhook_data`).
- `GET /contacts/search?q=` matches substrings of name, email, phone and
  identifier, newest first, 15 a page (`page=`); `POST /contacts/filter`
  matches exactly; `POST /contacts` answers 422 on a taken identifier,
  phone or email.
- `GET /conversations/{id}/messages` answers the latest 20 (`before=` the
  20 before an id, `after=` up to 100 after one), as `MessageFinder` does.
- Messages are created from JSON or multipart (`attachments[]`), by a user
  token (sender `User`) or an agent bot token (sender `AgentBot`, which may
  only create conversations and messages, toggle status and assign, as
  `AccessTokenAuthHelper::BOT_ACCESSIBLE_ENDPOINTS`). An agent-role user who
  opens a conversation gets it assigned to himself.
- Every created message and status change is delivered as a signed webhook
  (`message_created`, `conversation_status_changed`) to the configured sink,
  once, never retried; an API-inbox webhook that fails marks the message
  failed, as `Webhooks::Trigger` does.

It can be told to fail (`fail_next`, `fail_all`) or to hang (`hang`, until
`release`), to show that an outage never touches Julia's replies.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, quote

from app.devkit.standins.server import RecordedRequest, Reply, StandinServer, json_reply

logger = logging.getLogger(__name__)

_PATH = re.compile(r"^/api/v1/accounts/(?P<account>[^/]+)(?P<rest>/.*)$")
_BLOB = re.compile(r"^/rails/active_storage/blobs/(?P<id>\d+)/")
MESSAGE_TYPES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}
MESSAGE_TYPE_NAMES = {v: k for k, v in MESSAGE_TYPES.items()}
CONTACTS_PER_PAGE = 15
MESSAGES_PER_PAGE = 20
MESSAGES_AFTER_LIMIT = 100
# Who may do what with an agent bot token (controller, action).
BOT_ENDPOINTS = frozenset(
    {
        ("conversations", "create"),
        ("conversations", "toggle_status"),
        ("messages", "create"),
        ("assignments", "create"),
    }
)
BOT_REFUSED = {"error": "Access to this endpoint is not authorized for bots"}

# A webhook sink: (raw body, headers) -> HTTP status; raising counts as a failure.
WebhookSink = Callable[[bytes, dict[str, str]], int]


def file_type_of(content_type: str) -> str:
    """Chatwoot's attachment file_type for a MIME type."""
    major = content_type.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


class ChatwootStandin(StandinServer):
    """Fake Chatwoot: checks `api_access_token`, keeps contacts, conversations and messages."""

    def __init__(
        self,
        *,
        api_key: str = "dev-chatwoot-key",
        account_id: str = "1",
        inbox_id: int = 1,
        bot_token: str | None = None,
        agent_role: str = "agent",
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.api_key = api_key
        self.account_id = account_id
        self.inbox_id = inbox_id
        self.user = {"id": 7, "name": "Ana (equipe)", "role": agent_role, "email": "ana@example.com"}
        self.bot = {"id": 3, "name": "Julia"}
        self._tokens: dict[str, str] = {api_key: "user"}
        if bot_token:
            self._tokens[bot_token] = "bot"
        self._ids = itertools.count(1)
        self._contacts: dict[int, dict[str, Any]] = {}
        self._conversations: dict[int, dict[str, Any]] = {}
        self._blobs: dict[int, tuple[str, str, bytes]] = {}
        self._failures: deque[int] = deque()
        self._fail_all: int | None = None
        self._hanging = False
        self._released = threading.Event()
        self._sink: WebhookSink | None = None
        self._secret = ""
        self._webhook_kind = "api_inbox"
        self._outbox: queue.Queue[tuple[bytes, dict[str, Any]] | None] = queue.Queue()
        self._deliveries: list[dict[str, Any]] = []
        self._pending = 0
        self._deliverer: threading.Thread | None = None

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

    def deliver_webhooks(self, sink: WebhookSink | None, *, secret: str = "", kind: str = "api_inbox") -> None:
        """Send every event to `sink` (signed with `secret`); kind 'api_inbox' or 'account'."""
        with self._lock:
            self._sink, self._secret, self._webhook_kind = sink, secret, kind
            if sink is not None and self._deliverer is None:
                self._deliverer = threading.Thread(target=self._deliver_loop, name="chatwoot-webhooks", daemon=True)
                self._deliverer.start()

    def webhooks_idle(self) -> bool:
        """True when every event created so far was delivered (or failed)."""
        with self._lock:
            return self._pending == 0

    def deliveries(self) -> list[dict[str, Any]]:
        """Webhook deliveries, oldest first: {event, id, status, error}."""
        with self._lock:
            return [dict(d) for d in self._deliveries]

    def stop(self) -> None:
        self.release()
        if self._deliverer is not None:
            self._outbox.put(None)
            self._deliverer.join(timeout=10)
            self._deliverer = None
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

    def add_contact(self, *, name: str, phone_number: str | None = None, identifier: str | None = None) -> int:
        """A contact that exists in Chatwoot already (created by the team); returns its id."""
        with self._lock:
            reply = self._create_contact({"name": name, "phone_number": phone_number, "identifier": identifier})
        if reply.status != 200:
            raise ValueError(reply.body)
        return reply.body["payload"]["contact"]["id"]

    def agent_writes(
        self,
        conversation_id: int,
        content: str = "",
        *,
        attachments: list[tuple[str, str, bytes]] = (),
        private: bool = False,
    ) -> dict[str, Any]:
        """An agent writes in the Chatwoot UI (files as (name, content type, bytes)); the
        message is stored and its `message_created` webhook queued. Returns the message."""
        with self._lock:
            conv = self._conversations[conversation_id]
            message = self._store_message(
                conv,
                content=content or None,
                message_type="outgoing",
                private=private,
                attributes={},
                files=list(attachments),
                author=("user", self.user),
            )
            return self._rest_message(message)

    def agent_sets_status(self, conversation_id: int, status: str) -> None:
        """An agent changes the status in the Chatwoot UI (its webhook is queued)."""
        with self._lock:
            self._toggle_status(self._conversations[conversation_id], {"status": status}, ("bot", self.bot))

    # ------------------------------------------------------------------ inspection

    def conversations(self) -> list[dict[str, Any]]:
        """Conversations created, oldest first (copies; no messages)."""
        with self._lock:
            return [
                {k: v for k, v in json.loads(json.dumps(c)).items() if k != "messages"}
                for c in self._conversations.values()
            ]

    def contacts(self) -> list[dict[str, Any]]:
        """Contacts, oldest first (REST shape)."""
        with self._lock:
            return [self._contact_json(c) for c in self._contacts.values()]

    def messages(self, conversation_id: int, *, private: bool | None = None) -> list[dict[str, Any]]:
        """Messages of a conversation, oldest first, as the REST API shows them
        (integer `message_type`); `private` filters notes in or out."""
        with self._lock:
            conv = self._conversations.get(conversation_id)
            items = [self._rest_message(m) for m in conv["messages"]] if conv else []
        return [m for m in items if private is None or m["private"] == private]

    def blob(self, attachment_id: int) -> tuple[str, str, bytes]:
        """(file name, content type, bytes) of an uploaded attachment."""
        with self._lock:
            return self._blobs[attachment_id]

    def api_calls(self) -> list[RecordedRequest]:
        """Requests to the API (authorised or not)."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/api/")]

    # ------------------------------------------------------------------ routes

    def handle(self, request: RecordedRequest) -> Reply:
        blob = _BLOB.match(request.path)
        if blob is not None and request.method == "GET":
            with self._lock:
                found = self._blobs.get(int(blob["id"]))
            if found is None:
                return json_reply(404, {"error": "Not found"})
            return Reply(status=200, raw=found[2], content_type=found[1])
        match = _PATH.match(request.path)
        if match is None:
            return json_reply(404, {"error": "Not found"})
        who = self._tokens.get(request.headers.get("api_access_token", ""))
        if who is None:
            return json_reply(401, {"error": "Invalid Access Token"})
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
        rest = match["rest"].rstrip("/")
        parts = rest.strip("/").split("/")
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        endpoint = self._endpoint(request.method, parts)
        if who == "bot" and endpoint not in BOT_ENDPOINTS:
            return json_reply(401, BOT_REFUSED)
        author = ("bot", self.bot) if who == "bot" else ("user", self.user)
        body = request.json if isinstance(request.json, dict) else {}
        with self._lock:
            if endpoint == ("contacts", "search"):
                return self._search(query.get("q", ""), _page(query))
            if endpoint == ("contacts", "filter"):
                return self._filter(body.get("payload"), _page(query))
            if endpoint == ("contacts", "create"):
                return self._create_contact(body)
            if endpoint == ("contact_inboxes", "create"):
                return self._contact_inbox(int(parts[1]), body)
            if endpoint == ("conversations", "create"):
                return self._create_conversation(body)
            if len(parts) >= 2 and parts[0] == "conversations" and parts[1].isdigit():
                conv = self._conversations.get(int(parts[1]))
                if conv is None:
                    return json_reply(404, {"error": "Resource could not be found"})
                if endpoint == ("messages", "create"):
                    return self._create_message(conv, request, author)
                if endpoint == ("messages", "index"):
                    return self._list_messages(conv, query)
                if endpoint == ("conversations", "toggle_status"):
                    return self._toggle_status(conv, body, author)
                if endpoint == ("assignments", "create"):
                    return self._assign(conv, body)
        return json_reply(404, {"error": f"no route for {request.method} {request.path}"})

    @staticmethod
    def _endpoint(method: str, parts: list[str]) -> tuple[str, str] | None:
        if parts[:1] == ["contacts"]:
            if len(parts) == 2 and parts[1] in ("search", "filter"):
                return ("contacts", parts[1])
            if len(parts) == 1 and method == "POST":
                return ("contacts", "create")
            if len(parts) == 3 and parts[2] == "contact_inboxes" and method == "POST":
                return ("contact_inboxes", "create")
            return ("contacts", "other")
        if parts[:1] == ["conversations"]:
            if len(parts) == 1:
                return ("conversations", "create" if method == "POST" else "index")
            if len(parts) == 3 and parts[2] == "messages":
                return ("messages", "create" if method == "POST" else "index")
            if len(parts) == 3 and parts[2] in ("toggle_status", "assignments") and method == "POST":
                return ("conversations", "toggle_status") if parts[2] == "toggle_status" else ("assignments", "create")
            return ("conversations", "other")
        return None

    # ------------------------------------------------------------------ contacts

    def _search(self, q: str, page: int) -> Reply:
        needle = q.strip().lower()
        if not needle:
            return json_reply(422, {"error": "Specify search string with parameter q"})
        found = [
            c
            for c in reversed(self._contacts.values())
            if any(needle in (c.get(k) or "").lower() for k in ("name", "email", "phone_number", "identifier"))
        ]
        return self._contact_page(found, page)

    def _filter(self, conditions: Any, page: int) -> Reply:
        if not isinstance(conditions, list) or not conditions:
            return json_reply(422, {"error": "Invalid filter payload"})
        found = list(self._contacts.values())
        for condition in conditions:
            key = condition.get("attribute_key") if isinstance(condition, dict) else None
            if key not in ("identifier", "phone_number", "email", "name"):
                return json_reply(422, {"error": f"Invalid attribute key - [{key}]"})
            values = [str(v).lower() for v in condition.get("values") or []]
            operator = condition.get("filter_operator")
            if operator == "equal_to":
                found = [c for c in found if (c.get(key) or "").lower() in values]
            elif operator == "contains":
                found = [c for c in found if any(v in (c.get(key) or "").lower() for v in values)]
            else:
                return json_reply(422, {"error": f"Invalid operator. The allowed operators for {key} are [...]"})
        return self._contact_page(list(reversed(found)), page)

    def _contact_page(self, found: list[dict[str, Any]], page: int) -> Reply:
        start = (page - 1) * CONTACTS_PER_PAGE
        items = [self._contact_json(c) for c in found[start : start + CONTACTS_PER_PAGE]]
        return json_reply(200, {"meta": {"count": len(found), "current_page": page}, "payload": items})

    def _create_contact(self, body: dict[str, Any]) -> Reply:
        phone, identifier, email = body.get("phone_number"), body.get("identifier"), body.get("email")
        if phone and not re.fullmatch(r"\+[1-9]\d{1,14}", str(phone)):
            return json_reply(422, {"message": "Phone number should be in e164 format", "attributes": ["phone_number"]})
        taken = [
            (field, label)
            for field, label, value in (
                ("identifier", "Identifier", identifier),
                ("phone_number", "Phone number", phone),
                ("email", "Email", email),
            )
            if value and any((c.get(field) or "").lower() == str(value).lower() for c in self._contacts.values())
        ]
        if taken:
            message = ", ".join(f"{label} has already been taken" for _, label in taken)
            return json_reply(422, {"message": message, "attributes": [field for field, _ in taken]})
        contact_id = next(self._ids)
        inbox_id = body.get("inbox_id")
        contact = {
            "id": contact_id,
            "name": body.get("name") or "",
            "email": email,
            "phone_number": phone,
            "identifier": identifier,
            "inboxes": {inbox_id: f"src-{contact_id}-{inbox_id}"} if inbox_id else {},
            "created_at": int(time.time()),
        }
        self._contacts[contact_id] = contact
        inbox = self._contact_inbox_json(contact, inbox_id) if inbox_id else None
        return json_reply(200, {"payload": {"contact": self._contact_json(contact), "contact_inbox": inbox}})

    def _contact_inbox(self, contact_id: int, body: dict[str, Any]) -> Reply:
        contact = self._contacts.get(contact_id)
        if contact is None:
            return json_reply(404, {"error": "Resource could not be found"})
        inbox_id = body.get("inbox_id")
        contact["inboxes"].setdefault(inbox_id, f"src-{contact_id}-{inbox_id}")
        return json_reply(200, self._contact_inbox_json(contact, inbox_id))

    def _contact_json(self, contact: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": contact["id"],
            "name": contact["name"],
            "email": contact["email"],
            "phone_number": contact["phone_number"],
            "identifier": contact["identifier"],
            "additional_attributes": {},
            "custom_attributes": {},
            "availability_status": "offline",
            "thumbnail": "",
            "created_at": contact["created_at"],
            "last_activity_at": contact["created_at"],
            "contact_inboxes": [self._contact_inbox_json(contact, i) for i in contact["inboxes"]],
        }

    @staticmethod
    def _contact_inbox_json(contact: dict[str, Any], inbox_id: int) -> dict[str, Any]:
        return {"source_id": contact["inboxes"][inbox_id], "inbox": {"id": inbox_id, "channel_type": "Channel::Api"}}

    # ------------------------------------------------------------------ conversations

    def _create_conversation(self, body: dict[str, Any]) -> Reply:
        contact_id = body.get("contact_id")
        if contact_id not in self._contacts:
            return json_reply(422, {"message": "Contact can't be blank"})
        conversation_id = next(self._ids)
        conv = {
            "id": conversation_id,
            "inbox_id": body.get("inbox_id"),
            "contact_id": contact_id,
            "source_id": body.get("source_id"),
            "status": body.get("status", "open"),
            "status_history": [],
            "assignee_id": body.get("assignee_id"),
            "team_id": body.get("team_id"),
            "messages": [],
            "created_at": int(time.time()),
        }
        self._conversations[conversation_id] = conv
        return json_reply(200, self._conversation_json(conv))

    def _toggle_status(self, conv: dict[str, Any], body: dict[str, Any], author: tuple[str, dict[str, Any]]) -> Reply:
        before = conv["status"]
        status = body.get("status") or ("resolved" if before == "open" else "open")
        if status not in ("open", "resolved", "pending", "snoozed"):
            return json_reply(422, {"error": f"'{status}' is not a valid status"})
        conv["status"] = status
        conv["status_history"].append(status)
        # ConversationsController#toggle_status: an agent-role user who opens it gets it.
        if status == "open" and author[0] == "user" and author[1]["role"] == "agent":
            conv["assignee_id"] = author[1]["id"]
        if before != status:
            changed = [{"status": {"previous_value": before, "current_value": status}}]
            self._queue_webhook(
                {
                    **self._conversation_webhook(conv),
                    "event": "conversation_status_changed",
                    "changed_attributes": changed,
                }
            )
        return json_reply(
            200, {"meta": {}, "payload": {"success": True, "conversation_id": conv["id"], "current_status": status}}
        )

    def _assign(self, conv: dict[str, Any], body: dict[str, Any]) -> Reply:
        if "team_id" in body:
            conv["team_id"] = body["team_id"]
            return json_reply(200, {"id": body["team_id"], "name": f"team {body['team_id']}"})
        conv["assignee_id"] = body.get("assignee_id")
        return json_reply(200, {"id": conv["assignee_id"]} if conv["assignee_id"] else None)

    def _conversation_json(self, conv: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": conv["id"],
            "account_id": int(self.account_id) if self.account_id.isdigit() else self.account_id,
            "inbox_id": conv["inbox_id"],
            "status": conv["status"],
            "contact_inbox": {"source_id": conv["source_id"]},
            "meta": {
                "sender": self._contact_json(self._contacts[conv["contact_id"]]),
                "assignee": {"id": conv["assignee_id"]} if conv["assignee_id"] else None,
                "team": {"id": conv["team_id"]} if conv["team_id"] else None,
            },
            "created_at": conv["created_at"],
            "timestamp": conv["created_at"],
        }

    def _conversation_webhook(self, conv: dict[str, Any]) -> dict[str, Any]:
        return {
            **self._conversation_json(conv),
            "additional_attributes": {},
            "can_reply": True,
            "channel": "Channel::Api",
            "custom_attributes": {},
            "labels": [],
            "priority": None,
            "snoozed_until": None,
            "unread_count": 0,
            "account": {"id": self._account_int(), "name": "Revoluna"},
        }

    # ------------------------------------------------------------------ messages

    def _create_message(self, conv: dict[str, Any], request: RecordedRequest, author: tuple[str, Any]) -> Reply:
        content_type = request.headers.get("content-type", "")
        files: list[tuple[str, str, bytes]] = []
        if content_type.startswith("multipart/form-data"):
            body, files = _multipart(content_type, request.raw)
        else:
            body = request.json if isinstance(request.json, dict) else {}
        attributes = body.get("content_attributes") or {}
        if isinstance(attributes, str):
            attributes = json.loads(attributes or "{}")
        content = body.get("content") or None
        if not content and not files:
            return json_reply(422, {"message": "Content can't be blank"})
        message_type = body.get("message_type") or "outgoing"
        if message_type not in ("incoming", "outgoing"):
            return json_reply(422, {"message": f"'{message_type}' is not a valid message_type"})
        private = str(body.get("private", "false")).lower() in ("true", "1")
        message = self._store_message(
            conv,
            content=content,
            message_type=message_type,
            private=private,
            attributes=attributes,
            files=files,
            author=author,
        )
        return json_reply(200, self._rest_message(message))

    def _store_message(
        self,
        conv: dict[str, Any],
        *,
        content: str | None,
        message_type: str,
        private: bool,
        attributes: dict[str, Any],
        files: list[tuple[str, str, bytes]],
        author: tuple[str, Any],
    ) -> dict[str, Any]:
        message_id = next(self._ids)
        attachments = []
        for name, ctype, data in files:
            attachment_id = next(self._ids)
            self._blobs[attachment_id] = (name, ctype, data)
            attachments.append(
                {
                    "id": attachment_id,
                    "message_id": message_id,
                    "file_type": file_type_of(ctype),
                    "account_id": self._account_int(),
                    "extension": name.rsplit(".", 1)[-1] if "." in name else None,
                    "data_url": f"{self.url}/rails/active_storage/blobs/{attachment_id}/{quote(name)}",
                    "thumb_url": "",
                    "file_size": len(data),
                    "width": None,
                    "height": None,
                }
            )
        if message_type == "incoming":
            sender_type, sender = (
                "Contact",
                {**self._contact_json(self._contacts[conv["contact_id"]]), "type": "contact"},
            )
        elif author[0] == "bot":
            sender_type, sender = (
                "AgentBot",
                {"id": self.bot["id"], "name": self.bot["name"], "avatar_url": "", "type": "agent_bot"},
            )
        else:
            sender_type, sender = (
                "User",
                {
                    "id": self.user["id"],
                    "name": self.user["name"],
                    "available_name": self.user["name"],
                    "avatar_url": "",
                    "availability_status": "online",
                    "thumbnail": "",
                    "type": "user",
                },
            )
        message = {
            "id": message_id,
            "content": content,
            "message_type": message_type,
            "private": private,
            "content_attributes": attributes,
            "content_type": "text",
            "status": "sent",
            "source_id": None,
            "conversation_id": conv["id"],
            "inbox_id": conv["inbox_id"],
            "sender_type": sender_type,
            "sender_id": sender["id"],
            "sender": sender,
            "attachments": attachments,
            "created_at": int(time.time()),
        }
        conv["messages"].append(message)
        webhook = {
            "event": "message_created",
            "id": message_id,
            "content": content,
            "message_type": message_type,
            "private": private,
            "content_type": "text",
            "content_attributes": attributes,
            "additional_attributes": {},
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(message["created_at"])),
            "source_id": None,
            "sender": sender,
            "conversation": self._conversation_webhook(conv),
            "account": {"id": self._account_int(), "name": "Revoluna"},
            "inbox": {"id": conv["inbox_id"], "name": "Julia"},
        }
        if attachments:
            webhook["attachments"] = attachments
        self._queue_webhook(webhook, message)
        return message

    def _list_messages(self, conv: dict[str, Any], query: dict[str, str]) -> Reply:
        items = sorted(conv["messages"], key=lambda m: m["id"])
        if query.get("before", "").isdigit() and query.get("after", "").isdigit():
            items = [m for m in items if int(query["after"]) <= m["id"] < int(query["before"])][:1000]
        elif query.get("before", "").isdigit():
            items = [m for m in items if m["id"] < int(query["before"])][-MESSAGES_PER_PAGE:]
        elif query.get("after", "").isdigit():
            items = [m for m in items if m["id"] > int(query["after"])][:MESSAGES_AFTER_LIMIT]
        else:
            items = items[-MESSAGES_PER_PAGE:]
        meta = {
            "contact": self._contact_json(self._contacts[conv["contact_id"]]),
            "labels": [],
            "additional_attributes": {},
            "assignee": None,
            "agent_last_seen_at": None,
        }
        return json_reply(200, {"meta": meta, "payload": [self._rest_message(m) for m in items]})

    def _rest_message(self, message: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(message))
        out["message_type"] = MESSAGE_TYPES[message["message_type"]]
        return out

    def _account_int(self) -> int | str:
        return int(self.account_id) if self.account_id.isdigit() else self.account_id

    # ------------------------------------------------------------------ webhooks

    def _queue_webhook(self, body: dict[str, Any], message: dict[str, Any] | None = None) -> None:
        if self._sink is None:
            return
        self._pending += 1
        self._outbox.put((json.dumps(body).encode(), {"event": body["event"], "id": body["id"], "message": message}))

    def _deliver_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            raw, info = item
            with self._lock:
                sink, secret, kind = self._sink, self._secret, self._webhook_kind
            status, error = None, None
            try:
                headers = sign_webhook(secret, raw) if secret else {"content-type": "application/json"}
                status = sink(raw, headers) if sink is not None else None
            except Exception as exc:  # noqa: BLE001 - a failed delivery, as Chatwoot logs it
                error = f"{type(exc).__name__}: {exc}"
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


def _page(query: dict[str, str]) -> int:
    page = query.get("page", "1")
    return max(1, int(page)) if page.isdigit() else 1


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, Any], list[tuple[str, str, bytes]]]:
    """Fields and files of a multipart/form-data body."""
    parsed = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, Any] = {}
    files: list[tuple[str, str, bytes]] = []
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        data = part.get_payload(decode=True) or b""
        if filename is not None:
            files.append((filename, part.get_content_type(), data))
        elif name:
            fields[name] = data.decode()
    return fields, files


# ---------------------------------------------------------------------- webhooks


def message_created_event(
    *,
    conversation_id: int,
    message_id: int,
    content: str | None,
    message_type: str = "outgoing",
    private: bool = False,
    sender_type: str = "user",
    account_id: int = 1,
    inbox_id: int = 1,
    content_attributes: dict[str, Any] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `message_created` webhook body as Chatwoot sends it (`Message#webhook_data`)."""
    body: dict[str, Any] = {
        "event": "message_created",
        "id": message_id,
        "content": content,
        "message_type": message_type,
        "private": private,
        "content_type": "text",
        "content_attributes": content_attributes or {},
        "additional_attributes": {},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "source_id": None,
        "sender": {
            "id": 7,
            "name": "Ana (equipe)",
            "available_name": "Ana (equipe)",
            "avatar_url": "",
            "type": sender_type,
        },
        "conversation": {
            "id": conversation_id,
            "inbox_id": inbox_id,
            "status": "open",
            "channel": "Channel::Api",
            "can_reply": True,
            "contact_inbox": {"source_id": None},
            "meta": {"sender": {"type": "contact"}, "assignee": None, "team": None},
            "labels": [],
            "additional_attributes": {},
            "custom_attributes": {},
            "unread_count": 0,
        },
        "account": {"id": account_id, "name": "Revoluna"},
        "inbox": {"id": inbox_id, "name": "Julia"},
    }
    if attachments:
        body["attachments"] = attachments
    return body


def attachment_json(
    *, attachment_id: int, message_id: int, data_url: str, file_type: str = "image", file_size: int = 1000
) -> dict[str, Any]:
    """One attachment as a webhook carries it (`Attachment#push_event_data`)."""
    return {
        "id": attachment_id,
        "message_id": message_id,
        "file_type": file_type,
        "account_id": 1,
        "extension": data_url.rsplit(".", 1)[-1] if "." in data_url.rsplit("/", 1)[-1] else None,
        "data_url": data_url,
        "thumb_url": "",
        "file_size": file_size,
        "width": None,
        "height": None,
    }


def status_changed_event(*, conversation_id: int, status: str, account_id: int = 1) -> dict[str, Any]:
    """A `conversation_status_changed` webhook body."""
    return {
        "event": "conversation_status_changed",
        "id": conversation_id,
        "status": status,
        "inbox_id": 1,
        "channel": "Channel::Api",
        "meta": {"sender": {"type": "contact"}, "assignee": None, "team": None},
        "changed_attributes": [{"status": {"previous_value": "open", "current_value": status}}],
        "account": {"id": account_id, "name": "Revoluna"},
    }


def sign_webhook(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers Chatwoot adds to a signed webhook: sha256 HMAC of "{timestamp}.{body}"."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"x-chatwoot-timestamp": ts, "x-chatwoot-signature": f"sha256={digest}", "content-type": "application/json"}
