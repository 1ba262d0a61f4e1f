"""The send gate and outreach on real Postgres: limits under concurrency and
across window boundaries (clock injected), business hours, opt-out and
blocked doctors, pause/resume, campaigns and their metrics, delivery status,
follow-ups."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.core.errors import InvalidInput
from app.store.errors import wrap_db_errors
from tests.conftest import WEBHOOK_SECRET, wait_for

SP = ZoneInfo("America/Sao_Paulo")
WED_0900 = datetime(2026, 12, 2, 9, 0, tzinfo=SP)  # a Wednesday
ALWAYS = {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59"}
_job_ids = iter(range(1_000_000, 2_000_000))


def doctor(db, n: int, **extra) -> int:
    """A doctor whose number WhatsApp already confirmed (the gate tests are about limits)."""
    phone = f"55119{n:08d}"
    cols = {"telefone": phone, "nome": f"Médico {n}", "whatsapp_numero": phone, **extra}
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    return db.execute(f"INSERT INTO clientes ({names}) VALUES ({marks}) RETURNING id", list(cols.values())).fetchone()[
        "id"
    ]


def outbox_row(db, cliente_id: int, kind: str = "campaign", conversation_id: int | None = None) -> int:
    phone = db.execute("SELECT telefone FROM clientes WHERE id = %s", (cliente_id,)).fetchone()["telefone"]
    return db.execute(
        "INSERT INTO outbox (idempotency_key, kind, cliente_id, conversation_id, number, texto) "
        "VALUES (%s, %s, %s, %s, %s, 'Oi! Temos plantões.') RETURNING id",
        (f"{kind}:{cliente_id}:{next(_job_ids)}", kind, cliente_id, conversation_id, phone),
    ).fetchone()["id"]


def set_policy(conn, policy: dict) -> None:
    """The policy is data: every claim reads the database's (defaults + these values)."""
    conn.execute("SELECT set_send_policy(%s, 'test', 'manual', true)", (Jsonb(policy),))


def claim(conn, outbox_id: int, now: datetime, policy: dict | None = None, job_id: int | None = None) -> dict:
    if policy is not None:
        set_policy(conn, policy)
    return conn.execute(
        "SELECT * FROM claim_send_slot(%s, %s, 'test', '', NULL, %s)",
        (outbox_id, job_id or next(_job_ids), now),
    ).fetchone()


def mark_sent(db, outbox_id: int, job_id: int, at: datetime) -> None:
    db.execute("SELECT mark_outbox_sent(%s, %s, %s)", (outbox_id, job_id, f"EVO{outbox_id}"))
    db.execute("UPDATE outbox SET sent_at = %s WHERE id = %s", (at, outbox_id))


