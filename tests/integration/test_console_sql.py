"""The ops console's SQL (db/console.sql), called directly: each action does
its change and records it in console_actions in one transaction, and refuses
with JU400/JU404/JU409 what it cannot do."""

from __future__ import annotations

import psycopg
import pytest

from app.core.errors import Conflict, InvalidInput, NotFound
from app.store.errors import wrap_db_errors


def call(db, sql: str, *params):
    with wrap_db_errors():
        return db.execute(sql, params).fetchone()


def audit(db) -> list[dict]:
    return db.execute("SELECT operator, action, target, motivo, detail FROM console_actions ORDER BY id").fetchall()


def conversation(db, nome: str = "Dra. Lia", telefone: str = "5511911112222", **columns) -> int:
    cliente = db.execute("INSERT INTO clientes (telefone, nome) VALUES (%s, %s) RETURNING id", (telefone, nome))
    cliente_id = cliente.fetchone()["id"]
    row = db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, %s) RETURNING id",
        (cliente_id, f"{telefone}@s.whatsapp.net"),
    ).fetchone()
    db.execute(
        "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto) "
        "VALUES (%s, %s, %s, 'entrada', 'medico', 'Oi, quero falar com alguém')",
        (row["id"], cliente_id, f"m-{row['id']}"),
    )
    if columns:
        db.execute(
            "UPDATE conversations SET handoff_ativo = %s, handoff_motivo = 'pediu humano', handoff_em = now() "
            "WHERE id = %s",
            (columns.get("handoff_ativo", False), row["id"]),
        )
    return row["id"]


def test_pause_and_resume_are_audited_and_refused_twice(db):
    call(db, "SELECT console_pause_julia('ana', 'manutenção')")
    assert db.execute("SELECT (julia_state()).*").fetchone()["status"] == "pausado"
    with pytest.raises(Conflict, match="already paused"):
        call(db, "SELECT console_pause_julia('ana', 'de novo')")
    with pytest.raises(InvalidInput, match="motivo"):
        call(db, "SELECT console_resume_julia('ana', '  ')")
    call(db, "SELECT console_resume_julia('bia', 'pronto')")
    with pytest.raises(Conflict, match="already active"):
        call(db, "SELECT console_resume_julia('bia', 'pronto')")
    rows = audit(db)
    assert [(r["operator"], r["action"], r["motivo"]) for r in rows] == [
        ("ana", "julia_paused", "manutenção"),
        ("bia", "julia_resumed", "pronto"),
    ]
    status = db.execute("SELECT status, motivo, alterado_via FROM julia_status ORDER BY id DESC LIMIT 2").fetchall()
    assert status == [
        {"status": "ativo", "motivo": "pronto", "alterado_via": "api"},
        {"status": "pausado", "motivo": "manutenção", "alterado_via": "api"},
    ]


def test_hand_back_gives_the_conversation_to_julia_once(db):
    conversation_id = conversation(db, handoff_ativo=True)
    found = call(db, "SELECT console_conversations('lia', 10) AS r")["r"]
    assert [(c["conversation_id"], c["owner"]) for c in found] == [(conversation_id, "humano")]
    assert call(db, "SELECT console_conversations('91111', 10) AS r")["r"][0]["conversation_id"] == conversation_id
    assert call(db, "SELECT console_conversations('ninguém', 10) AS r")["r"] == []

    call(db, "SELECT console_hand_back('ana', %s, 'resolvido')", conversation_id)
    transcript = call(db, "SELECT console_transcript(%s) AS r", conversation_id)["r"]
    assert transcript["owner"] == "julia" and transcript["mensagens"][0]["autor"] == "medico"
    with pytest.raises(Conflict, match="already with Julia"):
        call(db, "SELECT console_hand_back('ana', %s, NULL)", conversation_id)
    with pytest.raises(NotFound):
        call(db, "SELECT console_hand_back('ana', 999999, NULL)")
    assert audit(db)[-1] | {"detail": None} == {
        "operator": "ana",
        "action": "conversation_handed_back",
        "target": f"conversation:{conversation_id}",
        "motivo": "resolvido",
        "detail": None,
    }
    event = db.execute("SELECT payload FROM chatwoot_events WHERE kind = 'handback'").fetchone()
    assert event["payload"]["via"] == "console"


