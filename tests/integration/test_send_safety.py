"""Edges of the send path: re-claims, cooldown under concurrency, locks,
echoes that prove a send, replies a human made unnecessary."""

from __future__ import annotations

from datetime import datetime, timedelta

from app.store.queries import queries
from tests import payloads
from tests.conftest import WEBHOOK_SECRET, wait_for
from tests.integration.test_outreach import ALWAYS, SP, WED_0900, claim, doctor, mark_sent, outbox_row, set_policy

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}


def conversation(db, cliente_id: int, **cols) -> int:
    names = ", ".join(["cliente_id", "reply_jid", *cols])
    marks = ", ".join(["%s"] * (2 + len(cols)))
    phone = db.execute("SELECT telefone FROM clientes WHERE id = %s", (cliente_id,)).fetchone()["telefone"]
    return db.execute(
        f"INSERT INTO conversations ({names}) VALUES ({marks}) RETURNING id", [cliente_id, phone, *cols.values()]
    ).fetchone()["id"]


def test_a_reclaim_after_a_crash_checks_opt_out_again_without_counting_twice(db):
    row = outbox_row(db, doctor(db, 1))
    assert claim(db, row, WED_0900, ALWAYS, job_id=77)["claimed"]
    assert claim(db, row, WED_0900 + timedelta(minutes=1), ALWAYS, job_id=77)["claimed"]  # same job: ok
    assert db.execute("SELECT claims FROM send_counters WHERE window_kind = 'hour'").fetchone()["claims"] == 1
    db.execute("UPDATE clientes SET opt_out = true")
    assert claim(db, row, WED_0900 + timedelta(minutes=2), ALWAYS, job_id=77)["reason"] == "opted_out"


def test_two_proactive_messages_to_one_doctor_in_flight_respect_the_cooldown(db):
    cliente = doctor(db, 1)
    first, second = outbox_row(db, cliente), outbox_row(db, cliente, kind="follow_up")
    assert claim(db, first, WED_0900, {**ALWAYS, "cooldown_hours": 24})["claimed"]
    refused = claim(db, second, WED_0900 + timedelta(seconds=1), {**ALWAYS, "cooldown_hours": 24})
    assert (refused["reason"], refused["next_at"]) == ("cooldown", WED_0900 + timedelta(hours=24))


def test_the_send_jobs_claim_skips_the_flush_wait_in_its_own_transaction_only(db):
    """The worker's claim commits without waiting for its WAL flush (synchronous_commit off for that
    transaction alone: the session's later commits, e.g. marking the row sent, stay synchronous);
    await_durable is a synchronous commit of its own, so it flushes every commit before it."""
    set_policy(db, ALWAYS)
    first, second = outbox_row(db, doctor(db, 1)), outbox_row(db, doctor(db, 2))
    params = {"job_id": 7, "app_env": "test", "project_ref": "", "now": WED_0900}
    setting = "SELECT current_setting('synchronous_commit') AS s"
    assert db.execute(queries["claim_send_slot"], {**params, "outbox_id": first}).fetchone()["claimed"] is True
    assert db.execute(setting).fetchone()["s"] == "on"
    with db.transaction():
        assert db.execute(queries["claim_send_slot"], {**params, "outbox_id": second}).fetchone()["claimed"]
        assert db.execute(setting).fetchone()["s"] == "off"
    assert db.execute(setting).fetchone()["s"] == "on"
    ids = [int(str(db.execute(queries["await_durable"]).fetchone()["xact_id"])) for _ in range(2)]
    assert ids[1] > ids[0]  # each call commits a transaction of its own


def test_a_deferred_proactive_send_does_not_hold_up_the_conversations_replies(db):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    follow_up = outbox_row(db, cliente, kind="follow_up", conversation_id=conv)
    claim(db, follow_up, datetime(2026, 12, 5, 22, 0, tzinfo=SP), {"weekdays": [1]})  # deferred to Monday
    reply = outbox_row(db, cliente, kind="reply", conversation_id=conv)
    db.execute("SELECT defer_send(%s)", (reply,))
    jobs = "SELECT (args->>'outbox_id')::bigint AS id, lock FROM procrastinate_jobs WHERE task_name = 'send_outbox'"
    # The deferred row waits without a job (the minute sweep gives it one when due) ...
    assert {r["id"]: r["lock"] for r in db.execute(jobs)} == {reply: f"sends:conversation:{conv}"}
    # ... and even once released its job locks alone.
    monday_8 = datetime(2026, 12, 7, 8, 0, tzinfo=SP)
    assert db.execute("SELECT release_due_sends(%s) AS n", (monday_8,)).fetchone()["n"] == 1
    locks = {r["id"]: r["lock"] for r in db.execute(jobs)}
    assert locks == {follow_up: f"outbox:{follow_up}", reply: f"sends:conversation:{conv}"}
    fetched = db.execute("SELECT id, args FROM procrastinate_fetch_job_v2(ARRAY['sends'], NULL)").fetchone()
    assert fetched["args"] == {"outbox_id": reply}