def concurrent_claims(database_url: str, rows: list[tuple[int, datetime]], policy: dict) -> list[dict]:
    """Each row claimed from its own connection, all released at once."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        set_policy(conn, policy)
    barrier = threading.Barrier(len(rows))
    results: list[dict] = []
    lock = threading.Lock()

    def run(outbox_id: int, now: datetime) -> None:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            barrier.wait()
            result = claim(conn, outbox_id, now)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=row) for row in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_32_concurrent_claimers_against_20_per_hour_claim_exactly_20(db, database_url):
    rows = [(outbox_row(db, doctor(db, n)), WED_0900 + timedelta(minutes=10)) for n in range(32)]
    results = concurrent_claims(database_url, rows, {**ALWAYS, "hour_limit": 20, "day_limit": 100})
    assert sum(r["claimed"] for r in results) == 20
    assert sorted({r["reason"] for r in results if not r["claimed"]}) == ["hourly_limit"]
    counter = db.execute("SELECT claims FROM send_counters WHERE window_kind = 'hour'").fetchone()
    assert counter["claims"] == 20
    # Refused rows wait for the next window, with their send job scheduled for it.
    deferred = db.execute("SELECT DISTINCT not_before FROM outbox WHERE state = 'deferred'").fetchall()
    assert [r["not_before"] for r in deferred] == [WED_0900 + timedelta(hours=1)]


def test_no_overshoot_across_an_hour_boundary(db, database_url):
    before, after = WED_0900 - timedelta(milliseconds=300), WED_0900 + timedelta(milliseconds=300)
    rows = [(outbox_row(db, doctor(db, n)), before if n % 2 else after) for n in range(32)]
    results = concurrent_claims(database_url, rows, {**ALWAYS, "hour_limit": 10, "day_limit": 100})
    assert sum(r["claimed"] for r in results) == 20  # 10 in each window, no more
    windows = db.execute("SELECT window_start, claims FROM send_counters WHERE window_kind = 'hour' ORDER BY 1")
    assert [(r["window_start"].hour, r["claims"]) for r in windows.fetchall()] == [(8, 10), (9, 10)]
    assert db.execute("SELECT claims FROM send_counters WHERE window_kind = 'day'").fetchone()["claims"] == 20


def test_daily_limit_holds_and_gives_back_no_hour_slot(db):
    policy = {**ALWAYS, "hour_limit": 10, "day_limit": 3}
    results = [claim(db, outbox_row(db, doctor(db, n)), WED_0900, policy) for n in range(5)]
    assert [r["reason"] for r in results] == ["claimed"] * 3 + ["daily_limit"] * 2
    assert results[-1]["next_at"] == datetime(2026, 12, 3, 0, 0, tzinfo=SP)
    hour = db.execute("SELECT claims FROM send_counters WHERE window_kind = 'hour'").fetchone()["claims"]
    assert hour == 3


def test_out_of_hours_proactive_message_is_deferred_to_the_next_opening(db):
    saturday_night = datetime(2026, 12, 5, 22, 0, tzinfo=SP)
    policy = {"weekdays": [1, 2, 3, 4, 5], "start": "08:00", "end": "20:00"}
    outbox_id = outbox_row(db, doctor(db, 1))
    result = claim(db, outbox_id, saturday_night, policy)
    monday_8 = datetime(2026, 12, 7, 8, 0, tzinfo=SP)
    assert (result["claimed"], result["reason"], result["next_at"]) == (False, "outside_hours", monday_8)
    row = db.execute("SELECT state, not_before, refusal FROM outbox WHERE id = %s", (outbox_id,)).fetchone()
    assert row == {"state": "deferred", "not_before": monday_8, "refusal": "outside_hours"}
    # The refusal defers no job (its NOTIFY would serialise refusals): the minute sweep sends it back when due.
    send_jobs = (
        "SELECT scheduled_at FROM procrastinate_jobs WHERE task_name = 'send_outbox' AND args->>'outbox_id' = %s"
    )
    assert db.execute(send_jobs, (str(outbox_id),)).fetchall() == []
    assert db.execute("SELECT release_due_sends(%s) AS n", (monday_8 - timedelta(seconds=1),)).fetchone()["n"] == 0
    assert db.execute("SELECT release_due_sends(%s) AS n", (monday_8,)).fetchone()["n"] == 1
    assert db.execute("SELECT state FROM outbox WHERE id = %s", (outbox_id,)).fetchone()["state"] == "queued"
    assert [r["scheduled_at"] for r in db.execute(send_jobs, (str(outbox_id),))] == [None]
    assert claim(db, outbox_id, monday_8 + timedelta(minutes=1), policy)["claimed"] is True


def test_replies_ignore_hours_and_proactive_caps_but_not_pause(db):
    saturday_night = datetime(2026, 12, 5, 22, 0, tzinfo=SP)
    policy = {"weekdays": [1], "hour_limit": 0, "day_limit": 0}
    reply = outbox_row(db, doctor(db, 1), kind="reply")
    assert claim(db, reply, saturday_night, policy)["claimed"] is True
    db.execute("SELECT pause_julia('x', 'manual')")
    other = outbox_row(db, doctor(db, 2), kind="reply")
    assert claim(db, other, saturday_night, policy)["reason"] == "paused"


def test_reply_loop_cap_per_conversation(db):
    cliente = doctor(db, 1)
    conv = db.execute("INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, 'x') RETURNING id", (cliente,))
    conv = conv.fetchone()["id"]
    policy = {"reply_cap_per_hour": 2}
    for n in range(2):
        job = next(_job_ids)
        row = outbox_row(db, cliente, kind="reply", conversation_id=conv)
        assert claim(db, row, WED_0900, policy, job)["claimed"]
        mark_sent(db, row, job, WED_0900 - timedelta(minutes=10 - n))
    third = claim(db, outbox_row(db, cliente, kind="reply", conversation_id=conv), WED_0900, policy)
    assert (third["reason"], third["next_at"]) == ("reply_loop_cap", WED_0900 + timedelta(minutes=50))


def test_opted_out_and_blocked_doctors_are_never_messaged_proactively(db):
    policy = {**ALWAYS}
    opted = outbox_row(db, doctor(db, 1, opt_out=True))
    blocked = outbox_row(db, doctor(db, 2))
    db.execute("SELECT mark_contact_blocked(cliente_id, 'teste') FROM outbox WHERE id = %s", (blocked,))
    assert claim(db, opted, WED_0900, policy)["reason"] == "opted_out"
    assert claim(db, blocked, WED_0900, policy)["reason"] == "blocked"
    states = db.execute("SELECT state FROM outbox WHERE id IN (%s, %s)", (opted, blocked)).fetchall()
    assert {r["state"] for r in states} == {"failed"}
    # ... and a retry of those rows refuses again, without touching counters.
    assert claim(db, opted, WED_0900, policy)["reason"] == "failed"
    assert db.execute("SELECT count(*) AS n FROM send_counters").fetchone()["n"] == 0


def test_cooldown_between_proactive_touches(db):
    policy = {**ALWAYS, "cooldown_hours": 48}
    cliente = doctor(db, 1)
    job = next(_job_ids)
    first = outbox_row(db, cliente)
    assert claim(db, first, WED_0900, policy, job)["claimed"]
    mark_sent(db, first, job, WED_0900)
    second = claim(db, outbox_row(db, cliente, kind="follow_up"), WED_0900 + timedelta(hours=1), policy)
    assert (second["reason"], second["next_at"]) == ("cooldown", WED_0900 + timedelta(hours=48))


def test_paused_julia_holds_proactive_sends_and_resume_releases_them(db):
    outbox_id = outbox_row(db, doctor(db, 1))
    db.execute("SELECT pause_julia('manutenção', 'manual')")
    assert claim(db, outbox_id, WED_0900, ALWAYS)["reason"] == "paused"
    assert db.execute("SELECT state FROM outbox").fetchone()["state"] == "deferred"
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute("SELECT resume_julia('ok', 'manual')")
    assert db.execute("SELECT state FROM outbox").fetchone()["state"] == "queued"
    job = db.execute("SELECT args FROM procrastinate_jobs WHERE task_name = 'send_outbox'").fetchone()
    assert job["args"] == {"outbox_id": outbox_id}


def make_campaign(db, n_doctors: int, **filtro) -> int:
    esp = db.execute("INSERT INTO especialidades (nome) VALUES ('Pediatria') RETURNING id").fetchone()["id"]
    for n in range(n_doctors):
        doctor(db, n, especialidade_id=esp, regiao="ABC" if n % 2 else "Campinas")
    return db.execute(
        "SELECT create_campaign('Plantões de dezembro', 'Oi {primeiro_nome}! Temos plantões de {especialidade}.', "
        "%s, NULL, NULL) AS id",
        (Jsonb(filtro),),
    ).fetchone()["id"]


def test_campaign_of_200_with_20_per_hour_sends_20_in_the_first_hour_and_the_rest_later(db):
    campaign = make_campaign(db, 200, especialidades=["pedi"])
    assert db.execute("SELECT start_campaign(%s) AS n", (campaign,)).fetchone()["n"] == 200
    policy = {"hour_limit": 20, "day_limit": 100, "start": "08:00", "end": "20:00", "weekdays": [1, 2, 3, 4, 5]}

    def run_hour(now: datetime) -> int:
        """What the scheduler and the send jobs do within one window."""
        sent = 0
        for minute in (0, 20, 40):
            at = now + timedelta(minutes=minute)
            set_policy(db, policy)
            ids = [r["id"] for r in db.execute("SELECT * FROM dispatch_outreach(NULL, %s) AS id", (at,))]
            for outbox_id in ids:
                job = next(_job_ids)
                if claim(db, outbox_id, at, policy, job)["claimed"]:
                    mark_sent(db, outbox_id, job, at)
                    sent += 1
        return sent

    per_hour = [run_hour(WED_0900 + timedelta(hours=h)) for h in range(6)]
    assert per_hour == [20, 20, 20, 20, 20, 0]  # 100/day reached after five hours
    assert run_hour(datetime(2026, 12, 3, 7, 0, tzinfo=SP)) == 0  # before opening
    assert run_hour(datetime(2026, 12, 3, 8, 0, tzinfo=SP)) == 20  # next day
    metrics = db.execute("SELECT * FROM campaign_metrics WHERE campanha_id = %s", (campaign,)).fetchone()
    assert (metrics["total"], metrics["enviadas"], metrics["pendentes"]) == (200, 120, 80)
    texts = db.execute("SELECT DISTINCT texto FROM outbox WHERE cliente_id = (SELECT min(id) FROM clientes)")
    assert texts.fetchone()["texto"] == "Oi Médico! Temos plantões de Pediatria."


def test_campaign_audience_filters_and_preview(db):
    campaign = make_campaign(db, 10, regioes=["abc"])
    db.execute("UPDATE clientes SET opt_out = true WHERE id = (SELECT min(id) FROM clientes WHERE regiao = 'ABC')")
    set_policy(db, {**ALWAYS, "hour_limit": 3})
    preview = db.execute("SELECT preview_campaign(%s, NULL, %s) AS p", (campaign, WED_0900)).fetchone()["p"]
    assert preview["audiencia"] == 4  # 5 in ABC, one opted out
    assert preview["hoje_possiveis"] == 4
    assert preview["limite_hora_restante"] == 3
    assert preview["exemplo"].startswith("Oi Médico!")
    with pytest.raises(InvalidInput, match="template variable"), wrap_db_errors():
        db.execute("SELECT create_campaign('x', 'Oi {apelido}', '{}', NULL, NULL)")


def test_campaign_views_count_delivery_replies_opt_outs_and_attributed_reservations(db):
    campaign = make_campaign(db, 4)
    db.execute("SELECT start_campaign(%s)", (campaign,))
    rows = db.execute("SELECT id, cliente_id FROM outbox ORDER BY id").fetchall()
    sent_at = datetime.now(SP) - timedelta(hours=2)
    for row in rows[:3]:
        job = next(_job_ids)
        assert claim(db, row["id"], datetime.now(SP), ALWAYS, job)["claimed"]
        mark_sent(db, row["id"], job, sent_at)
    db.execute("UPDATE outbox SET state = 'failed' WHERE id = %s", (rows[3]["id"],))
    for row, status in zip(rows[:3], ("DELIVERY_ACK", "READ", "SERVER_ACK"), strict=True):
        db.execute("SELECT record_delivery_status(%s, %s, NULL, NULL)", (f"EVO{row['id']}", status))
    a, b, _ = (r["cliente_id"] for r in rows[:3])
    # The campaign message opened the doctor's conversation; the doctor answers in it.
    conv = db.execute("SELECT id FROM conversations WHERE cliente_id = %s", (a,))
    db.execute(
        "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto) "
        "VALUES (%s, %s, 'IN1', 'entrada', 'medico', 'Tenho interesse')",
        (conv.fetchone()["id"], a),
    )
    db.execute("UPDATE clientes SET opt_out = true, opt_out_em = now() WHERE id = %s", (b,))
    hospital = db.execute("INSERT INTO hospitais (nome, cidade, regiao) VALUES ('H', 'SP', 'SP') RETURNING id")
    hospital = hospital.fetchone()["id"]
    periodo = db.execute("INSERT INTO periodos (nome) VALUES ('Noturno') RETURNING id").fetchone()["id"]
    db.execute(
        "INSERT INTO vagas (hospital_id, especialidade_id, periodo_id, data, valor, status, reservada_por,"
        " reservada_em) SELECT %s, min(id), %s, current_date + 3, 1500, 'reservada', %s, now() FROM especialidades",
        (hospital, periodo, a),
    )

    def metrics():
        return db.execute("SELECT * FROM campaign_metrics WHERE campanha_id = %s", (campaign,)).fetchone()

    m = metrics()
    assert (m["total"], m["enviadas"], m["falhas"], m["entregues"], m["lidas"]) == (4, 3, 1, 2, 1)
    assert (m["respondidas"], m["opt_outs"], m["reservas_atribuidas"]) == (1, 1, None)  # attribution flag off
    db.execute("UPDATE feature_flags SET value = '{\"enabled\": true}' WHERE key = 'campaign_attribution'")
    assert metrics()["reservas_atribuidas"] == 1
    sends = db.execute("SELECT * FROM campaign_sends WHERE cliente_id = %s", (a,)).fetchone()
    assert (sends["respondeu"], sends["reservou_depois"], sends["delivery_status"]) == (True, True, "DELIVERY_ACK")


def test_delivery_status_webhook_updates_the_outbox_and_a_known_463_blocks_the_doctor(db, api_client):
    cliente = doctor(db, 1)
    job = next(_job_ids)
    row = outbox_row(db, cliente)
    # An ack that arrives before the send is recorded is kept and applied later.
    body = {
        "event": "messages.update",
        "instance": "julia-test",
        "data": {"keyId": f"EVO{row}", "remoteJid": "5511900000001@s.whatsapp.net", "status": "DELIVERY_ACK"},
    }
    response = api_client.post("/webhooks/evolution", json=body, headers={"x-webhook-secret": WEBHOOK_SECRET})
    assert response.json() == {"status": "recorded", "updates": 1, "matched": 0}
    assert claim(db, row, WED_0900, ALWAYS, job)["claimed"]
    mark_sent(db, row, job, WED_0900)
    assert db.execute("SELECT delivery_status FROM outbox WHERE id = %s", (row,)).fetchone()["delivery_status"] == (
        "DELIVERY_ACK"
    )
    # Evolution sends ERROR bare (no WhatsApp error code): recorded, nobody blocked.
    body["data"] = {
        "keyId": f"EVO{row}",
        "remoteJid": "5511900000001@s.whatsapp.net",
        "fromMe": True,
        "participant": "5511900000001@s.whatsapp.net",
        "status": "ERROR",
        "instanceId": "b1e6c1a0-0000-4000-8000-000000000001",
    }
    response = api_client.post("/webhooks/evolution", json=body, headers={"x-webhook-secret": WEBHOOK_SECRET})
    assert response.json()["matched"] == 1
    assert db.execute("SELECT bloqueado_em FROM clientes WHERE id = %s", (cliente,)).fetchone()["bloqueado_em"] is None
    # A 463, when one is known (the SQL takes it), blocks further outreach.
    db.execute("SELECT record_delivery_status(%s, 'ERROR', 463, NULL)", (f"EVO{row}",))
    assert db.execute("SELECT bloqueado_em FROM clientes WHERE id = %s", (cliente,)).fetchone()["bloqueado_em"]
    later = outbox_row(db, cliente)
    assert claim(db, later, WED_0900 + timedelta(days=5), ALWAYS)["reason"] == "blocked"


def test_follow_up_is_queued_once_for_interested_silent_doctors(db):
    cliente = doctor(db, 1)
    conv = db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid, interesse_em, last_outbound_at) "
        "VALUES (%s, 'x', now() - interval '30 hours', now() - interval '26 hours') RETURNING id",
        (cliente,),
    ).fetchone()["id"]
    quiet = doctor(db, 2)
    db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid, interesse_em, last_outbound_at, last_inbound_at) "
        "VALUES (%s, 'x', now() - interval '30 hours', now() - interval '26 hours', now() - interval '1 hour')",
        (quiet,),
    )
    assert db.execute("SELECT queue_follow_ups('24 hours') AS n").fetchone()["n"] == 1
    assert db.execute("SELECT queue_follow_ups('24 hours') AS n").fetchone()["n"] == 0
    row = db.execute("SELECT kind, conversation_id, texto FROM outbox").fetchone()
    assert (row["kind"], row["conversation_id"]) == ("follow_up", conv)
    assert row["texto"].startswith("Oi, Médico!")


def test_reconcile_touches_sets_the_last_touch(db, test_env):
    from starlette.testclient import TestClient

    from app.core.config import load_settings
    from app.core.tokens import mint_ops_token
    from app.http.app import create_app

    cliente = doctor(db, 1)
    job = next(_job_ids)
    row = outbox_row(db, cliente)
    claim(db, row, WED_0900, ALWAYS, job)
    mark_sent(db, row, job, WED_0900)
    db.execute("UPDATE clientes SET ultimo_contato_em = NULL")
    secret = "ops-secret-0123456789-0123456789-abc"
    with TestClient(create_app(load_settings("api", {**test_env, "JWT_SECRET_KEY": secret}))) as client:
        assert client.post("/jobs/reconcile-touches").status_code == 401
        token = mint_ops_token(secret, "ops")
        response = client.post("/jobs/reconcile-touches", headers={"authorization": f"Bearer {token}"})
    assert response.json() == {"status": "ok", "updated": 1}
    assert db.execute("SELECT ultimo_contato_em FROM clientes").fetchone()["ultimo_contato_em"] == WED_0900


def test_periodic_dispatch_runs_in_the_worker(db, evolution, test_env):
    campaign = make_campaign(db, 3)
    db.execute("SELECT start_campaign(%s)", (campaign,))
    # The scheduler's dispatch + the worker's send jobs, with the real clock.
    from app.core.config import load_settings

    settings = load_settings(
        "worker",
        {
            **test_env,
            "DIAS_SEMANA": "1,2,3,4,5,6,7",
            "HORARIO_INICIO": "00:00",
            "HORARIO_FIM": "23:59",
            "MAX_MSGS_POR_HORA": "2",
        },
    )
    # The worker's env seeds the database's policy (there is none yet); dispatch reads it there.
    db.execute("SELECT * FROM bootstrap_sending(%s, NULL)", (Jsonb(settings.send_policy()),))
    dispatched = db.execute("SELECT * FROM dispatch_outreach(NULL, NULL) AS id")
    assert len(dispatched.fetchall()) == 2
    from tests.conftest import WorkerThread

    worker = WorkerThread(settings).start()
    try:
        wait_for(lambda: len(evolution.sent_texts()) == 2, timeout=30)
        assert db.execute("SELECT count(*) AS n FROM outbox WHERE state = 'queued'").fetchone()["n"] == 1
    finally:
        worker.stop()
