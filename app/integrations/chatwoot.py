"""Chatwoot application API client: contacts, conversations, messages,
private notes, status. Holds no rules; the mirror job decides what to call.

Errors carry whether a retry may help (timeouts, 5xx, 429) or not (4xx).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from app.core.config import Settings
from app.events.chatwoot import MARKER
from app.integrations.transport import ServiceClient, ServiceError, exchange

logger = logging.getLogger(__name__)

# Marks the messages Julia posts, so their webhook echo is never relayed back.


class ChatwootError(ServiceError):
    """Chatwoot refused or failed a request."""

    service = "Chatwoot"


@dataclass(frozen=True, kw_only=True)
class Contact:
    id: int
    source_id: str | None


def chatwoot_configured(settings: Settings) -> bool:
    """True when every setting the mirror needs is set."""
    return all(
        (settings.chatwoot_url, settings.chatwoot_api_key, settings.chatwoot_account_id, settings.chatwoot_inbox_id)
    )


@dataclass(frozen=True, kw_only=True)
class Upload:
    """A file to attach to a Chatwoot message."""

    file_name: str
    content_type: str
    data: bytes


class ChatwootClient(ServiceClient):
    """Async client for one account and inbox; use `async with`.

    `api_key` is a user's access token (contacts, reading messages);
    `bot_token`, when set, is an agent bot's: Julia's own messages, notes,
    status changes and assignments go out as that bot, so Chatwoot's reports
    do not count them as a human's and opening a conversation does not
    assign it to the token's user.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        account_id: str,
        inbox_id: str,
        bot_token: str = "",
        timeout: float = 10.0,
    ) -> None:
        self._account = account_id
        self.inbox_id = int(inbox_id)
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers={"api_access_token": api_key}, timeout=timeout
        )
        self._bot_headers = {"api_access_token": bot_token} if bot_token else {}

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatwootClient:
        return cls(
            base_url=settings.chatwoot_url,
            api_key=settings.chatwoot_api_key,
            account_id=settings.chatwoot_account_id,
            inbox_id=settings.chatwoot_inbox_id,
            bot_token=settings.chatwoot_bot_token,
        )

    # ------------------------------------------------------------------ contacts

    async def find_or_create_contact(self, *, phone: str | None, identifier: str | None, name: str | None) -> Contact:
        """The contact with exactly this identifier or phone (E.164), created in the inbox if missing.

        Chatwoot's /contacts/search matches substrings 15 a page, so the
        lookup goes through the filter API (equal_to) instead.
        """
        e164 = f"+{phone}" if phone else None
        found = await self.find_contact(identifier=identifier, phone=e164)
        if found is not None:
            return found
        body: dict[str, Any] = {"inbox_id": self.inbox_id, "name": name or e164 or identifier}
        if e164:
            body["phone_number"] = e164
        if identifier:
            body["identifier"] = identifier
        try:
            data = await self._request("POST", "/contacts", body)
        except ChatwootError as exc:
            if exc.status != 422:
                raise
            # Taken meanwhile (another worker, or the team): find the exact one.
            found = await self.find_contact(identifier=identifier, phone=e164)
            if found is None:
                raise
            return found
        payload = data.get("payload", data) if isinstance(data, dict) else {}
        contact = payload.get("contact", payload)
        inbox = payload.get("contact_inbox") or {}
        return Contact(id=int(contact["id"]), source_id=inbox.get("source_id"))

    async def find_contact(self, *, identifier: str | None, phone: str | None) -> Contact | None:
        """The contact whose identifier, else phone, is exactly this (filter API)."""
        for key, value in (("identifier", identifier), ("phone_number", phone)):
            if not value:
                continue
            condition = {"attribute_key": key, "filter_operator": "equal_to", "values": [value], "query_operator": None}
            data = await self._request("POST", "/contacts/filter", {"payload": [condition]}, params={"page": "1"})
            for item in data.get("payload", []) if isinstance(data, dict) else []:
                if str(item.get(key) or "").lower() == value.lower():
                    return Contact(id=int(item["id"]), source_id=self._source_id(item))
        return None

    def _source_id(self, contact: dict[str, Any]) -> str | None:
        inboxes = contact.get("contact_inboxes") or []
        return next(
            (ci.get("source_id") for ci in inboxes if (ci.get("inbox") or {}).get("id") == self.inbox_id),
            None,
        )

    async def create_contact_inbox(self, contact_id: int) -> str | None:
        """Attach a contact to the inbox; returns the contact inbox's source id."""
        data = await self._request("POST", f"/contacts/{contact_id}/contact_inboxes", {"inbox_id": self.inbox_id})
        return data.get("source_id") if isinstance(data, dict) else None

    # ------------------------------------------------------------------ conversations

    async def create_conversation(self, *, contact_id: int, source_id: str | None) -> int:
        """Open a conversation in the inbox; returns its (display) id."""
        body: dict[str, Any] = {"inbox_id": self.inbox_id, "contact_id": contact_id, "status": "open"}
        if source_id:
            body["source_id"] = source_id
        data = await self._request("POST", "/conversations", body)
        return int(data["id"])

    async def create_message(
        self,
        conversation_id: int,
        content: str,
        *,
        message_type: str = "outgoing",
        private: bool = False,
        attributes: dict[str, Any] | None = None,
        upload: Upload | None = None,
    ) -> int:
        """Post a message (incoming/outgoing) or a private note, with a file if
        given (multipart `attachments[]`); returns its id. Julia's own
        messages go as the agent bot when a bot token is set."""
        path = f"/conversations/{conversation_id}/messages"
        as_bot = message_type == "outgoing"
        if upload is not None:
            fields = {"message_type": message_type, "private": "true" if private else "false"}
            if content:
                fields["content"] = content
            if attributes:
                fields["content_attributes"] = json.dumps(attributes)
            files = {"attachments[]": (upload.file_name, upload.data, upload.content_type)}
            data = await self._request("POST", path, data=fields, files=files, as_bot=as_bot)
        else:
            body: dict[str, Any] = {"content": content, "message_type": message_type, "private": private}
            if attributes:
                body["content_attributes"] = attributes
            data = await self._request("POST", path, body, as_bot=as_bot)
        return int(data["id"])

    async def find_marked_message(self, conversation_id: int, interacao_id: int, *, pages: int = 50) -> int | None:
        """The id of the message Julia posted for an interacao, if it is there.

        Chatwoot answers the latest 20 messages, then 20 before a given id:
        this pages back until found or `pages` pages were read.
        """
        params: dict[str, str] = {}
        for _ in range(pages):
            data = await self._request("GET", f"/conversations/{conversation_id}/messages", params=params or None)
            items = data.get("payload", []) if isinstance(data, dict) else []
            for item in items:
                if (item.get("content_attributes") or {}).get(MARKER) == interacao_id:
                    return int(item["id"])
            if not items:
                return None
            params = {"before": str(min(int(item["id"]) for item in items))}
        return None

    async def toggle_status(self, conversation_id: int, status: str) -> None:
        """Set a conversation's status: open, resolved, pending."""
        await self._request("POST", f"/conversations/{conversation_id}/toggle_status", {"status": status}, as_bot=True)

    async def assign_team(self, conversation_id: int, team_id: int) -> None:
        """Assign a conversation to a team (Chatwoot may then pick an agent of it)."""
        await self._request("POST", f"/conversations/{conversation_id}/assignments", {"team_id": team_id}, as_bot=True)

    # ------------------------------------------------------------------ transport

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        *,
        data: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
        as_bot: bool = False,
    ) -> Any:
        url = f"/api/v1/accounts/{self._account}{path}"
        headers = self._bot_headers if as_bot else None
        sending = self._http.request(method, url, json=body, params=params, data=data, files=files, headers=headers)
        response = await exchange(ChatwootError, f"{method} {path}", sending)
        try:
            return response.json()
        except ValueError:
            return {}
