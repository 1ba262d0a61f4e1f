"""Evolution API v2 client: send a text or a media file (typing first: `delay`),
ask which numbers are on WhatsApp, list the messages Evolution stored for a chat.

Errors are split into transient (retry later: timeouts, 5xx, 429) and
permanent (4xx: the request itself is wrong or the contact is unreachable).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from app.integrations.transport import ServiceClient, ServiceError, exchange

logger = logging.getLogger(__name__)


class EvolutionError(ServiceError):
    """Evolution refused or failed a request."""

    service = "Evolution"

    def __init__(
        self, message: str, *, transient: bool, status: int | None = None, not_on_whatsapp: bool = False
    ) -> None:
        super().__init__(message, transient=transient, status=status)
        # 400 with [{"exists": false, ...}]: the number is not on WhatsApp.
        self.not_on_whatsapp = not_on_whatsapp

    @classmethod
    def reason(cls, response: httpx.Response) -> str:
        """A short reason from an Evolution error body (never the request)."""
        try:
            data = response.json()
        except ValueError:
            return response.text[:200]
        inner = data.get("response") if isinstance(data, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else data
        return str(message)[:300]

    @classmethod
    def from_response(cls, response: httpx.Response, what: str) -> EvolutionError:
        error = super().from_response(response, what)
        error.not_on_whatsapp = response.status_code == 400 and _not_on_whatsapp(response)
        return error


@dataclass(frozen=True, kw_only=True)
class SentMessage:
    message_id: str | None
    status: str | None


@dataclass(frozen=True, kw_only=True)
class NumberCheck:
    """One answer of onWhatsApp: the number asked, the JID WhatsApp knows it by, whether it exists."""

    number: str
    jid: str
    exists: bool


@dataclass(frozen=True, kw_only=True)
class FoundMessage:
    """One message findMessages listed: its WhatsApp key, its text (or caption) and when it went."""

    message_id: str
    remote_jid: str
    from_me: bool
    text: str | None
    timestamp: int  # epoch seconds (messageTimestamp)


class EvolutionClient(ServiceClient):
    """Thin async client over one httpx.AsyncClient; create once per process."""

    def __init__(self, *, base_url: str, api_key: str, instance: str, timeout: float = 30.0) -> None:
        # A process that never sends (the scheduler) may run without Evolution
        # settings; a send then fails loudly, naming what is missing.
        self._missing = [n for n, v in (("EVOLUTION_API_URL", base_url), ("EVOLUTION_INSTANCE", instance)) if not v]
        self._instance = instance
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") or "http://evolution.invalid", headers={"apikey": api_key}, timeout=timeout
        )

    async def send_text(self, number: str, text: str, *, delay_ms: int = 0, instance: str | None = None) -> SentMessage:
        """POST /message/sendText/{instance} (default: EVOLUTION_INSTANCE); raises EvolutionError.
        `delay_ms`: Evolution shows "typing" that long, then sends (and answers)."""
        body: dict[str, object] = {"number": number, "text": text}
        if delay_ms:
            body["delay"] = delay_ms
        data = await self._post(f"/message/sendText/{quote(instance or self._instance, safe='')}", body)
        return _sent_message(data)

    async def send_media(
        self,
        number: str,
        *,
        mediatype: str,
        media: str,
        mimetype: str | None = None,
        caption: str | None = None,
        file_name: str | None = None,
        delay_ms: int = 0,
        instance: str | None = None,
    ) -> SentMessage:
        """POST /message/sendMedia/{instance} (image, video, audio, document;
        `media` is a URL or base64); raises EvolutionError. `delay_ms` as in send_text."""
        body: dict[str, object] = {"number": number, "mediatype": mediatype, "media": media}
        if delay_ms:
            body["delay"] = delay_ms
        for key, value in (("mimetype", mimetype), ("caption", caption), ("fileName", file_name)):
            if value:
                body[key] = value
        data = await self._post(f"/message/sendMedia/{quote(instance or self._instance, safe='')}", body)
        return _sent_message(data)

    async def check_numbers(self, numbers: Sequence[str]) -> list[NumberCheck]:
        """POST /chat/whatsappNumbers/{instance}: which form of each number exists.

        Evolution answers a list of ``{jid, exists, number, name?, lid?}``; for a
        Brazilian mobile ``jid`` is the form (12 or 13 digits) WhatsApp knows.
        Raises EvolutionError, also when the answer is not such a list.
        """
        path = f"/chat/whatsappNumbers/{self._instance}"
        data = await self._post(path, {"numbers": list(numbers)})
        if not isinstance(data, list):
            raise EvolutionError(f"Evolution answered {path} without a list", status=None, transient=True)
        checks = []
        for item in data:
            if isinstance(item, dict) and isinstance(item.get("jid"), str) and isinstance(item.get("number"), str):
                checks.append(NumberCheck(number=item["number"], jid=item["jid"], exists=item.get("exists") is True))
        return checks

    async def find_messages(
        self, remote_jid: str, *, from_me: bool = True, instance: str | None = None
    ) -> list[FoundMessage]:
        """POST /chat/findMessages/{instance}: the newest page (50) of the messages
        Evolution stored for one chat, newest first; with `from_me` only those sent
        from the instance.

        Evolution (2.2+) answers ``{"messages": {"total", "pages", "currentPage",
        "records": [...]}}``; it lists only what it saved (DATABASE_SAVE_DATA_NEW_MESSAGE).
        Raises EvolutionError, also when the answer has no such records.
        """
        path = f"/chat/findMessages/{quote(instance or self._instance, safe='')}"
        key: dict[str, object] = {"remoteJid": remote_jid}
        if from_me:
            key["fromMe"] = True
        data = await self._post(path, {"where": {"key": key}, "page": 1, "offset": 50})
        page = data.get("messages") if isinstance(data, dict) else None
        records = page.get("records") if isinstance(page, dict) else None
        if not isinstance(records, list):
            raise EvolutionError(f"Evolution answered {path} without messages.records", status=None, transient=True)
        return [found for found in map(_found_message, records) if found is not None]

    async def find_sent_messages(self, number: str, *, instance: str | None = None) -> list[FoundMessage]:
        """The messages sent from the instance to `number`, under each JID Evolution may
        have stored its chat as (a Brazilian mobile: with and without the ninth digit)."""
        found: dict[str, FoundMessage] = {}
        for jid in chat_jids(number):
            for message in await self.find_messages(jid, instance=instance):
                found.setdefault(message.message_id, message)
        return list(found.values())

    async def _post(self, path: str, body: dict[str, object]) -> Any:
        if self._missing:
            raise EvolutionError(
                f"Evolution is not configured: {', '.join(self._missing)}", status=None, transient=False
            )
        response = await exchange(EvolutionError, path, self._http.post(path, json=body))
        try:
            return response.json()
        except ValueError:
            return {}


def chat_jids(number: str) -> list[str]:
    """The JIDs a chat with `number` may be stored under: a JID or LID as it is; a phone as
    "<digits>@s.whatsapp.net", and a Brazilian mobile also in its other form (WhatsApp
    knows old accounts by the 12-digit form, Evolution sends to the form that exists)."""
    if "@" in number:
        return [number]
    digits = "".join(ch for ch in number if ch.isdigit())
    forms = [digits]
    if digits.startswith("55") and len(digits) == 13 and digits[4] == "9":
        forms.append(digits[:4] + digits[5:])
    elif digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        forms.append(f"{digits[:4]}9{digits[4:]}")
    return [f"{form}@s.whatsapp.net" for form in forms]


def _sent_message(data: Any) -> SentMessage:
    """The message id and status of a sendText/sendMedia answer (None where it has none)."""
    key = data.get("key") if isinstance(data, dict) else None
    return SentMessage(
        message_id=key.get("id") if isinstance(key, dict) else None,
        status=data.get("status") if isinstance(data, dict) else None,
    )


def _found_message(record: Any) -> FoundMessage | None:
    """A findMessages record, or None when it has no usable key."""
    key = record.get("key") if isinstance(record, dict) else None
    if not isinstance(key, dict) or not isinstance(key.get("id"), str) or not isinstance(key.get("remoteJid"), str):
        return None
    message = record.get("message") if isinstance(record.get("message"), dict) else {}
    text = message.get("conversation")
    if not isinstance(text, str):
        # extendedTextMessage.text, or a media message's caption
        inner = next((v for v in message.values() if isinstance(v, dict) and ("text" in v or "caption" in v)), {})
        text = inner.get("text") or inner.get("caption")
    timestamp = record.get("messageTimestamp")
    if isinstance(timestamp, str) and timestamp.isdigit():
        timestamp = int(timestamp)
    return FoundMessage(
        message_id=key["id"],
        remote_jid=key["remoteJid"],
        from_me=key.get("fromMe") is True,
        text=text if isinstance(text, str) else None,
        timestamp=int(timestamp) if isinstance(timestamp, int | float) and not isinstance(timestamp, bool) else 0,
    )


def _not_on_whatsapp(response: httpx.Response) -> bool:
    """Evolution's answer for a number without WhatsApp: response.message = [{"exists": false, ...}]."""
    try:
        data = response.json()
    except ValueError:
        return False
    inner = data.get("response") if isinstance(data, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    return isinstance(message, list) and any(isinstance(m, dict) and m.get("exists") is False for m in message)