def test_a_follow_up_is_dropped_when_the_doctor_wrote_back(db):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    row = outbox_row(db, cliente, kind="follow_up", conversation_id=conv)
    db.execute("UPDATE conversations SET last_inbound_at = now() + interval '1 second' WHERE id = %s", (conv,))
    assert claim(db, row, datetime.now(SP), ALWAYS)["reason"] == "doctor_replied"
    assert db.execute("SELECT state FROM outbox WHERE id = %s", (row,)).fetchone()["state"] == "failed"


def test_a_sent_campaign_message_joins_the_doctors_conversation(db):
    cliente = doctor(db, 1)
    row = outbox_row(db, cliente)
    assert claim(db, row, WED_0900, ALWAYS, job_id=5)["claimed"]
    mark_sent(db, row, 5, WED_0900)
    history = db.execute("SELECT autor, texto FROM interacoes WHERE cliente_id = %s", (cliente,)).fetchall()
    assert history == [{"autor": "julia", "texto": "Oi! Temos plantões."}]
    assert db.execute("SELECT conversation_id FROM outbox WHERE id = %s", (row,)).fetchone()["conversation_id"]


def test_the_echo_of_a_send_whose_answer_was_lost_marks_it_sent_instead_of_a_takeover(db, api_client, start_worker):
    cliente = db.execute(
        "INSERT INTO clientes (telefone, nome) VALUES (%s, 'Dr. Rafael') RETURNING id", (payloads.PHONE,)
    ).fetchone()["id"]
    conv = conversation(db, cliente)
    row = outbox_row(db, cliente, kind="reply", conversation_id=conv)
    db.execute("UPDATE outbox SET state = 'queued' WHERE id = %s", (row,))  # timed out, back to queued
    start_worker()
    echo = payloads.upsert(text="Oi! Temos plantões.", from_me=True)
    assert api_client.post("/webhooks/evolution", json=echo, headers=AUTH).status_code == 200
    wait_for(lambda: db.execute("SELECT state FROM outbox WHERE id = %s", (row,)).fetchone()["state"] == "sent")
    assert db.execute("SELECT julia_pausada_ate FROM conversations").fetchone()["julia_pausada_ate"] is None
    assert (
        db.execute("SELECT evolution_message_id FROM outbox").fetchone()["evolution_message_id"]
        == (echo["data"]["key"]["id"])
    )


def test_a_reply_written_after_a_human_answered_is_dropped(db):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    ids = []
    for autor, texto in (("medico", "Oi"), ("humano", "Oi, aqui é o Marcos")):
        ids.append(
            db.execute(
                "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto) "
                "VALUES (%s, %s, %s, 'entrada', %s, %s) RETURNING id",
                (conv, cliente, f"m{autor}", autor, texto),
            ).fetchone()["id"]
        )
    queued = db.execute("SELECT * FROM enqueue_reply(%s, %s, %s)", (conv, ids[0], ["Olá!"])).fetchall()
    assert queued == []
    assert db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] == 0


def test_owed_replies_are_re_driven_but_not_after_a_permanent_failure(db):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    db.execute(
        "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto, created_at) "
        "VALUES (%s, %s, 'x1', 'entrada', 'medico', 'Oi', now() - interval '10 minutes')",
        (conv, cliente),
    )
    db.execute("UPDATE conversations SET last_inbound_at = now() - interval '10 minutes'")
    db.execute("DELETE FROM procrastinate_jobs")
    assert db.execute("SELECT sweep_owed_replies('3 minutes') AS n").fetchone()["n"] == 1
    assert db.execute("SELECT sweep_owed_replies('3 minutes') AS n").fetchone()["n"] == 0  # a job is waiting
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute(
        "SELECT record_job_failure('reply_to_conversation', 1, %s, NULL, 'permanent', 'Anthropic answered 400')",
        (conv,),
    )
    assert db.execute("SELECT sweep_owed_replies('3 minutes') AS n").fetchone()["n"] == 0


def test_send_message_event_records_a_send_whose_answer_was_lost_and_is_never_a_takeover(db, api_client, start_worker):
    cliente = db.execute(
        "INSERT INTO clientes (telefone, nome) VALUES (%s, 'Dr. Rafael') RETURNING id", (payloads.PHONE,)
    ).fetchone()["id"]
    conv = conversation(db, cliente)
    row = outbox_row(db, cliente, kind="reply", conversation_id=conv)
    db.execute("UPDATE outbox SET state = 'queued' WHERE id = %s", (row,))
    start_worker()
    ours = payloads.upsert(text="Oi! Temos plantões.", from_me=True)
    ours["event"] = "send.message"
    other = payloads.upsert(text="Mensagem de outra ferramenta", from_me=True)
    other["event"] = "send.message"
    for body in (ours, other):
        assert api_client.post("/webhooks/evolution", json=body, headers=AUTH).status_code == 200
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM pgmq.q_inbound").fetchone()["n"] == 0)
    assert db.execute("SELECT state FROM outbox WHERE id = %s", (row,)).fetchone()["state"] == "sent"
    assert db.execute("SELECT julia_pausada_ate FROM conversations").fetchone()["julia_pausada_ate"] is None
    autores = [r["autor"] for r in db.execute("SELECT autor FROM interacoes ORDER BY id").fetchall()]
    assert autores == ["julia"]
