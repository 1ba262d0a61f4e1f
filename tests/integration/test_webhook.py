"""The webhook through its public HTTP entry point, on real Postgres: what
gets in, what is refused, and what lands on the pgmq 'inbound' queue."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from starlette.testclient import TestClient

from app.core.config import ConfigError, load_settings
from app.http.app import create_app
from app.http.evolution import MAX_BODY_BYTES
from tests import payloads
from tests.conftest import WEBHOOK_SECRET

URL = "/webhooks/evolution"
AUTH = {"x-webhook-secret": WEBHOOK_SECRET}
# HS256 wants a key of at least 32 bytes; PyJWT warns (an error under pytest)
# on the 19-byte conftest secret, so the JWT tests run an app with this one.
JWT_SECRET = "julia-webhook-jwt-secret-0123456789abcdef"


def queued(db):
    """Every message waiting on pgmq 'inbound', oldest first."""
    return db.execute(
        "SELECT msg_id, message->'message'->>'phone' AS phone, message->'message'->>'lid' AS lid"
        " FROM pgmq.q_inbound ORDER BY msg_id"
    ).fetchall()


def bearer(claims, key=JWT_SECRET):
    return {"authorization": f"Bearer {jwt.encode(claims, key, algorithm='HS256')}"}


def app_client(env):
    return TestClient(create_app(load_settings("api", env)))


@pytest.fixture
def jwt_client(test_env):
    """The real app, configured with a secret long enough to sign JWTs with."""
    with app_client({**test_env, "EVOLUTION_WEBHOOK_SECRET": JWT_SECRET}) as client:
        yield client


# --- authentication ----------------------------------------------------------


def test_missing_credentials_are_refused_and_nothing_is_queued(api_client, db):
    response = api_client.post(URL, json=payloads.upsert())
    assert response.status_code == 401
    assert "credentials" in response.json()["error"]
    assert queued(db) == []


def test_wrong_secret_header_is_refused(api_client, db):
    response = api_client.post(URL, json=payloads.upsert(), headers={"x-webhook-secret": "not-the-secret"})
    assert response.status_code == 401
    assert queued(db) == []


def test_secret_header_queues_exactly_one_message_for_the_phone(api_client, db):
    response = api_client.post(URL, json=payloads.upsert(text="Oi, tem plantão?"), headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"
    rows = queued(db)
    assert [row["phone"] for row in rows] == [payloads.PHONE]
    assert response.json()["msg_id"] == rows[0]["msg_id"]


def test_bearer_jwt_signed_with_the_secret_is_accepted(jwt_client, db):
    headers = bearer({"iss": "evolution", "exp": int(time.time()) + 300})
    response = jwt_client.post(URL, json=payloads.upsert(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"
    assert [row["phone"] for row in queued(db)] == [payloads.PHONE]


def test_bearer_jwt_signed_with_another_key_is_refused(jwt_client, db):
    headers = bearer({"iss": "evolution"}, key="another-key-that-is-also-32-bytes-long")
    response = jwt_client.post(URL, json=payloads.upsert(), headers=headers)
    assert response.status_code == 401
    assert queued(db) == []


def test_expired_bearer_jwt_is_refused(jwt_client, db):
    response = jwt_client.post(URL, json=payloads.upsert(), headers=bearer({"exp": int(time.time()) - 60}))
    assert response.status_code == 401
    assert queued(db) == []


def test_bearer_garbage_is_refused(api_client, db):
    response = api_client.post(URL, json=payloads.upsert(), headers={"authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401
    assert queued(db) == []


def test_credentials_are_checked_before_the_body_is_read(api_client, db):
    response = api_client.post(URL, content=b"{not json")
    assert response.status_code == 401
    assert queued(db) == []


# --- bad bodies --------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b'{"event": "messages.upsert", ', b'{"text": "\xc3\x28"}'])
def test_malformed_json_is_a_400_with_a_reason(api_client, db, raw):
    response = api_client.post(URL, content=raw, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")
    assert queued(db) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event": "messages.upsert", "data": {"n": NaN}}',
        b'{"event": "messages.upsert", "n": -Infinity}',
        b'{"event": "messages.upsert", "n": 1e999}',
        b'{"event": "messages.upsert", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["nan", "infinity", "overflowing-number", "nested-5000-deep"],
)
def test_json_postgres_cannot_store_is_a_422_with_a_reason(api_client, db, raw):
    response = api_client.post(URL, content=raw, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("body cannot be stored")


def test_encoded_surrogates_are_not_utf8_and_get_a_400(api_client, db):
    surrogate = "\ud800".encode("utf-8", "surrogatepass")  # CESU-8 bytes: not UTF-8
    raw = b'{"event": "messages.upsert", "t": "x' + surrogate + b'y"}'
    response = api_client.post(URL, content=raw, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert queued(db) == []


def test_nul_and_lone_surrogates_are_stored_readable_with_the_raw_payload_escaped(api_client, db):
    body = payloads.upsert(text="Oi\x00 doutor \ud800!", push_name="Dr.\x00 Rafael")
    raw = json.dumps(body).encode()  # NUL and the surrogate travel as escapes, as JSON allows
    response = api_client.post(URL, content=raw, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 200, response.text
    row = db.execute("SELECT message FROM pgmq.q_inbound").fetchone()["message"]
    assert row["message"]["text"] == "Oi doutor \ufffd!"
    assert row["message"]["push_name"] == "Dr. Rafael"
    assert row["raw"]["message"]["conversation"] == "Oi\\u0000 doutor \\ud800!"


@pytest.mark.parametrize(
    "body",
    [
        [payloads.upsert()],
        {"foo": 1},
        {**payloads.upsert(), "data": "3A0000000000000000AB"},
    ],
    ids=["json-array", "not-an-evolution-event", "upsert-data-is-a-string"],
)
def test_json_that_is_not_an_evolution_event_is_a_400(api_client, db, body):
    response = api_client.post(URL, json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"].startswith("not an Evolution event")
    assert queued(db) == []


def test_body_over_two_mebibytes_is_a_413(api_client, db):
    body = payloads.upsert(text="a" * MAX_BODY_BYTES)
    response = api_client.post(URL, json=body, headers=AUTH)
    assert response.status_code == 413
    assert "error" in response.json()
    assert queued(db) == []


def test_get_on_the_webhook_path_is_a_405(api_client):
    assert api_client.get(URL, headers=AUTH).status_code == 405


# --- events Julia does not act on ---------------------------------------------


def _group_message():
    body = payloads.upsert(text="Bom dia, grupo")
    body["data"]["key"] |= {"remoteJid": "120363025246125486@g.us", "participant": f"{payloads.PHONE}@s.whatsapp.net"}
    return body


def _status_broadcast():
    body = payloads.upsert(text="Meu status")
    body["data"]["key"]["remoteJid"] = "status@broadcast"
    return body


def _presence_update():
    jid = f"{payloads.PHONE}@s.whatsapp.net"
    return {
        "event": "presence.update",
        "instance": "julia-test",
        "data": {"id": jid, "presences": {jid: {"lastKnownPresence": "composing"}}},
    }


@pytest.mark.parametrize(
    ("body", "event"),
    [
        (_group_message(), "messages.upsert"),
        (_status_broadcast(), "messages.upsert"),
        (_presence_update(), "presence.update"),
    ],
    ids=["group", "status-broadcast", "presence-update"],
)
def test_ignored_events_are_acknowledged_and_not_queued(api_client, db, body, event):
    response = api_client.post(URL, json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "ignored"
    assert answer["event"] == event
    assert answer["reason"]
    assert queued(db) == []


# --- what gets queued ---------------------------------------------------------


def test_webhook_by_events_path_names_the_event_when_the_body_does_not(api_client, db):
    body = payloads.upsert()
    del body["event"]
    response = api_client.post(f"{URL}/messages-upsert", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"
    assert [row["phone"] for row in queued(db)] == [payloads.PHONE]


@pytest.mark.parametrize(
    ("layout", "lid"),
    [("classic", None), ("v2_3_5", payloads.LID), ("v2_3_7", payloads.LID), ("sender_pn", payloads.LID)],
)
def test_every_lid_layout_queues_the_doctors_phone(api_client, db, layout, lid):
    response = api_client.post(URL, json=payloads.upsert(layout=layout), headers=AUTH)
    assert response.status_code == 200, response.text
    assert [(row["phone"], row["lid"]) for row in queued(db)] == [(payloads.PHONE, lid)]


def test_lid_only_message_is_queued_with_the_lid_and_no_phone(api_client, db):
    response = api_client.post(URL, json=payloads.upsert(layout="lid_only"), headers=AUTH)
    assert response.status_code == 200, response.text
    assert [(row["phone"], row["lid"]) for row in queued(db)] == [(None, payloads.LID)]


# --- health ---------------------------------------------------------------------


def test_health_answers_ok(api_client):
    response = api_client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_health_ready_reports_the_database_ok(api_client):
    response = api_client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok"}


# --- configuration by environment ---------------------------------------------


def test_dev_without_a_secret_accepts_webhooks_without_credentials(test_env, db):
    with app_client({**test_env, "APP_ENV": "dev", "EVOLUTION_WEBHOOK_SECRET": ""}) as client:
        response = client.post(URL, json=payloads.upsert())
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"
    assert [row["phone"] for row in queued(db)] == [payloads.PHONE]


def test_outside_dev_the_api_will_not_start_without_a_secret(test_env):
    with pytest.raises(ConfigError, match="EVOLUTION_WEBHOOK_SECRET"):
        load_settings("api", {**test_env, "EVOLUTION_WEBHOOK_SECRET": ""})
