"""Chatwoot webhook bodies, read without I/O: the signature check
(`X-Chatwoot-Signature: sha256=<hex>`, HMAC-SHA256 of
"{X-Chatwoot-Timestamp}.{raw body}") and `parse_event`, which turns a body
into an agent's message (text converted from Markdown, attachments as media
sends, refusals named), a resolution, or an ignored event with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from app.core.errors import BadSignature, InvalidEvent
from app.events.whatsapp_format import markdown_to_whatsapp

# The content attribute that marks a Chatwoot message as Julia's own mirror
# of an interacao (so its webhook is not sent back to the doctor).
MARKER = "julia_interacao_id"
SIGNATURE_WINDOW_SECONDS = 300
MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
# Chatwoot's attachment file_type -> Evolution's sendMedia mediatype, and
# WhatsApp's size limit for it.
MEDIA_TYPES = {"image": "image", "video": "video", "audio": "audio", "file": "document"}
MEDIA_LIMITS = {
    "image": 5 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "document": 100 * 1024 * 1024,
}


@dataclass(frozen=True, kw_only=True)
class Attachment:
    mediatype: str  # image, video, audio, document (Evolution's sendMedia)
    url: str
    mimetype: str | None
    file_name: str | None

    def to_json(self) -> dict[str, Any]:
        return {"mediatype": self.mediatype, "media": self.url, "mimetype": self.mimetype, "file_name": self.file_name}


@dataclass(frozen=True, kw_only=True)
class AgentMessage:
    conversation_id: int
    message_id: int
    content: str
    attachments: tuple[Attachment, ...] = ()
    refused: tuple[str, ...] = ()  # attachments that cannot go to WhatsApp, and why


@dataclass(frozen=True, kw_only=True)
class Resolved:
    conversation_id: int


@dataclass(frozen=True, kw_only=True)
class Ignored:
    event: str
    reason: str


def verify_signature(secret: str, headers: Mapping[str, str], raw: bytes, *, now: float | None = None) -> None:
    """Check Chatwoot's signature in constant time; raise BadSignature with a reason."""
    signature = headers.get("x-chatwoot-signature", "")
    timestamp = headers.get("x-chatwoot-timestamp", "")
    if not signature or not timestamp:
        raise BadSignature("missing X-Chatwoot-Signature or X-Chatwoot-Timestamp")
    if not timestamp.isdecimal():
        raise BadSignature("X-Chatwoot-Timestamp is not a unix time")
    if abs((time.time() if now is None else now) - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        raise BadSignature("X-Chatwoot-Timestamp is more than 5 minutes away")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignature("X-Chatwoot-Signature does not match")


def _int(value: Any) -> int | None:
    """A positive id that fits a bigint, else None."""
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value < 2**63 else None


def parse_event(body: Any, *, account_id: str = "", inbox_id: str = "") -> AgentMessage | Resolved | Ignored:
    """Read a webhook body; raise InvalidEvent when it is not a Chatwoot event."""
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        raise InvalidEvent("no 'event'")
    event = body["event"]
    account = _int((body.get("account") or {}).get("id")) if isinstance(body.get("account"), dict) else None
    if account_id and account is not None and str(account) != account_id:
        return Ignored(event=event, reason="another account")
    if event == "conversation_status_changed":
        conversation_id = _int(body.get("id"))
        if conversation_id is None:
            raise InvalidEvent("conversation_status_changed without a conversation id")
        if body.get("status") != "resolved":
            return Ignored(event=event, reason=f"status {body.get('status')!r}")
        return Resolved(conversation_id=conversation_id)
    if event != "message_created":
        return Ignored(event=event, reason="not handled")
    conversation = body.get("conversation") if isinstance(body.get("conversation"), dict) else {}
    conversation_id, message_id = _int(conversation.get("id")), _int(body.get("id"))
    if conversation_id is None or message_id is None:
        raise InvalidEvent("message_created without message or conversation id")
    inbox = _int((body.get("inbox") or {}).get("id")) if isinstance(body.get("inbox"), dict) else None
    inbox = inbox if inbox is not None else _int(conversation.get("inbox_id"))
    message_type = body.get("message_type")
    message_type = MESSAGE_TYPES.get(message_type, message_type) if isinstance(message_type, int) else message_type
    sender = body.get("sender") if isinstance(body.get("sender"), dict) else {}
    attributes = body.get("content_attributes") if isinstance(body.get("content_attributes"), dict) else {}
    content = body.get("content") if isinstance(body.get("content"), str) else ""
    attachments, refused = _attachments(body.get("attachments"))
    if inbox_id and inbox is not None and str(inbox) != inbox_id:
        reason = "another inbox"
    elif body.get("private"):
        reason = "private note"
    elif message_type != "outgoing":
        reason = f"message_type {message_type!r}"
    elif MARKER in attributes:
        reason = "julia's own mirrored message"
    elif str(sender.get("type", "")).lower() != "user":
        reason = f"sender {sender.get('type')!r} is not an agent"
    elif not content.strip() and not attachments and not refused:
        reason = "no text"
    else:
        return AgentMessage(
            conversation_id=conversation_id,
            message_id=message_id,
            content=markdown_to_whatsapp(content.strip()),
            attachments=attachments,
            refused=refused,
        )
    return Ignored(event=event, reason=reason)


def _attachments(items: Any) -> tuple[tuple[Attachment, ...], tuple[str, ...]]:
    """The attachments WhatsApp can take, and a reason for each it cannot."""
    sendable: list[Attachment] = []
    refused: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        url = item.get("data_url") if isinstance(item.get("data_url"), str) else ""
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or None
        label = name or f"anexo {item.get('id')}"
        mediatype = MEDIA_TYPES.get(str(item.get("file_type")))
        size = item.get("file_size") if isinstance(item.get("file_size"), int) else None
        if mediatype is None:
            refused.append(f"{label}: tipo {item.get('file_type')!r} não vai para o WhatsApp")
        elif not url.startswith(("http://", "https://")):
            refused.append(f"{label}: sem data_url")
        elif size is not None and size > MEDIA_LIMITS[mediatype]:
            refused.append(
                f"{label}: {size // (1024 * 1024)} MB, o WhatsApp aceita até "
                f"{MEDIA_LIMITS[mediatype] // (1024 * 1024)} MB para {mediatype}"
            )
        else:
            mimetype = mimetypes.guess_type(name or "")[0] if name else None
            sendable.append(Attachment(mediatype=mediatype, url=url, mimetype=mimetype, file_name=name))
    return tuple(sendable), tuple(refused)
