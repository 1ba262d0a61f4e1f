"""Stand-in for the Evolution API v2 endpoints Julia calls (send text, presence,
read, onWhatsApp number check, findMessages over what it accepted)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections import deque
from collections.abc import Iterable
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from app.devkit.standins.server import RecordedRequest, Reply, StandinServer, json_reply

WELCOME = {
    "status": 200,
    "message": "Welcome to the Evolution API, it is working!",
    "version": "2.3.7",
}
UNAUTHORIZED = {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}}


def evolution_error(status: int, message: Any = None) -> Reply:
    """Reply in Evolution's error shape; `message` defaults to [the status phrase]."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = {"status": status, "error": phrase, "response": {"message": message or [phrase]}}
    return json_reply(status, body)


def to_jid(number: str) -> str:
    """Evolution's addressing: a bare phone becomes "<digits>@s.whatsapp.net"."""
    if "@" in number:
        return number
    return "".join(ch for ch in number if ch.isdigit()) + "@s.whatsapp.net"


class EvolutionStandin(StandinServer):
    """Fake Evolution API v2: checks `apikey`, records sends, can be told to fail.

    `unknown_lids` holds "NNN@lid" numbers that sendText refuses with 400
    `exists: false`, as Evolution does for LIDs it cannot resolve. The request's own
    `delay` (typing simulation) is only honoured when `honor_delay=True`.

    WhatsApp accounts: by default every phone exists in the form it is asked
    for. After `set_accounts(...)` only those numbers exist, in exactly that
    form (the 12-digit JID of an old Brazilian account, say): whatsappNumbers
    answers like Evolution (a Brazilian number is found in either form), and
    sendText to any other phone answers 400 `exists: false`.
    """

    def __init__(
        self,
        *,
        api_key: str = "dev-evolution-key",
        unknown_lids: Iterable[str] = (),
        honor_delay: bool = False,
        port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.api_key = api_key
        self.unknown_lids: set[str] = set(unknown_lids)
        self.honor_delay = honor_delay
        self.instance_id = str(uuid.uuid4())
        self._sent: list[dict[str, Any]] = []
        self._media: list[dict[str, Any]] = []
        self._failures: deque[Reply] = deque()
        self._delay = 0.0
        self._ids: set[str] = set()
        self._accounts: set[str] | None = None
        self._checks: list[list[str]] = []
        self._searches: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ public API

    def sent_texts(self) -> list[dict[str, Any]]:
        """Accepted sends, oldest first: {"instance", "number", "text", "id", "at"}."""
        with self._lock:
            return [dict(item) for item in self._sent]

    def sent_media(self) -> list[dict[str, Any]]:
        """Accepted media sends, oldest first: {"instance", "number", "mediatype", "media",
        "mimetype", "caption", "fileName", "id", "at"}."""
        with self._lock:
            return [dict(item) for item in self._media]

    def texts_to(self, number: str) -> list[str]:
        """Texts accepted for `number` (bare phone or JID), oldest first."""
        jid = to_jid(number)
        return [item["text"] for item in self.sent_texts() if to_jid(item["number"]) == jid]

    def fail_next(self, status: int, times: int = 1, body: dict[str, Any] | None = None) -> None:
        """Make the next `times` authorised sendText calls answer `status` (and `body`)."""
        reply = json_reply(status, body) if body is not None else evolution_error(status)
        with self._lock:
            self._failures.extend([reply] * times)

    def set_accounts(self, *numbers: str) -> None:
        """From now on only these phones (digits, exact form) are on WhatsApp."""
        with self._lock:
            self._accounts = {to_jid(n) for n in numbers}

    def number_checks(self) -> list[list[str]]:
        """The `numbers` of every whatsappNumbers call, oldest first."""
        with self._lock:
            return [list(numbers) for numbers in self._checks]

    def message_searches(self) -> list[dict[str, Any]]:
        """The bodies of every findMessages call, oldest first."""
        with self._lock:
            return [dict(body) for body in self._searches]

    def set_delay(self, seconds: float) -> None:
        """Make every sendText wait `seconds` before answering."""
        with self._lock:
            self._delay = seconds

    def reset(self) -> None:
        """Forget sends, requests, queued failures and the delay."""
        with self._lock:
            super().reset()
            self._sent.clear()
            self._media.clear()
            self._failures.clear()
            self._delay = 0.0
            self._accounts = None
            self._checks.clear()
            self._searches.clear()

    # ------------------------------------------------------------------ routes

    def handle(self, request: RecordedRequest) -> Reply:
        """Route one request the way Evolution does (404 for unknown paths)."""
        if request.method == "GET" and request.path in ("", "/"):
            return json_reply(200, WELCOME)
        parts = request.path.strip("/").split("/")
        routes = {
            ("message", "sendText"): self._send_text,
            ("message", "sendMedia"): self._send_media,
            ("chat", "sendPresence"): self._send_presence,
            ("chat", "markMessageAsRead"): self._mark_read,
            ("chat", "whatsappNumbers"): self._whatsapp_numbers,
            ("chat", "findMessages"): self._find_messages,
        }
        route = routes.get((parts[0], parts[1])) if len(parts) == 3 else None
        if route is None or request.method != "POST":
            return evolution_error(404, [f"Cannot {request.method} {request.path}"])
        if request.headers.get("apikey") != self.api_key:
            return json_reply(401, UNAUTHORIZED)
        body = request.json if isinstance(request.json, dict) else {}
        return route(unquote(parts[2]), body)

    def _send_text(self, instance: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            delay = self._delay
            failure = self._failures.popleft() if self._failures else None
        self._sleep(delay, body)
        if failure is not None:
            return failure
        number, text = body.get("number"), body.get("text")
        for name, value in (("number", number), ("text", text)):
            if not value:
                return evolution_error(400, [f'instance requires property "{name}"'])
        number = str(number)
        if "@lid" in number and number in self.unknown_lids:
            detail = {"jid": number, "exists": False, "number": number}
            return evolution_error(400, [detail])
        if "@" not in number and not self._exists(to_jid(number)):
            return evolution_error(400, [{"jid": to_jid(number), "exists": False, "number": number}])
        now = time.time()
        message_id = self._new_id()
        with self._lock:
            self._sent.append({"instance": instance, "number": number, "text": text, "id": message_id, "at": now})
        return json_reply(
            201,
            {
                "key": {"remoteJid": to_jid(number), "fromMe": True, "id": message_id},
                "pushName": "",
                "status": "PENDING",
                "message": {"conversation": text},
                "messageType": "conversation",
                "messageTimestamp": int(now),
                "instanceId": self.instance_id,
                "source": "unknown",
            },
        )

    def _exists(self, jid: str) -> bool:
        with self._lock:
            return self._accounts is None or jid in self._accounts

    def _whatsapp_numbers(self, instance: str, body: dict[str, Any]) -> Reply:
        # Evolution's whatsappNumber(): 200 with [{jid, exists, number, name?}], one per number asked.
        numbers = body.get("numbers")
        if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
            return evolution_error(400, ['"numbers" must be an array of numeric strings'])
        with self._lock:
            self._checks.append(list(numbers))
        answers = []
        for number in numbers:
            asked = to_jid(number)
            found = next((jid for jid in _brazilian_forms(asked) if self._exists(jid)), None)
            answers.append({"jid": found or asked, "exists": found is not None, "number": number})
        return json_reply(200, answers)

    def _find_messages(self, instance: str, body: dict[str, Any]) -> Reply:
        # Evolution's fetchMessages(): the instance's stored messages filtered by
        # where.key.{id, fromMe, remoteJid} and, when both bounds are given,
        # where.messageTimestamp.{gte, lte} (dates); newest first, `offset` per page.
        with self._lock:
            self._searches.append(body)
            items = [dict(item) for item in [*self._sent, *self._media] if item["instance"] == instance]
        items.sort(key=lambda item: item["at"], reverse=True)  # newest first
        where = body.get("where") if isinstance(body.get("where"), dict) else {}
        key = where.get("key") if isinstance(where.get("key"), dict) else {}
        records = [
            record
            for record in (_stored_message(item, self.instance_id) for item in items)
            if all(record["key"][name] == key[name] for name in ("id", "remoteJid", "fromMe") if key.get(name))
        ]
        bounds = where.get("messageTimestamp") if isinstance(where.get("messageTimestamp"), dict) else {}
        if bounds.get("gte") and bounds.get("lte"):
            low, high = _epoch_seconds(bounds["gte"]), _epoch_seconds(bounds["lte"])
            if low is None or high is None:
                return evolution_error(400, ["messageTimestamp bounds must be dates"])
            records = [r for r in records if low <= r["messageTimestamp"] <= high]
        offset = body.get("offset") if isinstance(body.get("offset"), int) and body["offset"] > 0 else 50
        page = body.get("page") if isinstance(body.get("page"), int) and body["page"] > 0 else 1
        return json_reply(
            200,
            {
                "messages": {
                    "total": len(records),
                    "pages": -(-len(records) // offset),
                    "currentPage": page,
                    "records": records[offset * (page - 1) : offset * page],
                }
            },
        )

    def _send_media(self, instance: str, body: dict[str, Any]) -> Reply:
        # SendMediaDto: number, mediatype (image|document|video|audio|ptv), media (URL or base64),
        # mimetype?, caption?, fileName?
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            return failure
        for name in ("number", "mediatype", "media"):
            if not body.get(name):
                return evolution_error(400, [f'instance requires property "{name}"'])
        if body["mediatype"] not in ("image", "document", "video", "audio", "ptv"):
            return evolution_error(400, ["mediatype must be one of image, document, video, audio, ptv"])
        now = time.time()
        message_id = self._new_id()
        item = {"instance": instance, "id": message_id, "at": now}
        item |= {k: body.get(k) for k in ("number", "mediatype", "media", "mimetype", "caption", "fileName")}
        with self._lock:
            self._media.append(item)
        kind = {"image": "imageMessage", "video": "videoMessage", "audio": "audioMessage"}.get(
            body["mediatype"], "documentMessage"
        )
        return json_reply(
            201,
            {
                "key": {"remoteJid": to_jid(str(body["number"])), "fromMe": True, "id": message_id},
                "pushName": "",
                "status": "PENDING",
                "message": {kind: {"caption": body.get("caption"), "mimetype": body.get("mimetype")}},
                "messageType": kind,
                "messageTimestamp": int(now),
                "instanceId": self.instance_id,
                "source": "unknown",
            },
        )

    def _send_presence(self, instance: str, body: dict[str, Any]) -> Reply:
        if not body.get("number") or not body.get("presence"):
            return evolution_error(400, ['instance requires property "number" and "presence"'])
        self._sleep(0.0, body)
        return json_reply(201, {"presence": body["presence"]})

    def _mark_read(self, instance: str, body: dict[str, Any]) -> Reply:
        return json_reply(201, {"message": "Read messages", "read": "success"})

    def _sleep(self, seconds: float, body: dict[str, Any]) -> None:
        if self.honor_delay and isinstance(body.get("delay"), int | float):
            seconds += body["delay"] / 1000
        if seconds > 0:
            time.sleep(seconds)

    def _new_id(self) -> str:
        # WhatsApp Web ids look like "3EB0" + uppercase hex; 20 chars, never reused here
        with self._lock:
            while True:
                candidate = "3EB0" + secrets.token_hex(8).upper()
                if candidate not in self._ids:
                    self._ids.add(candidate)
                    return candidate


def _stored_message(item: dict[str, Any], instance_id: str) -> dict[str, Any]:
    """An accepted send as findMessages lists it (Evolution's Message row)."""
    if "text" in item:
        message_type, message = "conversation", {"conversation": item["text"]}
    else:
        message_type = {"image": "imageMessage", "video": "videoMessage", "audio": "audioMessage"}.get(
            item["mediatype"], "documentMessage"
        )
        message = {message_type: {"caption": item.get("caption"), "mimetype": item.get("mimetype")}}
    return {
        "id": "row-" + item["id"].lower(),
        "key": {"remoteJid": to_jid(str(item["number"])), "fromMe": True, "id": item["id"]},
        "pushName": "Você",
        "messageType": message_type,
        "message": message,
        "messageTimestamp": int(item["at"]),
        "instanceId": instance_id,
        "source": "unknown",
        "contextInfo": None,
        "MessageUpdate": [],
    }


def _epoch_seconds(value: Any) -> int | None:
    """`new Date(value).getTime() / 1000` for an ISO date or epoch milliseconds; None otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value // 1000)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


def _brazilian_forms(jid: str) -> list[str]:
    """The JIDs Evolution tries for a number: a Brazilian one with and without the ninth digit."""
    user, _, domain = jid.partition("@")
    if not user.startswith("55") or len(user) not in (12, 13):
        return [jid]
    with_nine = user if len(user) == 13 and user[4] == "9" else f"{user[:4]}9{user[4:]}"
    without_nine = user if len(user) == 12 else user[:4] + user[5:]
    return list(dict.fromkeys([jid, f"{with_nine}@{domain}", f"{without_nine}@{domain}"]))
