"""Parse Evolution API v2 webhook bodies into inbound messages.

Pure logic: no I/O, no logging. Only ``messages.upsert`` yields an
``InboundMessage``; every other event, and messages Julia must not answer
(groups, stories, reactions, ...), yields ``Ignored`` with a reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from app.core.errors import InvalidEvent

# ASCII digits only: str.isdigit() also accepts "²", which int() rejects.
_DIGITS = re.compile(r"[0-9]{1,20}")

MESSAGES_UPSERT = "messages.upsert"

# Baileys wraps some messages in containers whose payload sits under "message".
_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
)
# Keys Evolution or WhatsApp add next to the content; they are not content.
# speechToText is Evolution's transcription of an audioMessage beside it.
_NON_CONTENT = frozenset({"messageContextInfo", "base64", "mediaUrl", "speechToText"})
# Evolution writes a transcription as "[audio] <text>".
_SPEECH_PREFIX = "[audio]"
# WhatsApp key ids are 16-32 characters; a longer one is not WhatsApp's.
MAX_ID_CHARS = 256
# Unix seconds up to the year 5138: anything larger is not a timestamp.
_MAX_UNIX_SECONDS = 10**11
_PROTOCOL = frozenset({"protocolMessage", "senderKeyDistributionMessage"})
_MEDIA_TYPES = {
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
    "locationMessage": "location",
    "liveLocationMessage": "location",
    "contactMessage": "contact",
    "contactsArrayMessage": "contact",
    "pollCreationMessage": "poll",
    "pollCreationMessageV3": "poll",
}
# (remoteJid suffix, reason) pairs for chats Julia never answers; order matters.
_IGNORED_CHATS = (
    ("@g.us", "group message"),
    ("status@broadcast", "status broadcast"),
    ("@broadcast", "broadcast list"),
    ("@newsletter", "newsletter"),
)


@dataclass(frozen=True, kw_only=True)
class Ignored:
    """A valid event that Julia does not act on."""

    event: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class InboundMessage:
    """A WhatsApp message received by the instance (``messages.upsert``)."""

    message_id: str
    instance: str | None
    phone: str | None
    remote_jid: str
    lid: str | None
    from_me: bool
    push_name: str | None
    text: str | None
    media_type: str | None
    message_type: str | None
    timestamp: int | None

    def to_json(self) -> dict[str, object]:
        """Return a plain JSON-serialisable dict of all fields, in their order (not
        `dataclasses.asdict`, which deep-copies every value: these are all scalars)."""
        return {name: getattr(self, name) for name in _MESSAGE_FIELDS}

    @classmethod
    def from_json(cls, d: dict) -> InboundMessage:
        """Rebuild a message from ``to_json`` output.

        Raises ``KeyError`` when ``message_id`` or ``remote_jid`` is missing;
        other absent fields become ``None`` (``from_me`` becomes ``False``).
        """
        return cls(
            message_id=d["message_id"],
            instance=d.get("instance"),
            phone=d.get("phone"),
            remote_jid=d["remote_jid"],
            lid=d.get("lid"),
            from_me=bool(d.get("from_me")),
            push_name=d.get("push_name"),
            text=d.get("text"),
            media_type=d.get("media_type"),
            message_type=d.get("message_type"),
            timestamp=d.get("timestamp"),
        )


_MESSAGE_FIELDS = tuple(f.name for f in fields(InboundMessage))


def normalize_event_name(name: str) -> str:
    """'MESSAGES_UPSERT', 'messages-upsert', 'messages.upsert' -> 'messages.upsert'."""
    return name.strip().strip("/").lower().replace("_", ".").replace("-", ".")


@dataclass(frozen=True, kw_only=True)
class StatusUpdate:
    """A messages.update: the delivery status of a message Julia sent."""

    message_id: str  # data.keyId: the key.id Evolution returned on sendText
    # PENDING, SERVER_ACK, DELIVERY_ACK, READ, PLAYED, ERROR. Evolution sends
    # ERROR bare: its messages.update carries no WhatsApp error code.
    status: str
    remote_jid: str | None


DELIVERY_STATUSES = frozenset({"PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ", "PLAYED", "ERROR"})
MESSAGES_UPDATE = "messages.update"
# Fired for messages sent through the API: confirms a send whose HTTP answer was lost.
SEND_MESSAGE = "send.message"
CONNECTION_UPDATE = "connection.update"
CONNECTION_STATES = frozenset({"open", "close", "connecting"})


@dataclass(frozen=True, kw_only=True)
class ConnectionUpdate:
    """A connection.update: a number (instance) connected, closed or is connecting."""

    instance: str
    state: str  # open, close, connecting
    reason: str | None  # statusReason (e.g. 200, 401 logged out, 428 connection closed)


def parse_connection_update(body: dict) -> ConnectionUpdate | Ignored:
    """Evolution sends {instance, data: {instance, state, statusReason, wuid?, profileName?}}."""
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    instance = _text_or_none(body.get("instance")) or _text_or_none(data.get("instance"))
    state = str(data.get("state") or "").lower()
    if instance is None:
        return Ignored(event=CONNECTION_UPDATE, reason="connection.update without an instance")
    if state not in CONNECTION_STATES:
        return Ignored(event=CONNECTION_UPDATE, reason=f"connection state {state or 'missing'} not tracked")
    reason = data.get("statusReason")
    return ConnectionUpdate(
        instance=instance.strip(), state=state, reason=None if reason is None else str(reason)[:100]
    )


def parse_status_updates(data: object) -> list[StatusUpdate]:
    """Delivery statuses in a messages.update's data (an object or a list).

    Entries without a key id or with a status we do not track (e.g. DELETED)
    are skipped; a data that is neither object nor list raises InvalidEvent.
    """
    items = data if isinstance(data, list) else [data]
    updates = []
    for item in items:
        if not isinstance(item, dict):
            raise InvalidEvent("'data' must be an object or a list of objects")
        key = item.get("key") if isinstance(item.get("key"), dict) else {}
        message_id = item.get("keyId") or key.get("id")
        status = str(item.get("status") or "").upper()
        if isinstance(message_id, str) and message_id and status in DELIVERY_STATUSES:
            remote = item.get("remoteJid") or key.get("remoteJid")
            updates.append(
                StatusUpdate(
                    message_id=message_id[:MAX_ID_CHARS],
                    status=status,
                    remote_jid=remote if isinstance(remote, str) else None,
                )
            )
    return updates


def parse_event(
    body: object, path_event: str | None = None
) -> InboundMessage | Ignored | list[StatusUpdate] | ConnectionUpdate:
    """Parse an Evolution v2 webhook body.

    ``path_event`` is the suffix of ``/webhooks/evolution/{event}`` (webhook by
    events mode, e.g. ``'messages-upsert'``); it is used when the body has no
    ``event``. Raises ``InvalidEvent`` when the body is not an object, has no
    event name, or a ``messages.upsert`` lacks a ``data`` object, a ``key``
    object or a string ``key.remoteJid``.
    """
    if not isinstance(body, dict):
        raise InvalidEvent("body must be a JSON object")
    raw_event = body.get("event") or path_event
    if raw_event is not None and not isinstance(raw_event, str):
        raise InvalidEvent("'event' must be a string")
    event = normalize_event_name(raw_event or "")
    if not event:
        raise InvalidEvent("missing 'event'")
    if event == MESSAGES_UPDATE:
        updates = parse_status_updates(body.get("data"))
        return updates or Ignored(event=event, reason="no tracked delivery status")
    if event == CONNECTION_UPDATE:
        return parse_connection_update(body)
    if event not in (MESSAGES_UPSERT, SEND_MESSAGE):
        return Ignored(event=event, reason=f"event {event} not handled")
    if event == SEND_MESSAGE and not (isinstance(body.get("data"), dict) and isinstance(body["data"].get("key"), dict)):
        return Ignored(event=event, reason="send.message without a key")
    data = _message_data(body.get("data"))
    if data is None:
        return Ignored(event=event, reason="empty data")
    return _parse_message(event, data, instance=_text_or_none(body.get("instance")))


def _message_data(data: object) -> dict | None:
    """The message object of a messages.upsert (None for an empty list)."""
    if isinstance(data, list):
        # Some Evolution versions send messages.upsert data as a one-element list.
        if not data:
            return None
        if len(data) > 1:
            raise InvalidEvent(f"'data' list has {len(data)} elements, expected 1")
        data = data[0]
    if not isinstance(data, dict):
        raise InvalidEvent("'data' must be an object")
    if not isinstance(data.get("key"), dict):
        raise InvalidEvent("'key' must be an object")
    if not isinstance(data["key"].get("remoteJid"), str):
        raise InvalidEvent("'key.remoteJid' must be a string")
    return data


def _skip_reason(remote_jid: str, message_id: object, kinds: set[str]) -> str | None:
    """Why a well-formed message is not for Julia (None: it is)."""
    for suffix, reason in _IGNORED_CHATS:
        if remote_jid.endswith(suffix):
            return reason
    if not isinstance(message_id, str) or not message_id:
        return "no key.id"
    if len(message_id) > MAX_ID_CHARS:
        raise InvalidEvent(f"'key.id' is longer than {MAX_ID_CHARS} characters")
    if not kinds:
        # Undecrypted messages arrive empty and are re-sent later with the same
        # key.id; accepting the empty one would make dedupe drop the real one.
        return "no message content"
    if kinds <= _PROTOCOL:
        return "protocol message"
    if "reactionMessage" in kinds:
        return "reaction"
    return None


def _parse_message(event: str, data: dict, *, instance: str | None) -> InboundMessage | Ignored:
    key = data["key"]
    remote_jid = key["remoteJid"]
    content = _unwrap(data.get("message"))
    kinds = {k for k, v in content.items() if k not in _NON_CONTENT and v is not None}
    if (reason := _skip_reason(remote_jid, key.get("id"), kinds)) is not None:
        return Ignored(event=event, reason=reason)
    phone_jids = (
        remote_jid,
        key.get("remoteJidAlt"),
        key.get("senderPn"),
        key.get("participantAlt"),
    )
    # 2.3.1-2.3.2 replace an @lid remoteJid by senderPn and keep the LID in previousRemoteJid.
    lid_jids = (remote_jid, key.get("remoteJidAlt"), key.get("senderLid"), key.get("previousRemoteJid"))
    phone, lid = _first_phone(phone_jids), _first_lid(lid_jids)
    if phone is None and lid is None:
        return Ignored(event=event, reason="no phone number or LID to answer")
    return InboundMessage(
        message_id=key["id"],
        instance=instance,
        phone=phone,
        remote_jid=remote_jid,
        lid=lid,
        from_me=event == SEND_MESSAGE or key.get("fromMe") in (True, "true"),
        push_name=_text_or_none(data.get("pushName")),
        text=_text_of(content),
        media_type=_media_type_of(kinds),
        message_type=_text_or_none(data.get("messageType")),
        timestamp=_unix_seconds(data.get("messageTimestamp")),
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _unwrap(message: object) -> dict:
    """Return the innermost content dict, peeling Baileys wrapper messages."""
    if not isinstance(message, dict):
        return {}
    for _ in range(4):  # wrappers nest at most a couple of levels
        for wrapper in _WRAPPERS:
            inner = message.get(wrapper)
            if isinstance(inner, dict) and isinstance(inner.get("message"), dict):
                message = inner["message"]
                break
        else:
            return message
    return message


# A phone number as E.164 digits (what clientes.telefone accepts).
_PHONE_DIGITS = re.compile(r"[0-9]{8,15}")


def _jid_user(jid: object, domain: str) -> str | None:
    """Return the user part of ``jid`` without device suffix if it is in ``domain``."""
    if not isinstance(jid, str) or not jid.endswith(domain):
        return None
    user = jid[: -len(domain)].split(":", 1)[0]
    pattern = _PHONE_DIGITS if domain == "@s.whatsapp.net" else _DIGITS
    return user if pattern.fullmatch(user) else None


def _first_phone(jids: tuple[object, ...]) -> str | None:
    for jid in jids:
        if phone := _jid_user(jid, "@s.whatsapp.net"):
            return phone
    return None


def _first_lid(jids: tuple[object, ...]) -> str | None:
    for jid in jids:
        if user := _jid_user(jid, "@lid"):
            return f"{user}@lid"
    return None


def _text_of(content: dict) -> str | None:
    """Return the human-written text of a message, if any."""
    candidates = [
        content.get("conversation"),
        _field(content, "extendedTextMessage", "text"),
        _field(content, "imageMessage", "caption"),
        _field(content, "videoMessage", "caption"),
        _field(content, "documentMessage", "caption"),
        _field(content, "buttonsResponseMessage", "selectedDisplayText"),
        _field(content, "templateButtonReplyMessage", "selectedDisplayText"),
        _field(content, "listResponseMessage", "title"),
        _speech_to_text(content),
    ]
    for text in candidates:
        if isinstance(text, str) and text.strip():
            return text
    return None


def _speech_to_text(content: dict) -> str | None:
    """Evolution's transcription of an audio ("[audio] <text>"), as the doctor's words."""
    text = content.get("speechToText")
    if not isinstance(text, str):
        return None
    text = text.strip()
    return text[len(_SPEECH_PREFIX) :].strip() if text.startswith(_SPEECH_PREFIX) else text


def _field(content: dict, kind: str, name: str) -> object:
    part = content.get(kind)
    return part.get(name) if isinstance(part, dict) else None


def _media_type_of(kinds: set[str]) -> str | None:
    for kind in sorted(kinds):
        if kind in _MEDIA_TYPES:
            return _MEDIA_TYPES[kind]
    return None


def _unix_seconds(value: object) -> int | None:
    """Read messageTimestamp given as int, numeric string or protobuf Long object."""
    seconds = None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        seconds = int(value)
    elif isinstance(value, dict) and isinstance(value.get("low"), int) and isinstance(value.get("high"), int):
        # Long.js keeps two signed 32-bit halves; mask low to read it unsigned.
        seconds = (value["high"] << 32) | (value["low"] & 0xFFFFFFFF)
    # Out of range is no timestamp (the arrival time is used): it could never be stored.
    return seconds if seconds is not None and 0 < seconds < _MAX_UNIX_SECONDS else None
