"""Webhook bodies as Chatwoot sends them, and their signature — for tests that
post webhooks to Julia without the stand-in, and for the stand-in's own
deliveries."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any


def webhook_time(epoch: float | None = None) -> str:
    """A webhook's `created_at`: UTC, milliseconds, as Rails renders it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


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
        "created_at": webhook_time(),
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
