"""Several WhatsApp numbers and the send policy as data, on real Postgres:
per-number caps under concurrency, warm-up ramps (clock injected through
the database), continuity, spread, connection state, number health,
unknown instances, the CLI and the one-policy-for-every-worker rule."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.ops.cli import main
from tests.conftest import WEBHOOK_SECRET, wait_for

SP = ZoneInfo("America/Sao_Paulo")
WED_0900 = datetime(2026, 12, 2, 9, 0, tzinfo=SP)  # a Wednesday
ALWAYS = {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59", "cooldown_hours": 1}
AUTH = {"x-webhook-secret": WEBHOOK_SECRET}
_ids = iter(range(5_000_000, 6_000_000))


def set_policy(db, **policy) -> None:
    db.execute("SELECT set_send_policy(%s, 'test', 'manual', true)", (Jsonb({**ALWAYS, **policy}),))


def add_number(db, instance: str, *, day_limit=None, hour_limit=None, warmup=False) -> int:
    return db.execute(
        "SELECT add_number(%s, NULL, %s, %s, %s, 'test', 'manual') AS id", (instance, hour_limit, day_limit, warmup)
    ).fetchone()["id"]


def doctor(db, n: int) -> int:
    """A doctor whose number WhatsApp already confirmed (these tests are about numbers and caps)."""
    phone = f"55119{n:08d}"
    return db.execute(
        "INSERT INTO clientes (telefone, nome, whatsapp_numero) VALUES (%s, %s, %s) RETURNING id",
        (phone, f"Médico {n}", phone),
    ).fetchone()["id"]


def campaign_row(db, cliente_id: int, kind: str = "campaign") -> int:
    return db.execute(
        "INSERT INTO outbox (idempotency_key, kind, cliente_id, number, texto) "
        "SELECT %s, %s, c.id, c.telefone, 'Oi! Temos plantões.' FROM clientes AS c WHERE c.id = %s RETURNING id",
        (f"{kind}:{cliente_id}:{next(_ids)}", kind, cliente_id),
    ).fetchone()["id"]


def claim(conn, outbox_id: int, now: datetime | None, job_id: int | None = None) -> dict:
    return conn.execute(
        "SELECT * FROM claim_send_slot(%s, %s, 'test', '', NULL, %s)", (outbox_id, job_id or next(_ids), now)
    ).fetchone()


def inbound(db, instance: str | None, phone: str, message_id: str, text: str = "oi") -> dict:
    """A doctor's message as the worker's consumer stores it (pgmq 'inbound' → process_inbound)."""
    body = {
        "v": 1,
        "event": "messages.upsert",
        "message": {
            "message_id": message_id,
            "instance": instance,
            "phone": phone,
            "remote_jid": f"{phone}@s.whatsapp.net",
            "lid": None,
            "from_me": False,
            "push_name": "Dra. Ana",
            "text": text,
            "media_type": None,
            "message_type": "conversation",
            "timestamp": None,
        },
        "raw": {},
    }
    msg_id = db.execute("SELECT enqueue_inbound(%s) AS id", (Jsonb(body),)).fetchone()["id"]
    return db.execute("SELECT * FROM process_inbound(%s, %s)", (msg_id, Jsonb(body))).fetchone()


def counters(db, day: datetime) -> dict[str, int]:
    rows = db.execute(
        "SELECT n.instance, c.claims FROM number_send_counters AS c JOIN whatsapp_numbers AS n ON n.id = c.number_id "
        "WHERE c.window_kind = 'day' AND c.window_start = date_trunc('day', %s AT TIME ZONE 'America/Sao_Paulo')",
        (day,),
    ).fetchall()
    return {r["instance"]: r["claims"] for r in rows}


def claimed_by_instance(db, day: datetime) -> Counter:
    rows = db.execute(
        "SELECT n.instance FROM outbox AS o JOIN whatsapp_numbers AS n ON n.id = o.number_id "
        "WHERE o.state = 'claimed' AND (o.claimed_at AT TIME ZONE 'America/Sao_Paulo')::date = "
        "(%s AT TIME ZONE 'America/Sao_Paulo')::date",
        (day,),
    ).fetchall()
    return Counter(r["instance"] for r in rows)


# ---------------------------------------------------------------------------
# Concurrency: 4 claimers, 3 numbers, caps per number and per day
# ---------------------------------------------------------------------------


def _four_workers(database_url: str, rows: list[int], now: datetime) -> list[dict]:
    """Four connections claim the rows (each takes the next one), released at once."""
    barrier = threading.Barrier(4)
    queue = list(rows)
    results: list[dict] = []
    lock = threading.Lock()

    def run() -> None:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            barrier.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    outbox_id = queue.pop()
                result = claim(conn, outbox_id, now)
                with lock:
                    results.append(result)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_four_concurrent_workers_three_numbers_no_overshoot_per_number_and_per_day(db, database_url):
    set_policy(db, hour_limit=1000, day_limit=1000)
    caps = {"num-a": 7, "num-b": 11, "num-c": 13}
    for instance, cap in caps.items():
        add_number(db, instance, day_limit=cap)
    for day in (WED_0900, WED_0900 + timedelta(days=1)):
        rows = [campaign_row(db, doctor(db, next(_ids))) for _ in range(60)]
        results = _four_workers(database_url, rows, day)
        per_number = Counter(r["instance"] for r in results if r["claimed"])
        assert dict(per_number) == caps  # every number filled, none beyond its cap
        assert counters(db, day) == caps  # the counters agree with the claims
        assert claimed_by_instance(db, day) == Counter(caps)
        refused = Counter(r["reason"] for r in results if not r["claimed"])
        assert refused == {"daily_limit": 60 - sum(caps.values())}


def test_new_contacts_spread_over_the_numbers(db):
    set_policy(db, hour_limit=1000, day_limit=100)
    for instance in ("num-a", "num-b", "num-c"):
        add_number(db, instance)
    results = [claim(db, campaign_row(db, doctor(db, n)), WED_0900) for n in range(30)]
    assert Counter(r["instance"] for r in results) == {"num-a": 10, "num-b": 10, "num-c": 10}


# ---------------------------------------------------------------------------
# Warm-up, continuity, connection state
# ---------------------------------------------------------------------------


def test_warm_up_ramp_is_respected_on_day_1_and_day_8(db):
    set_policy(db, hour_limit=1000, day_limit=100, warmup_start_per_day=20, warmup_days=14)
    add_number(db, "novo", warmup=True)

    def send_day(at: datetime, n: int) -> int:
        return sum(claim(db, campaign_row(db, doctor(db, next(_ids))), at)["claimed"] for _ in range(n))

    assert send_day(WED_0900, 30) == 20  # day 1: the ramp's start
    assert send_day(WED_0900 + timedelta(days=7), 80) == 60  # day 8: 20 + 80 * 7/14
    assert send_day(WED_0900 + timedelta(days=14), 120) == 100  # ramp done: the cap
    report = db.execute("SELECT numbers_report(%s) AS r", (WED_0900 + timedelta(days=7),)).fetchone()["r"]
    assert report[0]["warmup_day"] == 8 and report[0]["day"]["limit"] == 60


def test_a_doctor_who_talked_to_number_b_hears_from_b_and_gets_replies_from_b(db):
    set_policy(db, hour_limit=1000, day_limit=100)
    for instance in ("num-a", "num-b", "num-c"):
        add_number(db, instance)
    # Load B so that spreading alone would never pick it.
    for _ in range(5):
        db.execute(
            "SELECT _take_number_slot(resolve_number('num-b'), 'day', date_trunc('day', %s::timestamp), 100)",
            (WED_0900.astimezone(SP).replace(tzinfo=None),),
        )
    stored = inbound(db, "num-b", "5511988887777", "ANA-1")
    ana = db.execute("SELECT id FROM clientes WHERE telefone = '5511988887777'").fetchone()["id"]
    assert claim(db, campaign_row(db, ana), WED_0900)["instance"] == "num-b"
    reply = db.execute(
        "INSERT INTO outbox (idempotency_key, kind, conversation_id, cliente_id, number, texto) "
        "VALUES ('r1', 'reply', %s, %s, '5511988887777', 'Olá!') RETURNING id",
        (stored["conversation_id"], ana),
    ).fetchone()["id"]
    assert claim(db, reply, WED_0900)["instance"] == "num-b"
    # A new contact goes elsewhere (B is the busiest).
    assert claim(db, campaign_row(db, doctor(db, 1)), WED_0900)["instance"] in ("num-a", "num-c")


def test_disconnected_number_is_skipped_and_resumes_after_open(db, api_client):
    set_policy(db, hour_limit=1000, day_limit=100)
    add_number(db, "num-a")
    add_number(db, "num-b")
    inbound(db, "num-a", "5511977776666", "BIA-1")
    bia = db.execute("SELECT id FROM clientes WHERE telefone = '5511977776666'").fetchone()["id"]

    def connection(state: str) -> dict:
        body = {
            "event": "connection.update",
            "instance": "num-a",
            "data": {"instance": "num-a", "state": state, "statusReason": 428},
        }
        response = api_client.post("/webhooks/evolution", json=body, headers=AUTH)
        assert response.status_code == 200, response.text
        return response.json()

    assert connection("close") == {"status": "recorded", "instance": "num-a", "state": "close", "result": "updated"}
    new_contacts = [claim(db, campaign_row(db, doctor(db, n)), WED_0900)["instance"] for n in range(6)]
    assert set(new_contacts) == {"num-b"}
    waiting = campaign_row(db, bia)
    refused = claim(db, waiting, WED_0900)
    assert (refused["claimed"], refused["reason"]) == (False, "number_unavailable")
    assert connection("open")["result"] == "updated"
    row = db.execute("SELECT state FROM outbox WHERE id = %s", (waiting,)).fetchone()
    assert row["state"] == "queued"  # released for the gate again
    assert (
        db.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs "
            "WHERE task_name = 'send_outbox' AND args ->> 'outbox_id' = %s",
            (str(waiting),),
        ).fetchone()["n"]
        >= 1
    )
    assert claim(db, waiting, WED_0900)["instance"] == "num-a"


def test_paused_number_is_skipped_and_replies_to_it_wait(db):
    set_policy(db, hour_limit=1000, day_limit=100)
    add_number(db, "num-a")
    add_number(db, "num-b")
    stored = inbound(db, "num-a", "5511966665555", "CAIO-1")
    db.execute("SELECT pause_number('num-a', 'teste', 'manual')")
    assert {claim(db, campaign_row(db, doctor(db, n)), WED_0900)["instance"] for n in range(4)} == {"num-b"}
    reply = db.execute(
        "INSERT INTO outbox (idempotency_key, kind, conversation_id, cliente_id, number, texto) "
        "SELECT 'r-caio', 'reply', %s, cliente_id, '5511966665555', 'Oi' FROM conversations WHERE id = %s RETURNING id",
        (stored["conversation_id"], stored["conversation_id"]),
    ).fetchone()["id"]
    assert claim(db, reply, WED_0900)["reason"] == "number_unavailable"  # never from another number
    assert db.execute("SELECT resume_number('num-a', 'ok', 'manual') AS n").fetchone()["n"] >= 1
    assert claim(db, reply, WED_0900)["instance"] == "num-a"


# ---------------------------------------------------------------------------
# Webhooks by number, number health
# ---------------------------------------------------------------------------


def test_unknown_instance_is_stored_and_surfaced_never_answered(db, api_client):
    add_number(db, "num-a")
    result = inbound(db, "estranho", "5511955554444", "X-1")
    assert result["conversation_id"] is None and result["reply_job_id"] is None
    assert db.execute("SELECT count(*) AS n FROM interacoes").fetchone()["n"] == 0
    row = db.execute("SELECT instance, events, last_event FROM unknown_instances").fetchone()
    assert row == {"instance": "estranho", "events": 1, "last_event": "messages.upsert"}
    body = {"event": "connection.update", "instance": "estranho", "data": {"state": "open"}}
    assert api_client.post("/webhooks/evolution", json=body, headers=AUTH).json()["result"] == "unknown"
    status = {
        "event": "messages.update",
        "instance": "estranho",
        "data": {"keyId": "K1", "remoteJid": "x@s.whatsapp.net", "status": "READ"},
    }
    assert api_client.post("/webhooks/evolution", json=status, headers=AUTH).json()["matched"] == 0
    assert db.execute("SELECT events FROM unknown_instances").fetchone()["events"] == 3
    notes = db.execute("SELECT kind, payload FROM notifications WHERE kind = 'unknown_instance'").fetchall()
    assert len(notes) == 1 and notes[0]["payload"]["instance"] == "estranho"  # told once


def test_a_burst_of_delivery_errors_on_one_number_pauses_it_and_alerts_operators(db, api_client):
    set_policy(db, hour_limit=1000, day_limit=100, health_max_problems=3, health_window_minutes=60)
    add_number(db, "num-a")
    add_number(db, "num-b")
    sent = []
    for n in range(6):
        row = campaign_row(db, doctor(db, n))
        job = next(_ids)
        result = claim(db, row, WED_0900, job)
        db.execute("SELECT mark_outbox_sent(%s, %s, %s)", (row, job, f"EVO-{n}"))
        sent.append((row, result["instance"], f"EVO-{n}"))
    on_a = [evo for _, instance, evo in sent if instance == "num-a"]
    assert len(on_a) == 3
    for evo in on_a:
        body = {
            "event": "messages.update",
            "instance": "num-a",
            # Evolution's messages.update for a message WhatsApp would not deliver: no error code.
            "data": {"keyId": evo, "remoteJid": "5511900000000@s.whatsapp.net", "fromMe": True, "status": "ERROR"},
        }
        assert api_client.post("/webhooks/evolution", json=body, headers=AUTH).status_code == 200
    numbers = {n["instance"]: n for n in db.execute("SELECT numbers_report(NULL) AS r").fetchone()["r"]}
    assert numbers["num-a"]["paused"] is True and "pausa automática" in numbers["num-a"]["pause_reason"]
    assert numbers["num-b"]["paused"] is False
    note = db.execute("SELECT id, critical, payload FROM notifications WHERE kind = 'number_paused'").fetchone()
    assert note["critical"] is True and note["payload"]["instance"] == "num-a"
    # The manager's WhatsApp alert goes from another number (the paused one sends nothing).
    alert = db.execute("SELECT claim_manager_alert(%s, '5511911112222', 'alerta') AS id", (note["id"],)).fetchone()
    assert claim(db, alert["id"], WED_0900)["instance"] == "num-b"
    audit = db.execute("SELECT via FROM send_policy_changes WHERE subject = 'number:num-a' ORDER BY id DESC").fetchone()
    assert audit["via"] == "sistema"
    assert {claim(db, campaign_row(db, doctor(db, 100 + n)), WED_0900)["instance"] for n in range(3)} == {"num-b"}


def test_send_not_on_whatsapp_counts_against_the_number(db, evolution, settings, start_worker):
    db.execute("SELECT set_send_policy(%s, 'test', 'manual')", (Jsonb({**ALWAYS, "health_max_problems": 2}),))
    start_worker()
    wait_for(lambda: db.execute("SELECT 1 FROM whatsapp_numbers WHERE instance = 'julia-test'").fetchone())
    error = {
        "status": 400,
        "error": "Bad Request",
        "response": {"message": [{"jid": "5511900000001@s.whatsapp.net", "exists": False, "number": "x"}]},
    }
    evolution.fail_next(400, times=2, body=error)
    for n in range(2):
        row = campaign_row(db, doctor(db, n))
        db.execute("UPDATE outbox SET dispatched_at = now() WHERE id = %s", (row,))
        db.execute("SELECT defer_send(%s)", (row,))
    wait_for(
        lambda: db.execute("SELECT paused FROM whatsapp_numbers WHERE instance = 'julia-test'").fetchone()["paused"],
        timeout=30,
    )
    kinds = db.execute("SELECT kind FROM number_health_events").fetchall()
    assert [k["kind"] for k in kinds] == ["not_on_whatsapp", "not_on_whatsapp"]


# ---------------------------------------------------------------------------
# One policy for every worker; bootstrap; the CLI
# ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch, test_env):
    for key, value in test_env.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def run_cli(capsys, *args: str) -> dict | list:
    main(list(args))
    return json.loads(capsys.readouterr().out)


def test_bootstrap_writes_the_env_policy_and_the_first_number_once(db, cli_env, capsys):
    cli_env.setenv("MAX_MSGS_POR_HORA", "7")
    cli_env.setenv("MAX_MSGS_POR_DIA", "70")
    main(["db", "bootstrap"])
    out = capsys.readouterr().out
    assert "send_policy: created" in out and "number:julia-test: created" in out
    cli_env.setenv("MAX_MSGS_POR_HORA", "99")
    main(["db", "bootstrap"])
    assert "send_policy: unchanged" in capsys.readouterr().out
    shown = run_cli(capsys, "limits", "show")
    assert (shown["policy"]["hour_limit"], shown["policy"]["day_limit"]) == (7, 70)
    assert [n["instance"] for n in shown["numbers"]] == ["julia-test"]
    assert shown["numbers"][0]["day"]["limit"] == 70  # an existing number: no ramp


def test_limits_set_changes_the_policy_for_everyone_and_is_audited(db, cli_env, capsys):
    policy = run_cli(capsys, "limits", "set", "--hour-limit", "12", "--weekdays", "1,2,3", "--reason", "campanha")
    assert (policy["hour_limit"], policy["weekdays"], policy["day_limit"]) == (12, [1, 2, 3], 100)
    audit = db.execute("SELECT subject, change, motivo, via FROM send_policy_changes ORDER BY id DESC").fetchone()
    assert audit == {
        "subject": "policy",
        "change": {"hour_limit": 12, "weekdays": [1, 2, 3]},
        "motivo": "campanha",
        "via": "manual",
    }
    with pytest.raises(SystemExit):
        main(["limits", "set", "--start", "25:00", "--reason", "x"])
    assert "start must look like HH:MM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["limits", "set", "--reason", "x"])
    assert "nothing to change" in capsys.readouterr().err


def test_numbers_cli_add_list_pause_resume_with_clear_errors(db, cli_env, capsys):
    added = run_cli(capsys, "numbers", "add", "num-novo", "--phone", "5511900001111", "--day-limit", "80")
    assert added["instance"] == "num-novo" and added["warmup_day"] == 1 and added["day"]["limit"] == 20
    run_cli(capsys, "numbers", "add", "num-velho", "--no-warmup")
    listed = run_cli(capsys, "numbers", "list")
    assert [(n["instance"], n["day"]["limit"]) for n in listed] == [("num-novo", 20), ("num-velho", 100)]
    paused = run_cli(capsys, "numbers", "pause", "num-novo", "--reason", "muitos bloqueios")
    assert (paused["paused"], paused["pause_reason"], paused["available"]) == (True, "muitos bloqueios", False)
    resumed = run_cli(capsys, "numbers", "resume", "num-novo", "--reason", "ok")
    assert resumed["paused"] is False and resumed["released"] == 0
    for args, message in (
        (["numbers", "add", "num-velho"], "number num-velho already exists"),
        (["numbers", "add", "má instância"], "is not a valid Evolution instance name"),
        (["numbers", "pause", "nenhum", "--reason", "x"], "number nenhum not found"),
        (["numbers", "resume", "nenhum", "--reason", "x"], "number nenhum not found"),
    ):
        with pytest.raises(SystemExit):
            main(args)
        assert message in capsys.readouterr().err
    subjects = [r["subject"] for r in db.execute("SELECT subject FROM send_policy_changes ORDER BY id")]
    assert subjects == ["number:num-novo", "number:num-velho", "number:num-novo", "number:num-novo"]


# ---------------------------------------------------------------------------
# The acceptance: three numbers, a campaign of 500
# ---------------------------------------------------------------------------


def test_campaign_of_500_over_three_numbers_keeps_every_cap_and_ramp(db, api_client):
    set_policy(
        db, hour_limit=20, day_limit=100, start="08:00", end="20:00", weekdays=[1, 2, 3, 4, 5], cooldown_hours=72
    )
    add_number(db, "num-a")
    add_number(db, "num-b")
    add_number(db, "num-c", warmup=True)  # new: 20/day on day 1, +80/14 a day
    inbound(db, "num-b", "5511988880000", "ANA-1")  # Ana already talked to B
    esp = db.execute("INSERT INTO especialidades (nome) VALUES ('Clínica') RETURNING id").fetchone()["id"]
    db.execute(
        "INSERT INTO clientes (telefone, nome, especialidade_id, whatsapp_numero) "
        "SELECT '55119' || lpad(g::text, 8, '0'), 'Médico ' || g, %s, '55119' || lpad(g::text, 8, '0')"
        " FROM generate_series(1, 499) AS g",
        (esp,),
    )
    db.execute("UPDATE clientes SET especialidade_id = %s WHERE telefone = '5511988880000'", (esp,))
    campaign = db.execute("SELECT create_campaign('500', 'Oi {primeiro_nome}!', '{}', NULL, NULL) AS id").fetchone()[
        "id"
    ]
    assert db.execute("SELECT start_campaign(%s) AS n", (campaign,)).fetchone()["n"] == 500
    preview = db.execute("SELECT preview_campaign(%s, NULL, %s) AS p", (campaign, WED_0900)).fetchone()["p"]
    assert [n["hoje_restam"] for n in preview["numeros"]] == [100, 100, 20]
    assert preview["dias_necessarios"] == 3  # 220 + 225 + the last 55

    per_hour: Counter = Counter()
    per_day: Counter = Counter()
    for day in range(3):  # Wednesday, Thursday, Friday
        for hour in range(8, 20):
            for minute in (0, 20, 40):
                at = datetime(2026, 12, 2 + day, hour, minute, tzinfo=SP)
                due = [r["id"] for r in db.execute("SELECT * FROM dispatch_outreach(NULL, %s) AS id", (at,))]
                due += [
                    r["id"]
                    for r in db.execute(
                        "SELECT id FROM outbox WHERE state = 'deferred' AND not_before <= %s ORDER BY id", (at,)
                    )
                ]
                for outbox_id in due:
                    job = next(_ids)
                    result = claim(db, outbox_id, at, job)
                    if result["claimed"]:
                        db.execute("SELECT mark_outbox_sent(%s, %s, %s)", (outbox_id, job, f"EVO{outbox_id}"))
                        db.execute("UPDATE outbox SET sent_at = %s WHERE id = %s", (at, outbox_id))
                        per_hour[(result["instance"], day, hour)] += 1
                        per_day[(result["instance"], day)] += 1
    assert max(per_hour.values()) <= 20
    ramp = {0: 20, 1: 25, 2: 31}  # num-c: 20 + 80 * d / 14
    for (instance, day), sent in per_day.items():
        assert sent <= (ramp[day] if instance == "num-c" else 100), (instance, day, sent)
    assert (per_day[("num-c", 0)], per_day[("num-c", 1)]) == (20, 25)
    assert (per_day[("num-a", 0)], per_day[("num-b", 0)]) == (100, 100)
    assert sum(per_day.values()) == 500
    sent_from = db.execute(
        "SELECT n.instance FROM outbox AS o JOIN whatsapp_numbers AS n ON n.id = o.number_id "
        "JOIN clientes AS c ON c.id = o.cliente_id WHERE c.telefone = '5511988880000' AND o.kind = 'campaign'"
    ).fetchone()
    assert sent_from["instance"] == "num-b"
    status = db.execute("SELECT campaign_numbers(%s) AS s", (campaign,)).fetchone()["s"]
    assert sum(s["enviadas"] for s in status) == 500 and {s["instance"] for s in status} == {"num-a", "num-b", "num-c"}

    # /health/rate-limit: each number's counters, from the database, now.
    set_policy(db, hour_limit=20, day_limit=100)
    now_row = claim(db, campaign_row(db, doctor(db, 9_999)), None)
    body = api_client.get("/health/rate-limit").json()
    numbers = {n["instance"]: n for n in body["numbers"]}
    assert set(numbers) == {"num-a", "num-b", "num-c"}
    assert numbers[now_row["instance"]]["hour"]["sent"] == 1
    assert sum(n["day"]["sent"] for n in numbers.values()) == body["day"]["sent"] == 1
    assert numbers["num-a"]["hour"]["limit"] == 20 and numbers["num-a"]["day"]["limit"] == 100


def test_numbers_set_changes_caps_and_own_hours_which_the_gate_respects(db, cli_env, capsys):
    set_policy(db, hour_limit=1000, day_limit=100)
    run_cli(capsys, "numbers", "add", "num-a", "--no-warmup")
    run_cli(capsys, "numbers", "add", "num-b", "--no-warmup")
    changed = run_cli(
        capsys, "numbers", "set", "num-a", "--day-limit", "3", "--hours", "10:00-12:00", "--reason", "teste"
    )
    assert changed["day"]["limit"] == 3
    # 09:00: num-a is outside its own hours, so new contacts go from num-b only.
    assert {claim(db, campaign_row(db, doctor(db, n)), WED_0900)["instance"] for n in range(4)} == {"num-b"}
    at_ten = WED_0900 + timedelta(hours=1)
    went = Counter(claim(db, campaign_row(db, doctor(db, 10 + n)), at_ten)["instance"] for n in range(120))
    assert (went["num-a"], went["num-b"], went[None]) == (3, 96, 21)  # num-a's own day cap; num-b's is the policy's
    run_cli(capsys, "numbers", "set", "num-a", "--policy-limits", "--policy-hours", "--reason", "volta")
    listed = {n["instance"]: n for n in run_cli(capsys, "numbers", "list")}
    assert listed["num-a"]["day"]["limit"] == 100
    with pytest.raises(SystemExit):
        main(["numbers", "set", "num-a", "--hours", "25:00-26:00", "--reason", "x"])
    assert "hours_start must look like HH:MM" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["numbers", "set", "nenhum", "--day-limit", "1", "--reason", "x"])
    assert "number nenhum not found" in capsys.readouterr().err
