"""The stand-in's in-memory Chatwoot account: contacts, conversations,
messages and uploaded files, answered in Chatwoot's REST shapes. Every method
runs under the stand-in's lock."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from app.devkit.standins.chatwoot.events import webhook_time
from app.devkit.standins.server import Reply, json_reply

MESSAGE_TYPES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}
MESSAGE_TYPE_NAMES = {v: k for k, v in MESSAGE_TYPES.items()}
CONTACTS_PER_PAGE = 15
MESSAGES_PER_PAGE = 20
MESSAGES_AFTER_LIMIT = 100

# Who wrote something: ("user", user) or ("bot", bot).
Author = tuple[str, dict[str, Any]]
# Queue a webhook body, with the stored message it is about.
QueueWebhook = Callable[[dict[str, Any], "dict[str, Any] | None"], None]


def file_type_of(content_type: str) -> str:
    """Chatwoot's attachment file_type for a MIME type."""
    major = content_type.split("/", 1)[0]
    return major if major in ("image", "audio", "video") else "file"


class ChatwootAccount:
    """One Chatwoot account's data; `base_url` gives the stand-in's URL (for attachment links)."""

    def __init__(
        self,
        *,
        account_id: str,
        user: dict[str, Any],
        bot: dict[str, Any],
        base_url: Callable[[], str],
        queue_webhook: QueueWebhook,
    ) -> None:
        self.account_id = account_id
        self.user = user
        self.bot = bot
        self._base_url = base_url
        self._queue_webhook = queue_webhook
        self.ids = itertools.count(1)
        self.contacts: dict[int, dict[str, Any]] = {}
        self.conversations: dict[int, dict[str, Any]] = {}
        self.blobs: dict[int, tuple[str, str, bytes]] = {}

    def account_int(self) -> int | str:
        return int(self.account_id) if self.account_id.isdigit() else self.account_id

    # ------------------------------------------------------------------ contacts

    def search(self, q: str, page: int) -> Reply:
        needle = q.strip().lower()
        if not needle:
            return json_reply(422, {"error": "Specify search string with parameter q"})
        found = [
            c
            for c in reversed(self.contacts.values())
            if any(needle in (c.get(k) or "").lower() for k in ("name", "email", "phone_number", "identifier"))
        ]
        return self._contact_page(found, page)

    def filter(self, conditions: Any, page: int) -> Reply:
        if not isinstance(conditions, list) or not conditions:
            return json_reply(422, {"error": "Invalid filter payload"})
        found = list(self.contacts.values())
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
        items = [self.contact_json(c) for c in found[start : start + CONTACTS_PER_PAGE]]
        return json_reply(200, {"meta": {"count": len(found), "current_page": page}, "payload": items})

    def create_contact(self, body: dict[str, Any]) -> Reply:
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
            if value and any((c.get(field) or "").lower() == str(value).lower() for c in self.contacts.values())
        ]
        if taken:
            message = ", ".join(f"{label} has already been taken" for _, label in taken)
            return json_reply(422, {"message": message, "attributes": [field for field, _ in taken]})
        contact_id = next(self.ids)
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
        self.contacts[contact_id] = contact
        inbox = self._contact_inbox_json(contact, inbox_id) if inbox_id else None
        return json_reply(200, {"payload": {"contact": self.contact_json(contact), "contact_inbox": inbox}})

    def contact_inbox(self, contact_id: int, body: dict[str, Any]) -> Reply:
        contact = self.contacts.get(contact_id)
        if contact is None:
            return json_reply(404, {"error": "Resource could not be found"})
        inbox_id = body.get("inbox_id")
        contact["inboxes"].setdefault(inbox_id, f"src-{contact_id}-{inbox_id}")
        return json_reply(200, self._contact_inbox_json(contact, inbox_id))

    def contact_json(self, contact: dict[str, Any]) -> dict[str, Any]:
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

    def create_conversation(self, body: dict[str, Any]) -> Reply:
        contact_id = body.get("contact_id")
        if contact_id not in self.contacts:
            return json_reply(422, {"message": "Contact can't be blank"})
        conversation_id = next(self.ids)
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
        self.conversations[conversation_id] = conv
        return json_reply(200, self._conversation_json(conv))

    def toggle_status(self, conv: dict[str, Any], body: dict[str, Any], author: Author) -> Reply:
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
                },
                None,
            )
        return json_reply(
            200, {"meta": {}, "payload": {"success": True, "conversation_id": conv["id"], "current_status": status}}
        )

    def assign(self, conv: dict[str, Any], body: dict[str, Any]) -> Reply:
        if "team_id" in body:
            conv["team_id"] = body["team_id"]
            return json_reply(200, {"id": body["team_id"], "name": f"team {body['team_id']}"})
        conv["assignee_id"] = body.get("assignee_id")
        return json_reply(200, {"id": conv["assignee_id"]} if conv["assignee_id"] else None)

    def _conversation_json(self, conv: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": conv["id"],
            "account_id": self.account_int(),
            "inbox_id": conv["inbox_id"],
            "status": conv["status"],
            "contact_inbox": {"source_id": conv["source_id"]},
            "meta": {
                "sender": self.contact_json(self.contacts[conv["contact_id"]]),
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
            "account": {"id": self.account_int(), "name": "Revoluna"},
        }

    # ------------------------------------------------------------------ messages

    def _attachments(self, message_id: int, files: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
        """Keep the uploaded files and describe them as `Attachment#push_event_data` does."""
        attachments = []
        for name, ctype, data in files:
            attachment_id = next(self.ids)
            self.blobs[attachment_id] = (name, ctype, data)
            attachments.append(
                {
                    "id": attachment_id,
                    "message_id": message_id,
                    "file_type": file_type_of(ctype),
                    "account_id": self.account_int(),
                    "extension": name.rsplit(".", 1)[-1] if "." in name else None,
                    "data_url": f"{self._base_url()}/rails/active_storage/blobs/{attachment_id}/{quote(name)}",
                    "thumb_url": "",
                    "file_size": len(data),
                    "width": None,
                    "height": None,
                }
            )
        return attachments

    def _sender(self, conv: dict[str, Any], message_type: str, author: Author) -> tuple[str, dict[str, Any]]:
        """(sender_type, sender): the contact for an incoming message, else the bot or the user who wrote it."""
        if message_type == "incoming":
            return "Contact", {**self.contact_json(self.contacts[conv["contact_id"]]), "type": "contact"}
        if author[0] == "bot":
            return "AgentBot", {"id": self.bot["id"], "name": self.bot["name"], "avatar_url": "", "type": "agent_bot"}
        return "User", {
            "id": self.user["id"],
            "name": self.user["name"],
            "available_name": self.user["name"],
            "avatar_url": "",
            "availability_status": "online",
            "thumbnail": "",
            "type": "user",
        }

    def _message_webhook(self, conv: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        """The `message_created` body for a stored message (`Message#webhook_data`)."""
        webhook = {
            "event": "message_created",
            "id": message["id"],
            "content": message["content"],
            "message_type": message["message_type"],
            "private": message["private"],
            "content_type": "text",
            "content_attributes": message["content_attributes"],
            "additional_attributes": {},
            "created_at": webhook_time(message["created_at"]),
            "source_id": None,
            "sender": message["sender"],
            "conversation": self._conversation_webhook(conv),
            "account": {"id": self.account_int(), "name": "Revoluna"},
            "inbox": {"id": conv["inbox_id"], "name": "Julia"},
        }
        if message["attachments"]:
            webhook["attachments"] = message["attachments"]
        return webhook

    def store_message(
        self,
        conv: dict[str, Any],
        *,
        content: str | None,
        message_type: str,
        private: bool,
        attributes: dict[str, Any],
        files: list[tuple[str, str, bytes]],
        author: Author,
    ) -> dict[str, Any]:
        """Store a message with its files and queue its `message_created` webhook; returns the stored message."""
        message_id = next(self.ids)
        attachments = self._attachments(message_id, files)
        sender_type, sender = self._sender(conv, message_type, author)
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
        self._queue_webhook(self._message_webhook(conv, message), message)
        return message

    def list_messages(self, conv: dict[str, Any], query: dict[str, str]) -> Reply:
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
            "contact": self.contact_json(self.contacts[conv["contact_id"]]),
            "labels": [],
            "additional_attributes": {},
            "assignee": None,
            "agent_last_seen_at": None,
        }
        return json_reply(200, {"meta": meta, "payload": [self.rest_message(m) for m in items]})

    @staticmethod
    def rest_message(message: dict[str, Any]) -> dict[str, Any]:
        """A stored message as the REST API shows it (integer `message_type`)."""
        out = json.loads(json.dumps(message))
        out["message_type"] = MESSAGE_TYPES[message["message_type"]]
        return out
