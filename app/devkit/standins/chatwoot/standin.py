"""`ChatwootStandin`: the HTTP side of the fake Chatwoot — tokens, the routes
of the application API, injected failures — and what tests use to drive and
inspect it. The account's data lives in `model`, webhooks go out through
`delivery`."""

from __future__ import annotations

import json
import re
from collections import deque
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

from app.devkit.standins.chatwoot.delivery import WebhookDelivery, WebhookSink
from app.devkit.standins.chatwoot.model import Author, ChatwootAccount
from app.devkit.standins.server import HangingStandin, RecordedRequest, Reply, json_reply

_PATH = re.compile(r"^/api/v1/accounts/(?P<account>[^/]+)(?P<rest>/.*)$")
_BLOB = re.compile(r"^/rails/active_storage/blobs/(?P<id>\d+)/")
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


class ChatwootStandin(HangingStandin):
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
        self.inbox_id = inbox_id
        self._tokens: dict[str, str] = {api_key: "user"}
        if bot_token:
            self._tokens[bot_token] = "bot"
        self._failures: deque[int] = deque()
        self._fail_all: int | None = None
        self._webhooks = WebhookDelivery(self._lock)
        self.account = ChatwootAccount(
            account_id=account_id,
            user={"id": 7, "name": "Ana (equipe)", "role": agent_role, "email": "ana@example.com"},
            bot={"id": 3, "name": "Julia"},
            base_url=lambda: self.url,
            queue_webhook=self._webhooks.queue,
        )

    @property
    def account_id(self) -> str:
        return self.account.account_id

    @property
    def user(self) -> dict[str, Any]:
        return self.account.user

    @property
    def bot(self) -> dict[str, Any]:
        return self.account.bot

    # ------------------------------------------------------------------ control

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """Answer the next `times` API calls with `status`."""
        with self._lock:
            self._failures.extend([status] * times)

    def fail_all(self, status: int | None = 500) -> None:
        """Answer every API call with `status` until called with None."""
        with self._lock:
            self._fail_all = status

    def deliver_webhooks(self, sink: WebhookSink | None, *, secret: str = "", kind: str = "api_inbox") -> None:
        """Send every event to `sink` (signed with `secret`); kind 'api_inbox' or 'account'."""
        self._webhooks.configure(sink, secret=secret, kind=kind)

    def webhooks_idle(self) -> bool:
        """True when every event created so far was delivered (or failed)."""
        return self._webhooks.idle()

    def deliveries(self) -> list[dict[str, Any]]:
        """Webhook deliveries, oldest first: {event, id, status, error}."""
        return self._webhooks.deliveries()

    def stop(self) -> None:
        self.release()
        self._webhooks.stop()
        super().stop()

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self.account.contacts.clear()
            self.account.conversations.clear()
            self._failures.clear()
            self._fail_all = None
        self.release()

    def delete_conversation(self, conversation_id: int) -> None:
        """Forget a conversation, as an agent deleting it in Chatwoot would."""
        with self._lock:
            self.account.conversations.pop(conversation_id, None)

    def add_contact(self, *, name: str, phone_number: str | None = None, identifier: str | None = None) -> int:
        """A contact that exists in Chatwoot already (created by the team); returns its id."""
        with self._lock:
            reply = self.account.create_contact({"name": name, "phone_number": phone_number, "identifier": identifier})
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
            message = self.account.store_message(
                self.account.conversations[conversation_id],
                content=content or None,
                message_type="outgoing",
                private=private,
                attributes={},
                files=list(attachments),
                author=("user", self.user),
            )
            return self.account.rest_message(message)

    def agent_sets_status(self, conversation_id: int, status: str) -> None:
        """An agent changes the status in the Chatwoot UI (its webhook is queued)."""
        with self._lock:
            conv = self.account.conversations[conversation_id]
            self.account.toggle_status(conv, {"status": status}, ("bot", self.bot))

    # ------------------------------------------------------------------ inspection

    def conversations(self) -> list[dict[str, Any]]:
        """Conversations created, oldest first (copies; no messages)."""
        with self._lock:
            return [
                {k: v for k, v in json.loads(json.dumps(c)).items() if k != "messages"}
                for c in self.account.conversations.values()
            ]

    def contacts(self) -> list[dict[str, Any]]:
        """Contacts, oldest first (REST shape)."""
        with self._lock:
            return [self.account.contact_json(c) for c in self.account.contacts.values()]

    def messages(self, conversation_id: int, *, private: bool | None = None) -> list[dict[str, Any]]:
        """Messages of a conversation, oldest first, as the REST API shows them
        (integer `message_type`); `private` filters notes in or out."""
        with self._lock:
            conv = self.account.conversations.get(conversation_id)
            items = [self.account.rest_message(m) for m in conv["messages"]] if conv else []
        return [m for m in items if private is None or m["private"] == private]

    def blob(self, attachment_id: int) -> tuple[str, str, bytes]:
        """(file name, content type, bytes) of an uploaded attachment."""
        with self._lock:
            return self.account.blobs[attachment_id]

    def api_calls(self) -> list[RecordedRequest]:
        """Requests to the API (authorised or not)."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/api/")]

    # ------------------------------------------------------------------ routes

    def handle(self, request: RecordedRequest) -> Reply:
        blob = _BLOB.match(request.path)
        if blob is not None and request.method == "GET":
            return self._blob(int(blob["id"]))
        match = _PATH.match(request.path)
        if match is None:
            return json_reply(404, {"error": "Not found"})
        who = self._tokens.get(request.headers.get("api_access_token", ""))
        if who is None:
            return json_reply(401, {"error": "Invalid Access Token"})
        injected = self._injected_failure()
        if injected is not None:
            return injected
        if match["account"] != self.account_id:
            return json_reply(404, {"error": "Account not found"})
        parts = match["rest"].rstrip("/").strip("/").split("/")
        endpoint = _endpoint(request.method, parts)
        if who == "bot" and endpoint not in BOT_ENDPOINTS:
            return json_reply(401, BOT_REFUSED)
        author: Author = ("bot", self.bot) if who == "bot" else ("user", self.user)
        with self._lock:
            reply = self._route(request, endpoint, parts, author)
        return reply or json_reply(404, {"error": f"no route for {request.method} {request.path}"})

    def _blob(self, attachment_id: int) -> Reply:
        with self._lock:
            found = self.account.blobs.get(attachment_id)
        if found is None:
            return json_reply(404, {"error": "Not found"})
        return Reply(status=200, raw=found[2], content_type=found[1])

    def _injected_failure(self) -> Reply | None:
        """The answer `fail_next`, `fail_all` or `hang` asked for, if any."""
        with self._lock:
            status = self._failures.popleft() if self._failures else self._fail_all
        if self._held():
            return json_reply(503, {"error": "Service Unavailable"})
        if status is not None:
            return json_reply(status, {"error": "Internal Server Error"})
        return None

    def _route(
        self, request: RecordedRequest, endpoint: tuple[str, str] | None, parts: list[str], author: Author
    ) -> Reply | None:
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        body = request.json if isinstance(request.json, dict) else {}
        account = self.account
        if endpoint == ("contacts", "search"):
            return account.search(query.get("q", ""), _page(query))
        if endpoint == ("contacts", "filter"):
            return account.filter(body.get("payload"), _page(query))
        if endpoint == ("contacts", "create"):
            return account.create_contact(body)
        if endpoint == ("contact_inboxes", "create"):
            return account.contact_inbox(int(parts[1]), body)
        if endpoint == ("conversations", "create"):
            return account.create_conversation(body)
        if len(parts) < 2 or parts[0] != "conversations" or not parts[1].isdigit():
            return None
        conv = account.conversations.get(int(parts[1]))
        if conv is None:
            return json_reply(404, {"error": "Resource could not be found"})
        if endpoint == ("messages", "create"):
            return self._create_message(conv, request, author)
        if endpoint == ("messages", "index"):
            return account.list_messages(conv, query)
        if endpoint == ("conversations", "toggle_status"):
            return account.toggle_status(conv, body, author)
        if endpoint == ("assignments", "create"):
            return account.assign(conv, body)
        return None

    def _create_message(self, conv: dict[str, Any], request: RecordedRequest, author: Author) -> Reply:
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
        message = self.account.store_message(
            conv,
            content=content,
            message_type=message_type,
            private=private,
            attributes=attributes,
            files=files,
            author=author,
        )
        return json_reply(200, self.account.rest_message(message))


def _endpoint(method: str, parts: list[str]) -> tuple[str, str] | None:
    """(controller, action) of an API path below the account, as Chatwoot's routes name them."""
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
