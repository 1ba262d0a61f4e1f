"""Deep health, schema and rate-limit endpoints, the environment hard
guards (503 + nothing sent), bootstrap idempotence, and the operator API."""

from __future__ import annotations

import time

import jwt
import psycopg
import pytest
from psycopg.types.json import Jsonb
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.core.errors import Conflict
from app.core.tokens import mint_ops_token
from app.http.app import create_app
from app.store import schema
from app.store.errors import wrap_db_errors
from tests import payloads
from tests.conftest import WEBHOOK_SECRET, WorkerThread, settled, wait_for

OPS_SECRET = "ops-secret-for-tests-0123456789abcdef"


def client_for(env: dict[str, str]) -> TestClient:
    return TestClient(create_app(load_settings("api", env)))


def test_deep_health_is_healthy_and_deploy_safe(api_client):
    response = api_client.get("/health/deep")
    assert response.status_code == 200
    report = response.json()
    assert report["deploy_safe"] is True
    assert report["status"] == "healthy"
    checks = report["checks"]
    assert checks["environment"] == {"status": "ok", "value": "test"}
    assert checks["project_ref"] == {"status": "ok"}
    assert checks["tables"] == {"status": "ok", "missing": []}
    assert checks["schema_version"] == {
        "status": "ok",
        "version": schema.expected_head(),
        "expected": schema.expected_head(),
    }
    assert checks["queues"]["inbound"] == {"depth": 0, "oldest_age_seconds": None}
    assert checks["database"]["latency_ms"] >= 0


def test_deep_health_reports_queue_depth(api_client):
    api_client.post("/webhooks/evolution", json=payloads.upsert(), headers={"x-webhook-secret": WEBHOOK_SECRET})
    inbound = api_client.get("/health/deep").json()["checks"]["queues"]["inbound"]
    assert inbound["depth"] == 1
    assert inbound["oldest_age_seconds"] >= 0


@pytest.mark.parametrize(
    ("override", "check", "expected"),
    [
        ({"APP_ENV": "production"}, "environment", "production"),
        ({"SUPABASE_PROJECT_REF": "abcdefghijklmnopqrst"}, "project_ref", "abcdefghijklmnopqrst"),
    ],
)
def test_marker_mismatch_answers_503_and_names_the_marker(test_env, override, check, expected):
    with client_for({**test_env, **override}) as client:
        response = client.get("/health/deep")
    assert response.status_code == 503
    report = response.json()
    assert report["deploy_safe"] is False
    assert report["status"] == "critical"
    assert report["checks"][check]["status"] == "critical"
    assert report["checks"][check]["expected"] == expected


def test_missing_marker_is_critical(db, api_client):
    db.execute("DELETE FROM app_settings WHERE key = 'environment'")
    report = api_client.get("/health/deep").json()
    assert report["checks"]["environment"]["detail"] == "marker missing: run julia db bootstrap"
    assert report["deploy_safe"] is False


def test_schema_behind_is_critical(db, api_client):
    db.execute("UPDATE alembic_version SET version_num = '0002'")
    deep = api_client.get("/health/deep")
    assert deep.status_code == 503
    assert deep.json()["checks"]["schema_version"]["status"] == "critical"
    response = api_client.get("/health/schema")
    assert response.status_code == 503
    assert response.json()["missing"] == list(schema.revision_chain()[2:])


def test_database_ahead_of_the_code_is_healthy_so_rollback_works(db, api_client):
    db.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_release'")
    response = api_client.get("/health/schema")
    assert response.status_code == 200
    assert response.json()["status"] == "ahead"
    deep = api_client.get("/health/deep")
    assert deep.status_code == 200
    assert "ahead" in deep.json()["checks"]["schema_version"]["detail"]


def test_schema_endpoint_reports_current_and_expected(api_client):
    body = api_client.get("/health/schema").json()
    assert body == {
        "status": "ok",
        "current": schema.expected_head(),
        "expected": schema.expected_head(),
        "missing": [],
    }


