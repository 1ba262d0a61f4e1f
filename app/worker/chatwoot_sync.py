"""The Chatwoot mirror of one conversation: post what SQL says is waiting
(messages oldest first, then handoff/hand-back notes and status), recording
each step in SQL as it succeeds. Run by the `sync_chatwoot_conversation` job.
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

import httpx
from psycopg_pool import AsyncConnectionPool

from app.core.errors import JuliaError
from app.integrations.chatwoot import MARKER, ChatwootClient, ChatwootError, Upload
from app.store.pool import fetch_one

logger = logging.getLogger(__name__)

BATCH = 50
MAX_ROUNDS = 20  # new messages may keep arriving; the next job picks up the rest

# A doctor's file larger than this is not copied to Chatwoot (its placeholder is).
MAX_MEDIA_BYTES = 16 * 1024 * 1024
MEDIA_DOWNLOAD_SECONDS = 20.0
DEFAULT_MIME = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/ogg", "sticker": "image/webp"}
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "application/pdf": "pdf",
}

# Who wrote a stored message -> Chatwoot's message_type.
MESSAGE_TYPES = {"medico": "incoming", "julia": "outgoing", "humano": "outgoing"}


def message_content(message: dict[str, Any]) -> str:
    """What Chatwoot shows for a stored message (media as a placeholder)."""
    text = (message.get("texto") or "").strip()
    return text or f"[{message.get('tipo') or 'mensagem'}]"


def handback_note(via: str) -> str:
    who = "pelo Chatwoot" if via == "chatwoot" else f"({via})"
    return f"Conversa devolvida para a Julia {who}. Ela volta a responder o médico."


async def sync_conversation(
    pool: AsyncConnectionPool, client: ChatwootClient, conversation_id: int, *, team_id: int | None = None
) -> dict[str, int]:
    """Mirror what waits for a conversation; returns counts. A handoff is
    assigned to `team_id` when given (else to nobody).

    Raises ChatwootError on the first failure; what was posted before it is
    recorded, so a retry continues where this run stopped.
    """
    counts = {"messages": 0, "events": 0}
    for _ in range(MAX_ROUNDS):
        work = (await fetch_one(pool, "chatwoot_sync_work", conversation_id=conversation_id, limit=BATCH))["work"]
        messages, events = work["messages"], work["events"]
        if not messages and not events:
            break
        chatwoot_id = work["chatwoot_conversation_id"] or await _open_conversation(pool, client, work)
        try:
            for message in messages:
                if await _post_message(pool, client, chatwoot_id, message):
                    counts["messages"] += 1
            if len(messages) == BATCH:
                continue  # notes come after the messages that preceded them
            for event in events:
                await _show_event(client, chatwoot_id, event, team_id=team_id)
                await fetch_one(pool, "mark_chatwoot_event_done", event_id=event["id"])
                counts["events"] += 1
        except ChatwootError as exc:
            if exc.status == 404:
                # Deleted in Chatwoot: the retry opens a new conversation.
                await fetch_one(
                    pool,
                    "forget_chatwoot_conversation",
                    conversation_id=conversation_id,
                    chatwoot_conversation_id=chatwoot_id,
                )
                logger.warning(
                    "chatwoot conversation is gone",
                    extra={
                        "action": "chatwoot_conversation_gone",
                        "conversation_id": conversation_id,
                        "chatwoot_conversation_id": chatwoot_id,
                    },
                )
            raise
    return counts


async def _open_conversation(pool: AsyncConnectionPool, client: ChatwootClient, work: dict[str, Any]) -> int:
    """Create (and record) the doctor's contact and the Chatwoot conversation."""
    cliente = work["cliente"]
    contact_id, source_id = work["contact_id"], work["source_id"]
    if contact_id is None:
        contact = await client.find_or_create_contact(
            phone=cliente["telefone"],
            identifier=cliente["lid"] or f"julia-cliente-{cliente['id']}",
            name=cliente["nome"],
        )
        contact_id, source_id = contact.id, contact.source_id
        await fetch_one(
            pool, "record_chatwoot_contact", cliente_id=cliente["id"], contact_id=contact_id, source_id=source_id
        )
    if source_id is None:
        source_id = await client.create_contact_inbox(contact_id)
        await fetch_one(
            pool, "record_chatwoot_contact", cliente_id=cliente["id"], contact_id=contact_id, source_id=source_id
        )
    chatwoot_id = await client.create_conversation(contact_id=contact_id, source_id=source_id)
    await fetch_one(
        pool,
        "record_chatwoot_conversation",
        conversation_id=work["conversation_id"],
        chatwoot_conversation_id=chatwoot_id,
        contact_id=contact_id,
    )
    logger.info(
        "chatwoot conversation opened",
        extra={
            "action": "chatwoot_conversation_opened",
            "conversation_id": work["conversation_id"],
            "chatwoot_conversation_id": chatwoot_id,
        },
    )
    return chatwoot_id


