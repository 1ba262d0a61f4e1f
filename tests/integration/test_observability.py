"""Observability in SQL and on the api: the snapshot /metrics reads, the
counters triggers keep (model calls, refusals of the send gate), /metrics
with the database down, and message_trace for ids it cannot find."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.core.errors import NotFound
from app.http.app import create_app
from app.ops.trace import read_trace
from app.store.errors import wrap_db_errors
from tests import payloads
from tests.conftest import WEBHOOK_SECRET


def snapshot(db) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    rows = db.execute("SELECT * FROM metrics_snapshot('test', '')").fetchall()
    return {(r["metric"], tuple(sorted(r["labels"].items()))): r["value"] for r in rows}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_snapshot_of_a_fresh_database_has_the_gauges_and_an_empty_histogram(db):
    values = snapshot(db)
    assert values[("julia_inbound_queue_depth", ())] == 0
    assert values[("julia_paused", ())] == 0
    assert values[("julia_environment_guard_ok", ())] == 1
    assert values[("julia_jobs", (("queue", "replies"), ("status", "todo")))] == 0
    buckets = {k[1][0][1]: v for k, v in values.items() if k[0] == "julia_reply_latency_seconds_bucket"}
    assert buckets["+Inf"] == 0 and buckets["2.5"] == 0 and len(buckets) == 13
    db.execute("SELECT enqueue_inbound(%s)", (Jsonb({"v": 1, "message": {"message_id": "X1"}}),))
    db.execute("SELECT pause_julia('teste', 'manual')")
    values = snapshot(db)
    assert values[("julia_inbound_queue_depth", ())] == 1
    assert values[("julia_paused", ())] == 1
    # Another environment's process sees its guard fail.
    assert (
        db.execute(
            "SELECT value FROM metrics_snapshot('production', '') WHERE metric = 'julia_environment_guard_ok'"
        ).fetchone()["value"]
        == 0
    )


def test_recorded_model_calls_count_calls_and_tokens_by_model(db):
    for outcome, tokens in (("ok", 100), ("ok", 50), ("error", 0)):
        db.execute(
            "SELECT record_llm_call(NULL, NULL, NULL, 'claude-x', %s, %s, 7, NULL, NULL, now())", (outcome, tokens)
        )
    values = snapshot(db)
    assert values[("julia_llm_calls_total", (("model", "claude-x"), ("outcome", "ok")))] == 2
    assert values[("julia_llm_calls_total", (("model", "claude-x"), ("outcome", "error")))] == 1
    assert values[("julia_llm_tokens_total", (("kind", "input"), ("model", "claude-x")))] == 150
    assert values[("julia_llm_tokens_total", (("kind", "output"), ("model", "claude-x")))] == 21
    with pytest.raises(Exception, match="outcome must be ok or error"), wrap_db_errors():
        db.execute("SELECT record_llm_call(NULL, NULL, NULL, 'claude-x', 'maybe', 1, 1, NULL, NULL, now())")


def test_each_refusal_of_the_gate_is_counted_and_a_release_is_not(db):
    cliente = db.execute("INSERT INTO clientes (telefone) VALUES ('5511900000009') RETURNING id").fetchone()["id"]
    outbox = db.execute(
        "INSERT INTO outbox (idempotency_key, kind, cliente_id, number, texto) "
        "VALUES ('k1', 'alert', %s, '5511900000009', 'oi') RETURNING id",
        (cliente,),
    ).fetchone()["id"]
    db.execute("SELECT pause_julia('teste', 'manual')")
    for job in (1, 2):  # two refusals, in two transactions
        assert db.execute("SELECT reason FROM claim_send_slot(%s, %s, 'test', '')", (outbox, job)).fetchone() == {
            "reason": "paused"
        }
    db.execute("SELECT resume_julia('teste', 'manual')")  # releases the row to 'queued': not a refusal
    values = snapshot(db)
    assert values[("julia_send_refusals_total", (("kind", "alert"), ("reason", "paused")))] == 2
    assert ("julia_sends_total", (("kind", "alert"), ("outcome", "sent"))) not in values
    assert db.execute("SELECT claimed FROM claim_send_slot(%s, 3, 'test', '')", (outbox,)).fetchone()["claimed"]
    db.execute("SELECT mark_outbox_sent(%s, 3, 'EVO1')", (outbox,))
    values = snapshot(db)
    assert values[("julia_sends_total", (("kind", "alert"), ("outcome", "sent")))] == 1
    assert values[("julia_send_refusals_total", (("kind", "alert"), ("reason", "paused")))] == 2


def test_metrics_counts_webhooks_by_outcome_on_the_api(api_client):
    before = samples(api_client.get("/metrics").text)
    auth = {"x-webhook-secret": WEBHOOK_SECRET}
    assert api_client.post("/webhooks/evolution", json=payloads.upsert(), headers=auth).status_code == 200
    assert api_client.post("/webhooks/evolution", json=payloads.upsert()).status_code == 401
    assert api_client.post("/webhooks/evolution", content=b"[1]", headers=auth).status_code == 400
    response = api_client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def moved(status: str, outcome: str) -> float:
        key = ("julia_webhooks_total", (("outcome", outcome), ("source", "evolution"), ("status", status)))
        return after.get(key, 0) - before.get(key, 0)

    assert (moved("2xx", "queued"), moved("4xx", "unauthorized"), moved("4xx", "invalid")) == (1, 1, 1)
    assert after[("julia_database_up", ())] == 1
    assert after[("julia_inbound_queue_depth", ())] == 1
    assert after[("julia_inbound_queued_total", ())] - before[("julia_inbound_queued_total", ())] == 1


def test_metrics_is_served_with_the_database_down(test_env):
    env = {**test_env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/julia"}  # nothing listens on port 9
    pool = AsyncConnectionPool(env["DATABASE_URL"], min_size=0, max_size=1, open=False, timeout=1)
    with TestClient(create_app(load_settings("api", env), pool=pool)) as client:
        client.portal.call(pool.open)  # open on the app's loop; connecting fails (nothing listens)
        response = client.get("/metrics")
        client.portal.call(pool.close)
    assert response.status_code == 200
    values = samples(response.text)
    assert values[("julia_database_up", ())] == 0
    assert ("julia_inbound_queue_depth", ()) not in values
    assert any(name.startswith("process_") for name, _ in values)


def test_metrics_token_is_required_when_set(test_env):
    with TestClient(create_app(load_settings("api", {**test_env, "METRICS_TOKEN": "s3cret"}))) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"authorization": "Bearer nope"}).status_code == 401
        assert client.get("/metrics", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_trace_of_an_unknown_id_is_not_found_and_of_a_queued_message_shows_the_queue(db):
    with pytest.raises(NotFound, match="no message with id 3AUNKNOWN"):
        read_trace(db, "3AUNKNOWN")
    with pytest.raises(NotFound):
        read_trace(db, "424242")
    db.execute("SELECT enqueue_inbound(%s)", (Jsonb({"v": 1, "message": {"message_id": "3AWAITING"}}),))
    steps = read_trace(db, "3AWAITING")
    assert [s["step"] for s in steps] == ["webhook_queued"]
    assert steps[0]["detail"]["stored"] is False
