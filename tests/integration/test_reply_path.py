"""The whole path on real Postgres: webhook -> pgmq -> worker -> Claude
stand-in -> outbox -> Evolution stand-in."""

from __future__ import annotations

import json

from tests import payloads
from tests.conftest import WEBHOOK_SECRET, settled, wait_for

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}


def post(api_client, body):
    response = api_client.post("/webhooks/evolution", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def outbound(db):
    return db.execute("SELECT state, number, texto FROM outbox ORDER BY id").fetchall()


def test_message_gets_one_reply_to_the_doctors_phone(api_client, db, evolution, claude, start_worker):
    start_worker()
    claude.queue_reply("Olá, Dr. Rafael! Temos plantões em São Paulo nesta semana.")
    assert post(api_client, payloads.upsert(text="Oi, tem plantão?"))["status"] == "queued"

    wait_for(lambda: settled(db) and evolution.sent_texts())
    sent = evolution.sent_texts()
    assert [(m["number"], m["text"]) for m in sent] == [
        (payloads.PHONE, "Olá, Dr. Rafael! Temos plantões em São Paulo nesta semana.")
    ]
    # The doctor's message and Julia's answer are both in the history.
    rows = db.execute("SELECT direcao, autor, texto FROM interacoes ORDER BY id").fetchall()
    assert [(r["direcao"], r["autor"]) for r in rows] == [("entrada", "medico"), ("saida", "julia")]
    # Claude saw the doctor's text and the persona with the company name.
    call = claude.calls()[-1]
    assert call["messages"][-1]["content"] == "Oi, tem plantão?"
    assert "Julia" in call["system"][0]["text"]
    assert call["system"][0]["cache_control"] == {"type": "ephemeral"}
    # One request to send it: "typing" is sendText's delay, not a sendPresence of its own.
    paths = [r.path.split("/")[2] for r in evolution.requests if r.path.startswith(("/message/", "/chat/"))]
    assert paths == ["sendText"]
    assert [r.json["delay"] for r in evolution.requests if "/sendText/" in r.path] == [400 + 15 * len(sent[0]["text"])]
    # Chatwoot is not configured: both are skipped in SQL, no mirror job ran.
    mirror = db.execute("SELECT state FROM chatwoot_messages ORDER BY interacao_id").fetchall()
    assert mirror == [{"state": "skipped"}, {"state": "skipped"}]
    jobs = db.execute("SELECT count(*) AS n FROM procrastinate_jobs WHERE task_name = 'sync_chatwoot_conversation'")
    assert jobs.fetchone() == {"n": 0}


def test_duplicate_delivery_is_stored_once_and_answered_once(api_client, db, evolution, start_worker):
    body = payloads.upsert(text="Boa tarde")
    post(api_client, body)
    post(api_client, body)  # Evolution retried the same key.id
    start_worker()
    wait_for(lambda: evolution.sent_texts())
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM pgmq.a_inbound").fetchone()["n"] == 2)
    assert db.execute("SELECT count(*) AS n FROM interacoes WHERE direcao='entrada'").fetchone()["n"] == 1
    wait_for(lambda: settled(db))
    assert len(evolution.sent_texts()) == 1


def test_burst_of_three_messages_gets_one_reply(api_client, db, evolution, claude, start_worker):
    for text in ("Oi", "Vi o anúncio", "Tem plantão de GO no sábado?"):
        post(api_client, payloads.upsert(text=text))
    start_worker()
    wait_for(lambda: evolution.sent_texts())
    wait_for(lambda: settled(db))
    assert len(evolution.sent_texts()) == 1
    # The one answer was written knowing all three messages.
    assert claude.calls()[-1]["messages"] == [
        {"role": "user", "content": "Oi\nVi o anúncio\nTem plantão de GO no sábado?"}
    ]


def test_paused_julia_stores_but_sends_nothing_and_answers_on_resume(api_client, db, evolution, start_worker):
    db.execute("SELECT pause_julia('manutenção', 'manual')")
    start_worker()
    post(api_client, payloads.upsert(text="Alguém aí?"))
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM interacoes").fetchone()["n"] == 1)
    wait_for(lambda: settled(db))
    assert evolution.sent_texts() == []

    db.execute("SELECT resume_julia('fim da manutenção', 'manual')")
    wait_for(lambda: evolution.sent_texts(), timeout=10)
    assert len(evolution.sent_texts()) == 1


def test_pause_after_reply_is_written_holds_the_send_until_resume(db, evolution, claude, api_client, start_worker):
    claude.set_delay(0.8)  # the model is slow; Julia is paused meanwhile
    start_worker()
    post(api_client, payloads.upsert(text="Oi"))
    wait_for(lambda: claude.calls())
    db.execute("SELECT pause_julia('emergência', 'manual')")
    wait_for(lambda: db.execute("SELECT state FROM outbox").fetchone() or None)
    wait_for(lambda: db.execute("SELECT state FROM outbox").fetchone()["state"] == "deferred")
    assert evolution.sent_texts() == []
    db.execute("SELECT resume_julia('ok', 'manual')")
    wait_for(lambda: outbound(db)[0]["state"] == "sent")
    assert len(evolution.sent_texts()) == 1


def test_transient_llm_and_evolution_errors_are_retried_and_sent_once(api_client, db, evolution, claude, start_worker):
    claude.queue_error(529)
    claude.queue_error(529)
    claude.queue_error(529)  # more than the SDK's own retries: the job retries
    claude.queue_reply("Oi! Aqui é a Julia.")
    evolution.fail_next(500)
    start_worker()
    post(api_client, payloads.upsert(text="Oi"))
    wait_for(lambda: outbound(db) and outbound(db)[0]["state"] == "sent", timeout=30)
    assert [m["text"] for m in evolution.sent_texts()] == ["Oi! Aqui é a Julia."]


def test_with_the_error_classifier_a_permanent_llm_error_stops_at_once(api_client, db, evolution, claude, start_worker):
    db.execute("UPDATE feature_flags SET value = '{\"enabled\": true}' WHERE key = 'error_classifier'")
    claude.queue_error(400, "invalid_request_error")
    start_worker()
    post(api_client, payloads.upsert(text="Oi"))
    failure = wait_for(lambda: db.execute("SELECT task_name, classification, error FROM job_failures").fetchone())
    assert failure == {
        "task_name": "reply_to_conversation",
        "classification": "permanent",
        "error": "Anthropic answered 400",
    }
    wait_for(lambda: settled(db))
    assert len(claude.calls()) == 1  # not retried
    assert evolution.sent_texts() == []
    assert outbound(db) == []


def test_without_the_error_classifier_a_permanent_error_is_retried(api_client, db, evolution, claude, start_worker):
    claude.queue_error(400, "invalid_request_error")
    claude.queue_reply("Oi! Aqui é a Julia.")
    start_worker()
    post(api_client, payloads.upsert(text="Oi"))
    wait_for(lambda: outbound(db) and outbound(db)[0]["state"] == "sent", timeout=30)
    assert [m["text"] for m in evolution.sent_texts()] == ["Oi! Aqui é a Julia."]
    assert db.execute("SELECT count(*) AS n FROM job_failures").fetchone()["n"] == 0


def test_lid_only_message_is_answered_on_the_lid_and_learns_the_phone_later(api_client, db, evolution, start_worker):
    start_worker()
    post(api_client, payloads.upsert(layout="lid_only", text="Oi"))
    wait_for(lambda: evolution.sent_texts())
    assert evolution.sent_texts()[0]["number"] == payloads.LID
    # A later event carries both: the same doctor gets the phone, no new row.
    post(api_client, payloads.upsert(layout="v2_3_5", text="Pode me mandar os plantões?"))
    wait_for(lambda: len(evolution.sent_texts()) == 2)
    assert evolution.sent_texts()[1]["number"] == payloads.PHONE
    rows = db.execute("SELECT telefone, lid FROM clientes").fetchall()
    assert rows == [{"telefone": payloads.PHONE, "lid": payloads.LID}]


def test_poison_message_is_archived_with_its_error(db, start_worker):
    # A queue message the worker cannot process (no message id).
    msg_id = db.execute('SELECT enqueue_inbound(\'{"v": 1, "message": {}}\'::jsonb) AS id').fetchone()["id"]
    start_worker()
    failure = wait_for(
        lambda: db.execute("SELECT read_ct, error FROM inbound_failures WHERE msg_id = %s", (msg_id,)).fetchone(),
        timeout=20,
    )
    assert "has no message.message_id" in failure["error"]
    assert failure["read_ct"] == 5
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound").fetchone()["n"] == 0
    assert db.execute("SELECT count(*) AS n FROM pgmq.a_inbound WHERE msg_id = %s", (msg_id,)).fetchone()["n"] == 1


def queued(message_id: str, phone: str) -> dict:
    """A doctor's message as the api puts it on pgmq 'inbound'."""
    message = {"message_id": message_id, "instance": None, "phone": phone, "remote_jid": f"{phone}@s.whatsapp.net"}
    message |= {"lid": None, "from_me": False, "push_name": "Dra. Ana", "text": "oi", "media_type": None}
    return {"v": 1, "event": "messages.upsert", "message": message | {"message_type": "conversation"}, "raw": {}}


async def test_a_poison_message_in_a_batch_leaves_the_others_stored(db, settings):
    from app.store.pool import new_pool
    from app.worker.inbound import consume_once

    good = [queued(f"BATCH{n}", f"55119{70000000 + n}") for n in range(3)]
    for body in good[:2]:
        db.execute("SELECT enqueue_inbound(%s::jsonb)", (json.dumps(body),))
    poison = db.execute('SELECT enqueue_inbound(\'{"v": 1, "message": {}}\'::jsonb) AS id').fetchone()["id"]
    db.execute("SELECT enqueue_inbound(%s::jsonb)", (json.dumps(good[2]),))
    pool = new_pool(settings, max_size=2)
    await pool.open(wait=True)
    try:
        assert await consume_once(pool, settings) == 4  # one read, one batch that fails
    finally:
        await pool.close()
    stored = db.execute("SELECT message_id FROM interacoes ORDER BY id").fetchall()
    assert [r["message_id"] for r in stored] == ["BATCH0", "BATCH1", "BATCH2"]
    # The poison one stays queued for its next read (archived after inbound_max_reads).
    assert db.execute("SELECT msg_id FROM pgmq.q_inbound").fetchall() == [{"msg_id": poison}]
