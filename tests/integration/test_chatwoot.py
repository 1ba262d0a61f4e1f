"""Issue 14: the handoff against a Chatwoot stand-in that behaves like real
Chatwoot (integer REST message types, substring search 15 a page, 20-message
pages, signed webhooks echoing every post, never retried): no agent reply
lost when the database stops, attachments both ways, exact contact identity,
Julia posting as a bot, handoffs assigned to a team."""

# The humans fixtures are imported from test_humans, and pytest injects them by name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from app.devkit.standins.chatwoot import MESSAGE_TYPE_NAMES, ChatwootStandin, attachment_json, message_created_event
from app.integrations.chatwoot import MARKER, ChatwootClient
from app.worker.chatwoot_sync import sync_conversation
from tests import payloads
from tests.conftest import database_url_for, wait_for
from tests.integration import test_humans as humans
from tests.integration.test_humans import (  # noqa: F401 - fixtures
    CHATWOOT_KEY,
    HANDOFF_REPLY,
    api_client,
    hand_off,
    post,
    post_chatwoot,
    quiet,
    slack,
    store,
)

BOT_TOKEN = "test-chatwoot-bot-token"
TEAM_ID = 4
# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


@pytest.fixture
def chatwoot() -> Iterator[ChatwootStandin]:
    """Chatwoot with an agent-role user token and an agent bot token."""
    with ChatwootStandin(api_key=CHATWOOT_KEY, account_id="1", bot_token=BOT_TOKEN, agent_role="agent") as server:
        yield server


@pytest.fixture
def test_env(test_env: dict[str, str], chatwoot: ChatwootStandin, slack) -> dict[str, str]:
    """The humans environment (Chatwoot, Slack) with a bot token, a handoff team and DB-outage timings."""
    return {
        **humans.test_env.__wrapped__(test_env, chatwoot, slack),
        "CHATWOOT_BOT_TOKEN": BOT_TOKEN,
        "CHATWOOT_HANDOFF_TEAM_ID": str(TEAM_ID),
        "CHATWOOT_STORE_RETRY_SECONDS": "8",
        "CHATWOOT_RESCUE_SECONDS": "90",
    }


@contextlib.contextmanager
def database_stopped(dbname: str) -> Iterator[None]:
    """The test's database refuses connections and loses those it had, until the block ends."""
    with psycopg.connect(database_url_for("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(dbname)))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            yield
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(dbname)))


def reconnect(database_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url, autocommit=True, row_factory=dict_row)


def public(chatwoot: ChatwootStandin, cw_id: int) -> list[dict[str, Any]]:
    return chatwoot.messages(cw_id, private=False)


def notes(chatwoot: ChatwootStandin, cw_id: int) -> list[str]:
    return [m["content"] for m in chatwoot.messages(cw_id, private=True)]


def handed_off_without_worker(api_client, db, evolution, claude, chatwoot, start_worker) -> int:
    """Hand off, then stop the worker: a worker loses its database listener in an
    outage and is restarted by its supervisor, which the tests do by hand after it."""
    workers = []
    cw_id = hand_off(api_client, db, evolution, claude, chatwoot, lambda: workers.append(start_worker()))
    for worker in workers:
        worker.stop()
    return cw_id


def delivery_of(chatwoot: ChatwootStandin, message_id: int) -> dict[str, Any] | None:
    return next((d for d in chatwoot.deliveries() if d["event"] == "message_created" and d["id"] == message_id), None)


def status_deliveries(chatwoot: ChatwootStandin) -> list[dict[str, Any]]:
    return [d for d in chatwoot.deliveries() if d["event"] == "conversation_status_changed"]


@contextlib.contextmanager
def api_of_its_own(chatwoot: ChatwootStandin, env: dict[str, str]) -> Iterator[Any]:
    """An api with its own settings, the fake Chatwoot delivering to it; the deliveries
    stop before it shuts down, also when the test fails inside the block."""
    from starlette.testclient import TestClient

    from app.core.config import load_settings
    from app.http.app import create_app

    with TestClient(create_app(load_settings("api", env))) as client:
        chatwoot.deliver_webhooks(
            lambda raw, headers: client.post("/webhooks/chatwoot", content=raw, headers=headers).status_code,
            secret=env["CHATWOOT_WEBHOOK_SECRET"],
        )
        try:
            yield client
        finally:
            humans.stop_delivering(chatwoot)


