"""Realistic Evolution v2 webhook bodies for each LID layout."""

from __future__ import annotations

import itertools
import time
from typing import Any

PHONE = "5511981677736"
LID = "211484206436558@lid"
_ids = itertools.count(1)


def new_id() -> str:
    return f"3A{next(_ids):018X}"


def upsert(
    *,
    layout: str = "classic",
    text: str | None = "Oi, tudo bem?",
    message_id: str | None = None,
    phone: str = PHONE,
    lid: str = LID,
    from_me: bool = False,
    push_name: str | None = "Dr. Rafael",
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A messages.upsert as the given Evolution version sends it.

    layouts: classic (phone in remoteJid), v2_3_5 (LID in remoteJid, phone in
    remoteJidAlt), v2_3_7 (phone in remoteJid, LID in remoteJidAlt),
    sender_pn (older 2.x: LID in remoteJid, phone in senderPn), lid_only.
    """
    pn = f"{phone}@s.whatsapp.net"
    key: dict[str, Any] = {"fromMe": from_me, "id": message_id or new_id()}
    if layout == "classic":
        key["remoteJid"] = pn
    elif layout == "v2_3_5":
        key |= {"remoteJid": lid, "remoteJidAlt": pn, "addressingMode": "lid"}
    elif layout == "v2_3_7":
        key |= {"remoteJid": pn, "remoteJidAlt": lid, "addressingMode": "pn"}
    elif layout == "sender_pn":
        key |= {"remoteJid": lid, "senderPn": pn}
    elif layout == "lid_only":
        key["remoteJid"] = lid
    else:
        raise ValueError(layout)
    data: dict[str, Any] = {
        "key": key,
        "status": "DELIVERY_ACK",
        "message": message if message is not None else {"conversation": text},
        "messageType": "conversation",
        "messageTimestamp": int(time.time()),
        "instanceId": "b1e6c1a0-0000-4000-8000-000000000001",
        "source": "android",
    }
    if push_name is not None:
        data["pushName"] = push_name
    return {
        "event": "messages.upsert",
        "instance": "julia-test",
        "data": data,
        "destination": "https://julia.example.com/webhooks/evolution",
        "date_time": "2026-11-29T10:00:00.000Z",
        "sender": pn,
        "server_url": "https://evolution.example.com",
        "apikey": None,
    }
