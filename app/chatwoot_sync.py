"""The Chatwoot mirror of one conversation: post what SQL says is waiting
(messages oldest first, then handoff/hand-back notes and status), recording
each step in SQL as it succeeds. Run by the `sync_chatwoot_conversation` job.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg_pool import AsyncConnectionPool

from app.integrations.chatwoot import MARKER, ChatwootClient, ChatwootError
from app.queries import queries

logger = logging.getLogger(__name__)

BATCH = 50
MAX_ROUNDS = 20  # new messages may keep arriving; the next job picks up the rest

# Who wrote a stored message -> Chatwoot's message_type.
MESSAGE_TYPES = {"medico": "incoming", "julia": "outgoing", "humano": "outgoing"}


async def _call(pool: AsyncConnectionPool, name: str, **params: Any) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(queries[name], params)
        return await cur.fetchone()


def message_content(message: dict[str, Any]) -> str:
    """What Chatwoot shows for a stored message (media as a placeholder)."""
    text = (message.get("texto") or "").strip()
    return text or f"[{message.get('tipo') or 'mensagem'}]"


def handback_note(via: str) -> str:
    who = "pelo Chatwoot" if via == "chatwoot" else f"({via})"
    return f"Conversa devolvida para a Julia {who}. Ela volta a responder o médico."


async def sync_conversation(pool: AsyncConnectionPool, client: ChatwootClient, conversation_id: int) -> dict[str, int]:
    """Mirror what waits for a conversation; returns counts.

    Raises ChatwootError on the first failure; what was posted before it is
    recorded, so a retry continues where this run stopped.
    """
    counts = {"messages": 0, "events": 0}
    for _ in range(MAX_ROUNDS):
        work = (await _call(pool, "chatwoot_sync_work", conversation_id=conversation_id, limit=BATCH))["work"]
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
                await _show_event(client, chatwoot_id, event)
                await _call(pool, "mark_chatwoot_event_done", event_id=event["id"])
                counts["events"] += 1
        except ChatwootError as exc:
            if exc.status == 404:
                # Deleted in Chatwoot: the retry opens a new conversation.
                await _call(
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
        await _call(
            pool, "record_chatwoot_contact", cliente_id=cliente["id"], contact_id=contact_id, source_id=source_id
        )
    if source_id is None:
        source_id = await client.create_contact_inbox(contact_id)
        await _call(
            pool, "record_chatwoot_contact", cliente_id=cliente["id"], contact_id=contact_id, source_id=source_id
        )
    chatwoot_id = await client.create_conversation(contact_id=contact_id, source_id=source_id)
    await _call(
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
    before = (await _call(pool, "begin_chatwoot_message", interacao_id=interacao_id))["before"]
    if before is None:
        return False
    posted = None
    if before == "sending":
        # An earlier attempt may have posted it before failing to record it.
        posted = await client.find_marked_message(chatwoot_id, interacao_id)
    if posted is None:
        posted = await client.create_message(
            chatwoot_id,
            message_content(message),
            message_type=MESSAGE_TYPES.get(message["autor"], "outgoing"),
            attributes={MARKER: interacao_id},
        )
    await _call(pool, "mark_chatwoot_message_synced", interacao_id=interacao_id, chatwoot_message_id=posted)
    return True


async def _show_event(client: ChatwootClient, chatwoot_id: int, event: dict[str, Any]) -> None:
    """Handoff: open the conversation, then a private note with summary and reason.
    Hand-back: resolve it (unless Chatwoot resolved it), then a note."""
    payload = event["payload"]
    if event["kind"] == "handoff":
        await client.toggle_status(chatwoot_id, "open")
        await client.create_message(chatwoot_id, payload.get("nota") or "Handoff da Julia.", private=True)
    else:
        via = payload.get("via") or "julia"
        if via != "chatwoot":
            await client.toggle_status(chatwoot_id, "resolved")
        await client.create_message(chatwoot_id, handback_note(via), private=True)