# ---------------------------------------------------------------------- the database stops


def test_agent_reply_sent_while_the_database_restarts_reaches_the_doctor(
    api_client, db, database_url, evolution, claude, chatwoot, start_worker
):
    cw_id = handed_off_without_worker(api_client, db, evolution, claude, chatwoot, start_worker)
    dbname = db.info.dbname
    with database_stopped(dbname):
        # The agent answers in Chatwoot while the database is down; the webhook waits for it.
        message = chatwoot.agent_writes(cw_id, "Oi doutor, **aqui é a Ana** da equipe")
        time.sleep(1.5)
        assert delivery_of(chatwoot, message["id"]) is None  # still retrying, not answered
    wait_for(lambda: delivery_of(chatwoot, message["id"]), timeout=20)
    assert delivery_of(chatwoot, message["id"])["status"] == 200
    start_worker()
    wait_for(lambda: len(evolution.sent_texts()) == 2, timeout=40)
    assert evolution.texts_to(payloads.PHONE)[-1] == "Oi doutor, *aqui é a Ana* da equipe"
    assert next(m for m in chatwoot.messages(cw_id) if m["id"] == message["id"])["status"] == "sent"
    with reconnect(database_url) as conn:
        wait_for(lambda: quiet(conn), timeout=30)
        assert conn.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'human'").fetchone()["n"] == 1


def test_agent_is_told_when_the_database_stays_down_and_the_reply_goes_out_after_recovery(
    api_client, db, database_url, evolution, claude, chatwoot, slack, start_worker
):
    cw_id = handed_off_without_worker(api_client, db, evolution, claude, chatwoot, start_worker)
    dbname = db.info.dbname
    with database_stopped(dbname):
        message = chatwoot.agent_writes(cw_id, "Doutor, o plantão de sábado é seu")
        # 8 s of retries, then 503: Chatwoot marks the message failed, the agent gets a note.
        wait_for(lambda: delivery_of(chatwoot, message["id"]), timeout=20)
        assert delivery_of(chatwoot, message["id"])["status"] == 503
        failed = next(m for m in chatwoot.messages(cw_id) if m["id"] == message["id"])
        assert failed["status"] == "failed"
        wait_for(lambda: any("AINDA NÃO foi entregue" in n for n in notes(chatwoot, cw_id)), timeout=10)
        wait_for(lambda: any("não registrada" in t for t in slack.texts()), timeout=10)
        assert len(evolution.sent_texts()) == 1
    # The database is back: the kept message is stored, sent, and the agent told so.
    wait_for(lambda: any("registrada depois da falha" in n for n in notes(chatwoot, cw_id)), timeout=40)
    start_worker()
    wait_for(lambda: len(evolution.sent_texts()) == 2, timeout=40)
    assert evolution.texts_to(payloads.PHONE)[-1] == "Doutor, o plantão de sábado é seu"
    with reconnect(database_url) as conn:
        row = conn.execute("SELECT chatwoot_message_id FROM chatwoot_agent_messages").fetchone()
        assert row == {"chatwoot_message_id": message["id"]}


