"""A worker killed after Evolution accepted a send, before `mark_outbox_sent`
committed: the rescued job asks Evolution (findMessages), finds its earlier
send and records it; the doctor gets the answer once."""

from __future__ import annotations

import httpx

from tests import payloads
from tests.conftest import WEBHOOK_SECRET, settled, wait_for

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}


def outbox(db) -> list[dict]:
    return db.execute("SELECT state, attempts, evolution_message_id FROM outbox ORDER BY id").fetchall()


def test_worker_killed_after_evolution_accepted_the_send_sends_it_exactly_once(api_url, spawn, test_env, db, evolution):
    crashing = spawn(["worker"], {**test_env, "JULIA_FAULT": "after_send"})
    response = httpx.post(f"{api_url}/webhooks/evolution", json=payloads.upsert(text="Oi"), headers=AUTH, timeout=5)
    assert response.status_code == 200
    wait_for(lambda: crashing.proc.poll() is not None, timeout=30)
    assert crashing.proc.returncode == 86  # died between Evolution's 201 and mark_outbox_sent
    assert [r["state"] for r in outbox(db)] == ["claimed"]
    assert len(evolution.sent_texts()) == 1
    assert evolution.message_searches() == []  # a first attempt does not ask

    worker = spawn(["worker"], test_env)  # rescues the stalled job, which asks before sending
    wait_for(lambda: [r["state"] for r in outbox(db)] == ["sent"] and settled(db), timeout=30)
    sent = evolution.sent_texts()
    assert len(sent) == 1
    assert outbox(db) == [{"state": "sent", "attempts": 2, "evolution_message_id": sent[0]["id"]}]
    history = db.execute("SELECT message_id FROM interacoes WHERE direcao = 'saida'").fetchall()
    assert history == [{"message_id": sent[0]["id"]}]
    assert evolution.message_searches()[0]["where"]["key"] == {
        "remoteJid": f"{payloads.PHONE}@s.whatsapp.net",
        "fromMe": True,
    }
    assert '"action": "send_reconciled"' in worker.stop()


def test_worker_killed_before_the_send_asks_finds_nothing_and_sends_once(api_url, spawn, test_env, db, evolution):
    crashing = spawn(["worker"], {**test_env, "JULIA_FAULT": "after_claim"})
    response = httpx.post(f"{api_url}/webhooks/evolution", json=payloads.upsert(text="Oi"), headers=AUTH, timeout=5)
    assert response.status_code == 200
    wait_for(lambda: crashing.proc.poll() is not None, timeout=30)
    assert crashing.proc.returncode == 86
    assert evolution.sent_texts() == []

    worker = spawn(["worker"], test_env)
    wait_for(lambda: [r["state"] for r in outbox(db)] == ["sent"] and settled(db), timeout=30)
    sent = evolution.sent_texts()
    assert len(sent) == 1
    assert outbox(db) == [{"state": "sent", "attempts": 2, "evolution_message_id": sent[0]["id"]}]
    assert evolution.message_searches()  # it asked first
    assert '"action": "send_reconcile_none"' in worker.stop()