async def _post_message(
    pool: AsyncConnectionPool, client: ChatwootClient, chatwoot_id: int, message: dict[str, Any]
) -> bool:
    """Post one stored message once; False when another run already did."""
    interacao_id = message["interacao_id"]
    before = (await fetch_one(pool, "begin_chatwoot_message", interacao_id=interacao_id))["before"]
    if before is None:
        return False
    posted = None
    if before == "sending":
        # An earlier attempt may have posted it before failing to record it.
        posted = await client.find_marked_message(chatwoot_id, interacao_id)
    if posted is None:
        upload, problem = (None, None)
        if message.get("has_media"):
            upload, problem = await _doctor_media(pool, message)
        content = message_content(message) if upload is None else (message.get("texto") or "").strip()
        if problem:
            content = f"{content}\n(anexo não copiado: {problem})"
        posted = await client.create_message(
            chatwoot_id,
            content,
            message_type=MESSAGE_TYPES.get(message["autor"], "outgoing"),
            attributes={MARKER: interacao_id},
            upload=upload,
        )
    await fetch_one(pool, "mark_chatwoot_message_synced", interacao_id=interacao_id, chatwoot_message_id=posted)
    return True


async def _doctor_media(pool: AsyncConnectionPool, message: dict[str, Any]) -> tuple[Upload | None, str | None]:
    """The doctor's file from Evolution's payload (base64, else mediaUrl), or why not."""
    media = (await fetch_one(pool, "chatwoot_message_media", interacao_id=message["interacao_id"]))["media"]
    if not media:
        return None, None
    tipo = media.get("tipo") or "document"
    mimetype = (media.get("mimetype") or DEFAULT_MIME.get(tipo, "application/octet-stream")).split(";")[0].strip()
    name = media.get("file_name") or f"{tipo}-{message['interacao_id']}.{EXTENSIONS.get(mimetype, 'bin')}"
    data: bytes | None = None
    if media.get("base64"):
        try:
            data = base64.b64decode(media["base64"], validate=False)
        except (binascii.Error, ValueError):
            return None, "base64 inválido"
    elif media.get("url"):
        try:
            data = await _download(media["url"])
        except MediaTooLarge:
            return None, f"maior que {MAX_MEDIA_BYTES // (1024 * 1024)} MB"
        except httpx.HTTPError as exc:
            return None, f"download falhou ({type(exc).__name__})"
    else:
        return None, "a Evolution não enviou o arquivo (ative webhook_base64 ou S3)"
    if len(data) > MAX_MEDIA_BYTES:
        return None, f"maior que {MAX_MEDIA_BYTES // (1024 * 1024)} MB"
    return Upload(file_name=name, content_type=mimetype, data=data), None


class MediaTooLarge(JuliaError):
    """The file is larger than MAX_MEDIA_BYTES."""


async def _download(url: str) -> bytes:
    """GET a media URL, refusing more than MAX_MEDIA_BYTES."""
    async with (
        httpx.AsyncClient(timeout=MEDIA_DOWNLOAD_SECONDS, follow_redirects=True) as http,
        http.stream("GET", url) as response,
    ):
        response.raise_for_status()
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_MEDIA_BYTES:
                raise MediaTooLarge(url)
            chunks.append(chunk)
    return b"".join(chunks)


async def _show_event(
    client: ChatwootClient, chatwoot_id: int, event: dict[str, Any], *, team_id: int | None = None
) -> None:
    """Handoff: open the conversation (assigned to the team, if one is set),
    then a private note with summary and reason. Hand-back: resolve it
    (unless Chatwoot resolved it), then a note. Note: a private note."""
    payload = event["payload"]
    if event["kind"] == "note":
        await client.create_message(chatwoot_id, payload.get("texto") or "Aviso da Julia.", private=True)
    elif event["kind"] == "handoff":
        await client.toggle_status(chatwoot_id, "open")
        if team_id:
            await client.assign_team(chatwoot_id, team_id)
        await client.create_message(chatwoot_id, payload.get("nota") or "Handoff da Julia.", private=True)
    else:
        via = payload.get("via") or "julia"
        if via != "chatwoot":
            await client.toggle_status(chatwoot_id, "resolved")
        await client.create_message(chatwoot_id, handback_note(via), private=True)