def test_agent_is_told_to_resend_when_the_rescue_runs_out(
    db, database_url, evolution, claude, chatwoot, slack, start_worker, test_env
):
    env = {**test_env, "CHATWOOT_STORE_RETRY_SECONDS": "1", "CHATWOOT_RESCUE_SECONDS": "3"}
    with api_of_its_own(chatwoot, env) as client:
        cw_id = handed_off_without_worker(client, db, evolution, claude, chatwoot, start_worker)
        with database_stopped(db.info.dbname):
            message = chatwoot.agent_writes(cw_id, "Doutor, pode confirmar?")
            wait_for(lambda: any("Envie de novo" in n for n in notes(chatwoot, cw_id)), timeout=30)
            # The 503 is recorded when it reaches Chatwoot, which may be after the rescue's notes.
            assert wait_for(lambda: delivery_of(chatwoot, message["id"]), timeout=10)["status"] == 503
        wait_for(lambda: any("nem entregue (" in t for t in slack.texts()), timeout=10)
    with reconnect(database_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'human'").fetchone()["n"] == 0
    assert len(evolution.sent_texts()) == 1


def test_a_resolution_while_the_database_is_down_still_hands_back_after_recovery(
    db, database_url, evolution, claude, chatwoot, slack, start_worker, test_env
):
    env = {**test_env, "CHATWOOT_STORE_RETRY_SECONDS": "1"}
    with api_of_its_own(chatwoot, env) as client:
        cw_id = handed_off_without_worker(client, db, evolution, claude, chatwoot, start_worker)
        with database_stopped(db.info.dbname):
            chatwoot.agent_sets_status(cw_id, "resolved")
            wait_for(lambda: any("AINDA NÃO voltou para a Julia" in n for n in notes(chatwoot, cw_id)), timeout=20)
            # The rescue's note can reach Chatwoot before the webhook's 503 does.
            assert wait_for(lambda: status_deliveries(chatwoot), timeout=10)[-1]["status"] == 503
        wait_for(lambda: any("Resolução registrada" in n for n in notes(chatwoot, cw_id)), timeout=40)
    with reconnect(database_url) as conn:
        assert conn.execute("SELECT handoff_ativo FROM conversations").fetchone() == {"handoff_ativo": False}


# ---------------------------------------------------------------------- attachments


def test_agent_images_with_and_without_caption_reach_whatsapp_as_media_sends(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    cw_id = hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    with_caption = chatwoot.agent_writes(
        cw_id, "Segue a escala de **sábado**", attachments=[("escala.png", "image/png", PNG)]
    )
    without = chatwoot.agent_writes(cw_id, attachments=[("mapa.png", "image/png", PNG)])
    pdf = chatwoot.agent_writes(cw_id, attachments=[("contrato.pdf", "application/pdf", b"%PDF-1.4 ...")])
    wait_for(lambda: len(evolution.sent_media()) == 3 and chatwoot.webhooks_idle() and quiet(db), timeout=40)
    media = evolution.sent_media()
    assert [(m["mediatype"], m["caption"], m["fileName"], m["mimetype"]) for m in media] == [
        ("image", "Segue a escala de *sábado*", "escala.png", "image/png"),
        ("image", None, "mapa.png", "image/png"),
        ("document", None, "contrato.pdf", "application/pdf"),
    ]
    for sent, message in zip(media, (with_caption, without, pdf), strict=True):
        assert sent["media"] == message["attachments"][0]["data_url"]
        assert sent["number"] == payloads.PHONE
    assert evolution.sent_texts()[-1]["text"] == HANDOFF_REPLY  # no text send besides Julia's reply
    rows = db.execute("SELECT autor, texto FROM interacoes WHERE autor = 'humano' ORDER BY id").fetchall()
    assert [r["texto"] for r in rows] == [
        "[image: escala.png] Segue a escala de *sábado*",
        "[image: mapa.png]",
        "[document: contrato.pdf]",
    ]
    # Not mirrored back: Chatwoot shows the agent's three messages once each.
    agent_posts = [m for m in public(chatwoot, cw_id) if m["sender_type"] == "User"]
    assert [m["id"] for m in agent_posts] == [with_caption["id"], without["id"], pdf["id"]]
    assert all(d["status"] == 200 for d in chatwoot.deliveries())


def test_an_attachment_whatsapp_cannot_take_is_refused_with_a_note(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    cw_id = hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    huge = attachment_json(
        attachment_id=50,
        message_id=9100,
        data_url=f"{chatwoot.url}/rails/active_storage/blobs/50/video.mp4",
        file_type="video",
        file_size=40 * 1024 * 1024,
    )
    location = attachment_json(attachment_id=51, message_id=9101, data_url="", file_type="location")
    response = post_chatwoot(
        api_client, message_created_event(conversation_id=cw_id, message_id=9100, content="", attachments=[huge])
    )
    assert response.json()["status"] == "refused"
    response = post_chatwoot(
        api_client,
        message_created_event(conversation_id=cw_id, message_id=9101, content="Veja", attachments=[location]),
    )
    assert response.json()["status"] == "queued"
    wait_for(lambda: len(evolution.sent_texts()) == 2 and quiet(db), timeout=30)
    assert evolution.sent_texts()[-1]["text"] == "Veja"
    assert evolution.sent_media() == []
    wait_for(lambda: len([n for n in notes(chatwoot, cw_id) if "Anexo não enviado" in n]) == 2, timeout=20)
    refused = [n for n in notes(chatwoot, cw_id) if "Anexo não enviado" in n]
    assert "video.mp4: 40 MB, o WhatsApp aceita até 16 MB para video" in refused[0]
    assert "tipo 'location'" in refused[1]


def test_a_doctors_image_appears_in_chatwoot_as_an_attachment(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    claude.queue_reply("Recebi a foto, obrigada!")
    start_worker()
    photo = PNG + bytes(3 * 1024 * 1024)  # 3 MB: a webhook over the 2 MB text limit
    image = {
        "imageMessage": {"caption": "meu CRM", "mimetype": "image/png", "url": "https://mmg.whatsapp.net/x.enc"},
        "base64": base64.b64encode(photo).decode(),
    }
    post(api_client, message=image)
    wait_for(
        lambda: chatwoot.conversations() and len(public(chatwoot, chatwoot.conversations()[0]["id"])) == 2, timeout=40
    )
    cw_id = chatwoot.conversations()[0]["id"]
    incoming, reply = public(chatwoot, cw_id)
    assert MESSAGE_TYPE_NAMES[incoming["message_type"]] == "incoming"
    assert incoming["content"] == "meu CRM"
    (attachment,) = incoming["attachments"]
    assert attachment["file_type"] == "image"
    assert chatwoot.blob(attachment["id"])[1:] == ("image/png", photo)
    # Mirrored: the stored history no longer carries the file's base64.
    kept = db.execute("SELECT payload -> 'message' ? 'base64' AS kept FROM interacoes WHERE autor = 'medico'")
    assert kept.fetchone() == {"kept": False}
    assert reply["content"] == "Recebi a foto, obrigada!"
    assert reply["sender_type"] == "AgentBot"  # Julia is a bot in Chatwoot's reports


def test_a_doctors_file_without_data_is_mirrored_as_a_placeholder_saying_why(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    start_worker()
    post(api_client, message={"documentMessage": {"fileName": "rg.pdf", "mimetype": "application/pdf"}})
    wait_for(lambda: chatwoot.conversations() and public(chatwoot, chatwoot.conversations()[0]["id"]), timeout=40)
    first = public(chatwoot, chatwoot.conversations()[0]["id"])[0]
    assert first["attachments"] == []
    assert first["content"].startswith("[document]")
    assert "webhook_base64" in first["content"]


# ---------------------------------------------------------------------- identity, pages, bot, team


def test_handoff_is_posted_by_the_bot_and_assigned_to_the_team_not_the_tokens_user(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    cw_id = hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    (conversation,) = chatwoot.conversations()
    assert conversation["assignee_id"] is None  # the bot opened it: nobody was auto-assigned
    assert conversation["team_id"] == TEAM_ID
    julia = [m for m in public(chatwoot, cw_id) if MESSAGE_TYPE_NAMES[m["message_type"]] == "outgoing"]
    assert [m["sender_type"] for m in julia] == ["AgentBot"]
    assert all(m["sender_type"] == "AgentBot" for m in chatwoot.messages(cw_id, private=True))
    toggles = [r for r in chatwoot.api_calls() if r.path.endswith("/toggle_status")]
    assert toggles and all(r.headers["api_access_token"] == BOT_TOKEN for r in toggles)


def test_without_a_bot_token_the_agent_token_self_assigns_which_is_why_the_docs_ask_for_one(
    db, chatwoot, stored_conversation_factory
):
    conversation_id, _ = stored_conversation_factory("5511911110000", "Dr. Sem Bot")
    db.execute(
        "UPDATE conversations SET handoff_ativo = true, handoff_motivo = 'teste' WHERE id = %s", (conversation_id,)
    )
    run_sync(db, chatwoot, [conversation_id], bot_token="")
    (conversation,) = chatwoot.conversations()
    assert conversation["assignee_id"] == chatwoot.user["id"]


@pytest.fixture
def stored_conversation_factory(db):
    def make(phone: str, nome: str, *, cliente_id: int | None = None) -> tuple[int, int]:
        if cliente_id is None:
            row = db.execute("INSERT INTO clientes (telefone, nome) VALUES (%s, %s) RETURNING id", (phone, nome))
        else:
            row = db.execute(
                "INSERT INTO clientes (id, telefone, nome) OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s) RETURNING id",
                (cliente_id, phone, nome),
            )
        cid = row.fetchone()["id"]
        conv = db.execute(
            "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, %s) RETURNING id",
            (cid, f"{phone}@s.whatsapp.net"),
        ).fetchone()["id"]
        return conv, cid

    return make


def run_sync(db, chatwoot: ChatwootStandin, conversation_ids: list[int], *, bot_token: str = BOT_TOKEN) -> list[Any]:
    """Run the mirror of these conversations at once (as parallel jobs would)."""
    url = database_url_for(db.info.dbname)

    async def main() -> list[Any]:
        pool = AsyncConnectionPool(url, kwargs={"autocommit": True, "row_factory": dict_row}, open=False, max_size=8)
        await pool.open()
        try:
            async with ChatwootClient(
                base_url=chatwoot.url, api_key=CHATWOOT_KEY, account_id="1", inbox_id="1", bot_token=bot_token
            ) as client:
                slots = asyncio.Semaphore(2)  # at most two mirror jobs run at once (db/humans.sql)

                async def one(conversation_id: int) -> Any:
                    async with slots:
                        return await sync_conversation(pool, client, conversation_id, team_id=None)

                return await asyncio.gather(*(one(c) for c in conversation_ids), return_exceptions=True)
        finally:
            await pool.close()

    return asyncio.run(main())


def test_forty_doctors_sharing_a_prefix_each_find_their_own_contact(db, chatwoot, stored_conversation_factory):
    # Ids 1, 10-19 and 100-128: "julia-cliente-1" is a substring of all forty identifiers.
    ids = [1, *range(10, 20), *range(100, 129)]
    assert len(ids) == 40
    doctors = {}
    for n, cliente_id in enumerate(ids):
        conversation_id, _ = stored_conversation_factory(
            f"55119{n:08d}", f"Dra. Ana Lima {n:02d}", cliente_id=cliente_id
        )
        doctors[conversation_id] = cliente_id
        store(db, conversation_id, cliente_id, "medico", f"oi, sou a doutora {n}")
    # Their contacts already exist in Chatwoot (an earlier install), by identifier and without phone.
    existing = {
        cid: chatwoot.add_contact(name=f"Dra. Ana Lima {cid}", identifier=f"julia-cliente-{cid}") for cid in ids
    }
    results = run_sync(db, chatwoot, list(doctors))
    assert [r for r in results if isinstance(r, BaseException)] == []
    conversations = chatwoot.conversations()
    assert len(conversations) == 40
    by_contact = {c["contact_id"]: c for c in conversations}
    assert set(by_contact) == set(existing.values())  # each reused its own contact, none created
    for cliente_id in doctors.values():
        recorded = db.execute(
            "SELECT ct.contact_id, cc.chatwoot_conversation_id FROM chatwoot_contatos AS ct "
            "JOIN chatwoot_conversas AS cc ON cc.contact_id = ct.contact_id WHERE ct.cliente_id = %s",
            (cliente_id,),
        ).fetchone()
        assert recorded["contact_id"] == existing[cliente_id]
        (only,) = public(chatwoot, recorded["chatwoot_conversation_id"])
        assert only["content"] == f"oi, sou a doutora {ids.index(cliente_id)}"
    assert len(chatwoot.contacts()) == 40


def test_no_duplicate_mirror_messages_after_thirty_messages_in_one_conversation(
    db, chatwoot, stored_conversation_factory
):
    conversation_id, cliente_id = stored_conversation_factory("5511922223333", "Dr. Trinta")
    first = store(db, conversation_id, cliente_id, "medico", "mensagem 0")
    assert run_sync(db, chatwoot, [conversation_id]) == [{"messages": 1, "events": 0}]
    (conv,) = chatwoot.conversations()
    # A crash after Chatwoot took message 1 but before it was recorded ...
    crashed = store(db, conversation_id, cliente_id, "medico", "mensagem 1")
    assert db.execute("SELECT begin_chatwoot_message(%s) AS s", (crashed,)).fetchone()["s"] == "pending"
    chatwoot_client_post(chatwoot, conv["id"], "mensagem 1", {MARKER: crashed})
    # ... then the team wrote 25 notes: the lost post is no longer in the latest 20.
    for n in range(25):
        chatwoot.agent_writes(conv["id"], f"nota {n}", private=True)
    for n in range(2, 30):
        store(db, conversation_id, cliente_id, "medico" if n % 2 else "julia", f"mensagem {n}")
    assert run_sync(db, chatwoot, [conversation_id]) == [{"messages": 29, "events": 0}]
    assert run_sync(db, chatwoot, [conversation_id]) == [{"messages": 0, "events": 0}]
    texts = [m["content"] for m in public(chatwoot, conv["id"])]
    assert texts == [f"mensagem {n}" for n in range(30)]
    markers = [m["content_attributes"].get(MARKER) for m in public(chatwoot, conv["id"])]
    assert len(markers) == len(set(markers)) == 30
    assert first in markers
    pages = [r for r in chatwoot.api_calls() if r.method == "GET" and r.path.endswith("/messages")]
    assert any("before=" in r.query for r in pages)  # it paged back to find it


def chatwoot_client_post(chatwoot: ChatwootStandin, cw_id: int, content: str, attributes: dict[str, Any]) -> None:
    async def main() -> None:
        async with ChatwootClient(base_url=chatwoot.url, api_key=CHATWOOT_KEY, account_id="1", inbox_id="1") as c:
            await c.create_message(cw_id, content, message_type="incoming", attributes=attributes)

    asyncio.run(main())


def test_the_stand_in_answers_like_chatwoot(chatwoot):
    """The shapes the tests above rely on, checked against Chatwoot's own code."""

    async def main() -> None:
        async with ChatwootClient(base_url=chatwoot.url, api_key=CHATWOOT_KEY, account_id="1", inbox_id="1") as c:
            for n in range(20):
                chatwoot.add_contact(name=f"Dr. Prefixo {n}", identifier=f"julia-cliente-1{n}")
            page = await c._request("GET", "/contacts/search", params={"q": "julia-cliente-1"})
            assert page["meta"] == {"count": 20, "current_page": 1}
            assert len(page["payload"]) == 15
            assert (await c.find_contact(identifier="julia-cliente-10", phone=None)) is not None
            with pytest.raises(Exception, match="Identifier has already been taken"):
                await c._request("POST", "/contacts", {"name": "x", "identifier": "julia-cliente-10"})
            contact = await c.find_or_create_contact(phone="5511900001111", identifier="x-1", name="Dr. X")
            with pytest.raises(Exception, match="Phone number has already been taken"):
                await c._request("POST", "/contacts", {"name": "y", "phone_number": "+5511900001111"})
            cw_id = await c.create_conversation(contact_id=contact.id, source_id=contact.source_id)
            ids = [await c.create_message(cw_id, f"m{n}") for n in range(25)]
            latest = await c._request("GET", f"/conversations/{cw_id}/messages")
            assert [m["id"] for m in latest["payload"]] == ids[-20:]
            assert {m["message_type"] for m in latest["payload"]} == {1}
            before = await c._request("GET", f"/conversations/{cw_id}/messages", params={"before": str(ids[-20])})
            assert [m["id"] for m in before["payload"]] == ids[:5]
        async with ChatwootClient(base_url=chatwoot.url, api_key=BOT_TOKEN, account_id="1", inbox_id="1") as bot:
            with pytest.raises(Exception, match="not authorized for bots"):
                await bot.find_contact(identifier="x-1", phone=None)

    asyncio.run(main())