def test_cancel_settles_the_waiting_rows_and_pause_needs_an_active_campaign(db):
    conversation(db)
    campaign_id = db.execute("SELECT create_campaign('dez', 'Oi {primeiro_nome}', '{}', NULL, NULL) AS id").fetchone()[
        "id"
    ]
    assert db.execute("SELECT start_campaign(%s) AS n", (campaign_id,)).fetchone()["n"] == 1
    call(db, "SELECT console_pause_campaign('ana', %s, NULL)", campaign_id)
    with pytest.raises(Conflict, match="not active"):
        call(db, "SELECT console_pause_campaign('ana', %s, NULL)", campaign_id)
    assert call(db, "SELECT console_cancel_campaign('ana', %s, 'errada') AS n", campaign_id)["n"] == 1
    with pytest.raises(Conflict, match="already cancelada"):
        call(db, "SELECT console_cancel_campaign('ana', %s, NULL)", campaign_id)
    with pytest.raises(NotFound):
        call(db, "SELECT console_cancel_campaign('ana', 999999, NULL)")
    listed = call(db, "SELECT console_campaigns(10) AS r")["r"]
    assert listed[0]["status"] == "cancelada" and listed[0]["recusas"] == {"campaign_cancelled": 1}
    assert [r["action"] for r in audit(db)] == ["campaign_paused", "campaign_cancelled"]


def failed_job(db, task: str = "reply_to_conversation", lock: str | None = None) -> int:
    job_id = db.execute(
        "SELECT defer_job(%s, '{\"conversation_id\": 1}'::jsonb, 'replies', NULL, %s) AS id", (task, lock)
    ).fetchone()["id"]
    db.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (job_id,))
    db.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (job_id,))
    return job_id


def test_failed_jobs_are_listed_retried_and_dismissed(db):
    retried, dismissed = failed_job(db, lock="reply:1"), failed_job(db)
    listed = call(db, "SELECT console_problem_jobs('5 minutes', 10) AS r")["r"]
    assert {(j["id"], j["problem"]) for j in listed} == {(retried, "falhou"), (dismissed, "falhou")}

    assert call(db, "SELECT console_retry_job('ana', %s, NULL, '5 minutes') AS was", retried)["was"] == "failed"
    assert call(db, "SELECT console_dismiss_job('ana', %s, NULL) AS was", dismissed)["was"] == "failed"
    states = {r["id"]: r["status"] for r in db.execute("SELECT id, status::text FROM procrastinate_jobs")}
    assert states == {retried: "todo", dismissed: "cancelled"}

    # The same work waiting already: a second copy is refused, not run twice.
    again = failed_job(db)
    db.execute("UPDATE procrastinate_jobs SET queueing_lock = 'reply:1' WHERE id = %s", (again,))
    with pytest.raises(Conflict, match="already waiting"):
        call(db, "SELECT console_retry_job('ana', %s, NULL, '5 minutes')", again)
    with pytest.raises(NotFound):
        call(db, "SELECT console_dismiss_job('ana', 999999, NULL)")
    assert [r["action"] for r in audit(db)] == ["job_retried", "job_dismissed"]


def test_retrying_a_failed_send_puts_its_outbox_row_back_to_the_gate(db):
    conversation_id = conversation(db)
    outbox_id = db.execute(
        "INSERT INTO outbox (idempotency_key, kind, conversation_id, number, texto, state, last_error) "
        "VALUES ('k1', 'reply', %s, '5511911112222', 'Oi', 'failed', 'Evolution 500') RETURNING id",
        (conversation_id,),
    ).fetchone()["id"]
    job_id = db.execute(
        "SELECT defer_job('send_outbox', jsonb_build_object('outbox_id', %s::bigint), 'sends') AS id", (outbox_id,)
    ).fetchone()["id"]
    db.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (job_id,))
    db.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (job_id,))
    call(db, "SELECT console_retry_job('ana', %s, 'Evolution voltou', '5 minutes')", job_id)
    assert db.execute("SELECT state FROM outbox WHERE id = %s", (outbox_id,)).fetchone()["state"] == "queued"
    # A job running on a live worker is not touched.
    db.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (job_id,))
    db.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now()) RETURNING id")
    db.execute(
        "UPDATE procrastinate_jobs SET worker_id = (SELECT max(id) FROM procrastinate_workers) WHERE id = %s",
        (job_id,),
    )
    with pytest.raises(Conflict, match="live worker"):
        call(db, "SELECT console_retry_job('ana', %s, NULL, '5 minutes')", job_id)


def test_failures_list_job_failures_and_poison_messages(db):
    db.execute("SELECT record_job_failure('send_outbox', 7, NULL, NULL, 'permanent', 'Evolution said 400')")
    db.execute("INSERT INTO inbound_failures (msg_id, read_ct, error, message) VALUES (3, 5, 'bad', '{}')")
    failures = call(db, "SELECT console_failures(10) AS r")["r"]
    assert failures["jobs"][0]["error"] == "Evolution said 400"
    assert failures["inbound"][0]["msg_id"] == 3


def test_an_action_without_an_operator_is_refused(db):
    with pytest.raises(InvalidInput, match="operator"):
        call(db, "SELECT console_pause_julia('', 'x')")
    assert db.execute("SELECT count(*) AS n FROM console_actions").fetchone()["n"] == 0
    with pytest.raises(psycopg.Error):
        db.execute("INSERT INTO console_actions (operator, action) VALUES ('ana', 'Bad Action')")