def test_rate_limit_endpoint_counts_proactive_sends_against_the_limits(db, test_env):
    # The limits are the database's policy; the api's environment says otherwise and does not count.
    policy = {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59", "hour_limit": 7, "day_limit": 30}
    db.execute("SELECT set_send_policy(%s, 'test', 'manual')", (Jsonb(policy),))
    for n, kind in enumerate(("campaign", "follow_up", "reply")):
        phone = f"551190000000{n}"  # a number WhatsApp confirmed: no onWhatsApp check
        cliente = db.execute(
            "INSERT INTO clientes (telefone, whatsapp_numero) VALUES (%s, %s) RETURNING id", (phone, phone)
        )
        outbox = db.execute(
            "INSERT INTO outbox (idempotency_key, kind, cliente_id, number, texto) "
            "VALUES (%s, %s, %s, '5511900000001', 'oi') RETURNING id",
            (f"k{n}", kind, cliente.fetchone()["id"]),
        ).fetchone()["id"]
        claim = db.execute("SELECT claimed FROM claim_send_slot(%s, %s, 'test', '')", (outbox, n + 1))
        assert claim.fetchone()["claimed"]
    with client_for({**test_env, "MAX_MSGS_POR_HORA": "99", "MAX_MSGS_POR_DIA": "999"}) as client:
        body = client.get("/health/rate-limit").json()
    assert body["hour"]["sent"] == 2  # replies are not proactive
    assert body["hour"]["limit"] == 7
    assert body["hour"]["remaining"] == 5
    assert body["day"] == {**body["day"], "sent": 2, "limit": 30, "remaining": 28}
    assert body["policy"]["hour_limit"] == 7


def test_worker_with_the_wrong_environment_sends_nothing(test_env, db, evolution, api_client):
    worker = WorkerThread(load_settings("worker", {**test_env, "APP_ENV": "production"})).start()
    try:
        api_client.post("/webhooks/evolution", json=payloads.upsert(), headers={"x-webhook-secret": WEBHOOK_SECRET})
        wait_for(lambda: db.execute("SELECT state FROM outbox").fetchone(), timeout=20)
        wait_for(lambda: settled(db))
        row = db.execute("SELECT state, refusal FROM outbox").fetchone()
        assert row == {"state": "deferred", "refusal": "guard"}
        assert evolution.sent_texts() == []
    finally:
        worker.stop()


def test_bootstrap_is_idempotent_and_never_overwrites_a_marker_silently(db):
    before = db.execute("SELECT key, value FROM app_settings ORDER BY key").fetchall()
    flags = db.execute("SELECT key, value FROM feature_flags ORDER BY key").fetchall()
    actions = db.execute("SELECT * FROM bootstrap_database('test', '', false)").fetchall()
    assert {a["action"] for a in actions} == {"unchanged"}
    assert db.execute("SELECT key, value FROM app_settings ORDER BY key").fetchall() == before
    assert db.execute("SELECT key, value FROM feature_flags ORDER BY key").fetchall() == flags
    assert [f["key"] for f in flags] == ["campaign_attribution", "dynamic_lock", "error_classifier", "external_handoff"]
    assert all(f["value"] == {"enabled": False} for f in flags)
    assert db.execute("SELECT count(*) AS n FROM julia_status").fetchone()["n"] == 1

    with pytest.raises(Conflict, match="use --force"), wrap_db_errors():
        db.execute("SELECT * FROM bootstrap_database('production', '', false)")
    forced = db.execute("SELECT * FROM bootstrap_database('production', '', true)").fetchall()
    assert forced[0] == {"item": "environment", "action": "changed from 'test' (forced)"}


def test_production_bootstrap_starts_paused(db):
    db.execute("DELETE FROM julia_status")
    db.execute("DELETE FROM app_settings")
    db.execute("SELECT * FROM bootstrap_database('production', 'abcdefghijklmnopqrst', false)")
    state = db.execute("SELECT * FROM julia_state()").fetchone()
    assert (state["status"], state["alterado_via"]) == ("pausado", "manual")


def test_julia_status_rejects_an_unknown_channel(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("SELECT pause_julia('x', 'deploy')")


def test_ops_pause_and_resume_need_a_valid_operator_token(db, test_env):
    env = {**test_env, "JWT_SECRET_KEY": OPS_SECRET}
    good = {"authorization": f"Bearer {mint_ops_token(OPS_SECRET, 'ana')}"}
    expired = jwt.encode({"aud": "julia-ops", "exp": int(time.time()) - 10}, OPS_SECRET, algorithm="HS256")
    wrong_aud = jwt.encode({"aud": "other", "exp": int(time.time()) + 60}, OPS_SECRET, algorithm="HS256")
    no_exp = jwt.encode({"aud": "julia-ops"}, OPS_SECRET, algorithm="HS256")
    with client_for(env) as client:
        for headers in (
            {},
            {"authorization": f"Bearer {expired}"},
            {"authorization": f"Bearer {wrong_aud}"},
            {"authorization": f"Bearer {no_exp}"},
            {"authorization": "Bearer nonsense"},
        ):
            assert client.post("/ops/pause", json={"motivo": "x"}, headers=headers).status_code == 401
        assert db.execute("SELECT count(*) AS n FROM julia_status").fetchone()["n"] == 1
        assert client.post("/ops/pause", json={}, headers=good).status_code == 400
        paused = client.post("/ops/pause", json={"motivo": "teste"}, headers=good)
        assert paused.status_code == 200
        assert (paused.json()["status"], paused.json()["alterado_via"]) == ("pausado", "api")
        resumed = client.post("/ops/resume", json={"motivo": "ok"}, headers=good)
        assert resumed.json()["status"] == "ativo"


def test_ops_api_is_off_without_a_jwt_secret(api_client):
    assert api_client.post("/ops/pause", json={"motivo": "x"}).status_code == 503
