"""Humans in the loop, end to end against fake Chatwoot and Slack servers on
127.0.0.1: handoff mirrored with a note, agent messages relayed once,
resolve hands back, signed Slack commands, JWT ops endpoints, manager
alerts, and a Chatwoot outage that never touches Julia's replies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.core.tokens import mint_handoff_token, mint_ops_token
from app.devkit.standins.chatwoot import (
    MESSAGE_TYPE_NAMES,
    ChatwootStandin,
    message_created_event,
    sign_webhook,
    status_changed_event,
)
from app.devkit.standins.slack import SlackStandin, sign_request, slash_command_body
from app.http.app import create_app
from tests import payloads
from tests.conftest import WEBHOOK_SECRET, settled, wait_for

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}
CHATWOOT_KEY = "test-chatwoot-key"
CHATWOOT_SECRET = "test-chatwoot-webhook-secret"
SLACK_SECRET = "test-slack-signing-secret"
JWT_SECRET = "test-jwt-secret-with-enough-bytes-for-hs256"
GESTOR = "5511999990000"
HANDOFF_REPLY = "Claro! Vou chamar alguém da equipe para falar com você."


@pytest.fixture
def chatwoot() -> Iterator[ChatwootStandin]:
    with ChatwootStandin(api_key=CHATWOOT_KEY, account_id="1") as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    with SlackStandin() as server:
        yield server


@pytest.fixture
def test_env(test_env: dict[str, str], chatwoot: ChatwootStandin, slack: SlackStandin) -> dict[str, str]:
    """The production environment plus Chatwoot, Slack, JWT and the manager's number."""
    return {
        **test_env,
        "CHATWOOT_URL": chatwoot.url,
        "CHATWOOT_API_KEY": CHATWOOT_KEY,
        "CHATWOOT_ACCOUNT_ID": "1",
        "CHATWOOT_INBOX_ID": "1",
        "CHATWOOT_WEBHOOK_SECRET": CHATWOOT_SECRET,
        "SLACK_WEBHOOK_URL": slack.webhook_url,
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
        "JWT_SECRET_KEY": JWT_SECRET,
        "GESTOR_WHATSAPP": GESTOR,
        "EXTERNAL_HANDOFF_URL": "https://handoff.example.com/receber",
    }


@pytest.fixture
def api_client(api_client, chatwoot: ChatwootStandin) -> Iterator[Any]:
    """The api, with the fake Chatwoot delivering its events to it as Chatwoot would:
    Julia's own posts, notes and status changes come back as signed webhooks."""

    def deliver(raw: bytes, headers: dict[str, str]) -> int:
        return api_client.post("/webhooks/chatwoot", content=raw, headers=headers).status_code

    chatwoot.deliver_webhooks(deliver, secret=CHATWOOT_SECRET)
    yield api_client
    stop_delivering(chatwoot)


def stop_delivering(chatwoot: ChatwootStandin) -> None:
    """Let the fake Chatwoot deliver what is queued, then cut it off from the api and wait
    out the delivery under way: a thread posting into a TestClient while it exits can hang
    TestClient.__exit__ forever (the portal's event loop waits on a request that never ends)."""
    try:
        wait_for(chatwoot.webhooks_idle, timeout=20)
    finally:
        chatwoot.deliver_webhooks(None)
        wait_for(chatwoot.webhooks_idle, timeout=20)


def quiet(db) -> bool:
    """Replies and sends settled, and no mirror or notification job waiting or running."""
    busy = db.execute("SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND queue_name = 'humans'")
    return settled(db) and not busy.fetchone()


def post(api_client, **kwargs) -> None:
    response = api_client.post("/webhooks/evolution", json=payloads.upsert(**kwargs), headers=AUTH)
    assert response.status_code == 200, response.text


def post_chatwoot(api_client, body: dict[str, Any], **sign: Any):
    raw = json.dumps(body).encode()
    return api_client.post("/webhooks/chatwoot", content=raw, headers=sign_webhook(CHATWOOT_SECRET, raw, **sign))


def the_conversation(chatwoot: ChatwootStandin) -> dict[str, Any]:
    (conversation,) = chatwoot.conversations()
    return conversation


def public_texts(chatwoot: ChatwootStandin) -> list[tuple[str, str]]:
    conversation = the_conversation(chatwoot)
    return [
        (MESSAGE_TYPE_NAMES[m["message_type"]], m["content"])
        for m in chatwoot.messages(conversation["id"], private=False)
    ]


def notes(chatwoot: ChatwootStandin) -> list[str]:
    return [m["content"] for m in chatwoot.messages(the_conversation(chatwoot)["id"], private=True)]


def hand_off(api_client, db, evolution, claude, chatwoot, start_worker) -> int:
    """A doctor asks for a person; Julia hands off. Returns the Chatwoot conversation id."""
    claude.queue_tool_use("transferir_para_humano", {"motivo": "pediu para falar com uma pessoa"})
    claude.queue_reply(HANDOFF_REPLY)
    start_worker()
    post(api_client, text="Quero falar com uma pessoa")
    wait_for(lambda: evolution.sent_texts() and quiet(db), timeout=30)
    return the_conversation(chatwoot)["id"]


def ops_get(client, path: str, token: str | None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers)


# ---------------------------------------------------------------------- handoff


def test_handoff_mirrors_to_chatwoot_with_a_note_notifies_slack_and_silences_julia(
    api_client, db, evolution, claude, chatwoot, slack, start_worker
):
    hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    conversation = the_conversation(chatwoot)
    assert conversation["status"] == "open"
    assert "open" in conversation["status_history"]
    assert public_texts(chatwoot) == [("incoming", "Quero falar com uma pessoa"), ("outgoing", HANDOFF_REPLY)]
    (note,) = notes(chatwoot)
    assert "Motivo: pediu para falar com uma pessoa" in note
    assert "medico: Quero falar com uma pessoa" in note
    (handoff_text,) = [t for t in slack.texts() if "Handoff" in t]
    assert "pediu para falar com uma pessoa" in handoff_text

    # Julia stays quiet; the doctor's next words still reach the humans in Chatwoot.
    post(api_client, text="Alô? Tem alguém aí?")
    wait_for(lambda: len(public_texts(chatwoot)) == 3 and quiet(db), timeout=20)
    assert public_texts(chatwoot)[-1] == ("incoming", "Alô? Tem alguém aí?")
    assert len(evolution.sent_texts()) == 1
    assert len(claude.calls()) == 2
    metrics = db.execute("SELECT houve_handoff, motivo_handoff FROM metricas_conversa").fetchone()
    assert metrics == {"houve_handoff": True, "motivo_handoff": "pediu para falar com uma pessoa"}
    states = db.execute("SELECT state, count(*) AS n FROM chatwoot_messages GROUP BY state").fetchall()
    assert states == [{"state": "synced", "n": 3}]


def test_agent_message_in_chatwoot_reaches_the_doctor_exactly_once(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    cw_id = hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    body = message_created_event(conversation_id=cw_id, message_id=9001, content="Oi doutor, aqui é a Ana da equipe")
    first = post_chatwoot(api_client, body)
    again = post_chatwoot(api_client, body)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "queued"
    assert again.json()["status"] == "duplicate"
    wait_for(lambda: len(evolution.sent_texts()) == 2 and quiet(db), timeout=20)
    time.sleep(0.5)
    assert evolution.texts_to(payloads.PHONE) == [HANDOFF_REPLY, "Oi doutor, aqui é a Ana da equipe"]
    # Stored as the human's message, and not mirrored back into Chatwoot.
    last = db.execute("SELECT autor, texto FROM interacoes ORDER BY id DESC LIMIT 1").fetchone()
    assert last == {"autor": "humano", "texto": "Oi doutor, aqui é a Ana da equipe"}
    assert ("outgoing", "Oi doutor, aqui é a Ana da equipe") not in public_texts(chatwoot)
    synced = db.execute("SELECT chatwoot_message_id FROM chatwoot_messages ORDER BY interacao_id DESC LIMIT 1")
    assert synced.fetchone()["chatwoot_message_id"] == 9001


def test_chatwoot_echoes_notes_and_bots_are_not_sent_to_the_doctor(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    cw_id = hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    mirrored = chatwoot.messages(cw_id, private=False)[-1]  # Julia's reply, as the mirror posted it
    echo_by_id = message_created_event(conversation_id=cw_id, message_id=mirrored["id"], content=mirrored["content"])
    echo_by_marker = message_created_event(
        conversation_id=cw_id, message_id=777, content="x", content_attributes=mirrored["content_attributes"]
    )
    note = message_created_event(conversation_id=cw_id, message_id=778, content="nota interna", private=True)
    bot = message_created_event(conversation_id=cw_id, message_id=779, content="bot", sender_type="agent_bot")
    incoming = message_created_event(conversation_id=cw_id, message_id=780, content="oi", message_type="incoming")
    assert post_chatwoot(api_client, echo_by_id).json()["status"] == "echo"
    for body in (echo_by_marker, note, bot, incoming):
        response = post_chatwoot(api_client, body)
        assert response.status_code == 200
        assert response.json()["status"] == "ignored", response.json()
    unknown = message_created_event(conversation_id=424242, message_id=781, content="quem?")
    assert post_chatwoot(api_client, unknown).json()["status"] == "unknown_conversation"
    wait_for(lambda: quiet(db))
    assert len(evolution.sent_texts()) == 1
    assert db.execute("SELECT count(*) AS n FROM outbox WHERE kind = 'human'").fetchone()["n"] == 0


def test_chatwoot_webhook_signature_is_required(api_client, db, test_env):
    body = json.dumps(status_changed_event(conversation_id=1, status="resolved")).encode()
    assert api_client.post("/webhooks/chatwoot", content=body).status_code == 401
    wrong = sign_webhook("another-secret", body)
    assert api_client.post("/webhooks/chatwoot", content=body, headers=wrong).status_code == 401
    stale = sign_webhook(CHATWOOT_SECRET, body, timestamp=int(time.time()) - 600)
    response = api_client.post("/webhooks/chatwoot", content=body, headers=stale)
    assert response.status_code == 401
    assert "5 minutes" in response.json()["error"]
    assert api_client.post("/webhooks/chatwoot", content=body, headers=sign_webhook(CHATWOOT_SECRET, body)).json() == {
        "status": "unknown_conversation"
    }
    # No secret outside dev: refused, saying why.
    unsigned_env = {k: v for k, v in test_env.items() if k != "CHATWOOT_WEBHOOK_SECRET"}
    with TestClient(create_app(load_settings("api", unsigned_env))) as client:
        response = client.post("/webhooks/chatwoot", content=body, headers=sign_webhook(CHATWOOT_SECRET, body))
    assert response.status_code == 401
    assert "CHATWOOT_WEBHOOK_SECRET" in response.json()["error"]


def test_resolving_in_chatwoot_hands_back_to_julia(api_client, db, evolution, claude, chatwoot, slack, start_worker):
    cw_id = hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    response = post_chatwoot(api_client, status_changed_event(conversation_id=cw_id, status="resolved"))
    assert response.json() == {"status": "handed_back", "conversation_id": response.json()["conversation_id"]}
    assert db.execute("SELECT handoff_ativo FROM conversations").fetchone()["handoff_ativo"] is False
    assert post_chatwoot(api_client, status_changed_event(conversation_id=cw_id, status="resolved")).json()[
        "status"
    ] == ("not_handed_off")

    claude.queue_reply("Oi de novo! Em que posso ajudar?")
    post(api_client, text="Voltei, tem plantão?")
    wait_for(lambda: len(evolution.sent_texts()) == 2 and quiet(db), timeout=30)
    assert evolution.sent_texts()[-1]["text"] == "Oi de novo! Em que posso ajudar?"
    assert any("devolvida para a Julia" in n for n in notes(chatwoot))
    # Chatwoot resolved it itself: the mirror does not toggle it again.
    assert the_conversation(chatwoot)["status_history"] == ["open"]
    assert any("devolvida para a Julia (via chatwoot)" in t for t in slack.texts())


def test_external_handoff_link_is_a_signed_jwt_for_the_conversation(
    api_client, db, evolution, claude, chatwoot, slack, start_worker
):
    db.execute("UPDATE feature_flags SET value = '{\"enabled\": true}' WHERE key = 'external_handoff'")
    hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    (text,) = [t for t in slack.texts() if "Handoff" in t]
    link = next(line for line in text.splitlines() if "Sistema externo" in line)
    assert "https://handoff.example.com/receber?token=" in link
    token = link.split("token=", 1)[1]
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience="julia-handoff")
    assert claims["exp"] > time.time()
    conversation_id = db.execute("SELECT id FROM conversations").fetchone()["id"]
    assert claims["sub"] == str(conversation_id)

    context = api_client.get("/handoff/context", params={"token": token})
    assert context.status_code == 200, context.text
    assert context.json()["motivo"] == "pediu para falar com uma pessoa"
    assert context.json()["mensagens"][0]["texto"] == "Quero falar com uma pessoa"
    expired = mint_handoff_token(JWT_SECRET, conversation_id, minutes=-1)
    ops_token = mint_ops_token(JWT_SECRET, "marina")  # right key, wrong audience
    for bad in (expired, ops_token, "not-a-jwt", ""):
        assert api_client.get("/handoff/context", params={"token": bad}).status_code == 401
    assert (
        api_client.get("/handoff/context", params={"token": mint_handoff_token(JWT_SECRET, 999999)}).status_code == 404
    )


# ---------------------------------------------------------------------- Chatwoot outage


def test_chatwoot_failing_never_delays_or_drops_julias_reply(api_client, db, evolution, claude, chatwoot, start_worker):
    chatwoot.fail_all(500)
    claude.queue_reply("Oi! Tenho plantões sim.")
    start_worker()
    post(api_client, text="Oi, tem plantão?")
    wait_for(lambda: evolution.sent_texts(), timeout=10)
    # That it does not wait for Chatwoot at all is shown with Chatwoot held open (next test).
    assert evolution.texts_to(payloads.PHONE) == ["Oi! Tenho plantões sim."]
    # The mirror keeps failing and retrying on its own queue.
    wait_for(
        lambda: db.execute(
            "SELECT 1 FROM procrastinate_jobs WHERE task_name = 'sync_chatwoot_conversation' AND attempts >= 2"
        ).fetchone(),
        timeout=20,
    )
    assert db.execute("SELECT count(*) AS n FROM chatwoot_messages WHERE last_error LIKE '%500%'").fetchone()["n"] >= 1
    # Chatwoot is back: everything is mirrored once, in order.
    chatwoot.fail_all(None)
    wait_for(lambda: chatwoot.conversations() and len(public_texts(chatwoot)) == 2, timeout=40)
    assert public_texts(chatwoot) == [("incoming", "Oi, tem plantão?"), ("outgoing", "Oi! Tenho plantões sim.")]


def test_chatwoot_hanging_never_delays_julias_replies(api_client, db, evolution, claude, chatwoot, start_worker):
    chatwoot.hang()
    try:
        start_worker()
        for n, phone in enumerate(("5511900000001", "5511900000002", "5511900000003")):
            claude.queue_reply(f"Resposta {n}")
            post(api_client, text=f"Oi {n}", phone=phone)
            # Chatwoot holds every call for 60 s: a reply that waited for it would miss this bound.
            wait_for(lambda n=n: len(evolution.sent_texts()) == n + 1, timeout=10)
        hanging = db.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE task_name = 'sync_chatwoot_conversation' "
            "AND status = 'doing'"
        ).fetchone()["n"]
        assert 1 <= hanging <= 2  # at most two mirror jobs hold worker slots
    finally:
        chatwoot.release()


# ---------------------------------------------------------------------- Slack commands


def slack_post(client, text: str, *, timestamp: int | None = None, secret: str = SLACK_SECRET, headers=None):
    body = slash_command_body(text)
    return client.post("/slack/commands", content=body, headers=headers or sign_request(secret, body, timestamp))


def test_slack_limites_reads_and_changes_the_database_policy(api_client, db):
    changed = slack_post(api_client, "limites hour_limit=12 weekdays=1,2,3 campanha de dezembro").json()
    assert changed["response_type"] == "in_channel"
    assert "hour_limit=12" in changed["text"] and "weekdays=[1, 2, 3]" in changed["text"]
    policy = db.execute("SELECT current_send_policy() AS p").fetchone()["p"]
    assert (policy["hour_limit"], policy["weekdays"], policy["day_limit"]) == (12, [1, 2, 3], 100)
    audit = db.execute("SELECT change, motivo, via FROM send_policy_changes ORDER BY id DESC LIMIT 1").fetchone()
    assert audit["via"] == "slack" and audit["change"] == {"hour_limit": 12, "weekdays": [1, 2, 3]}
    assert audit["motivo"].startswith("campanha de dezembro (@")
    assert "hora: 0/12" in slack_post(api_client, "limites").json()["text"]
    refused = slack_post(api_client, "limites hour_limit=-1 x").json()["text"]
    assert "Limites não alterados" in refused and "hour_limit must be a whole number" in refused
    assert "Use `limites" in slack_post(api_client, "limites hour_limit=5").json()["text"]  # no motivo


def newest_status(db) -> dict[str, Any]:
    return db.execute("SELECT status, motivo, alterado_via FROM julia_status ORDER BY id DESC LIMIT 1").fetchone()


def test_slack_pause_and_resume_with_a_valid_signature(api_client, db, slack, start_worker):
    response = slack_post(api_client, "pause Evolution instável")
    assert response.status_code == 200, response.text
    assert response.json()["response_type"] == "in_channel"
    assert "pausada" in response.json()["text"]
    assert newest_status(db) == {"status": "pausado", "motivo": "Evolution instável", "alterado_via": "slack"}

    status = slack_post(api_client, "status").json()
    assert status["response_type"] == "ephemeral"
    assert "PAUSADA" in status["text"]
    limits = slack_post(api_client, "limites").json()
    assert "hora: 0/20" in limits["text"]
    assert "dia: 0/100" in limits["text"]
    assert "Diga o motivo" in slack_post(api_client, "resume").json()["text"]
    assert "Comandos" in slack_post(api_client, "ajuda").json()["text"]

    assert slack_post(api_client, "resume tudo certo").status_code == 200
    assert newest_status(db) == {"status": "ativo", "motivo": "tudo certo", "alterado_via": "slack"}
    start_worker()
    wait_for(lambda: len(slack.texts()) == 2 and quiet(db))
    assert "pausada* (via slack): Evolution instável" in slack.texts()[0]
    assert "retomada* (via slack): tudo certo" in slack.texts()[1]


@pytest.mark.parametrize("case", ["bad_signature", "old", "replayed", "no_headers"])
def test_slack_commands_refuse_bad_old_and_replayed_signatures(api_client, db, case):
    before = db.execute("SELECT count(*) AS n FROM julia_status").fetchone()["n"]
    if case == "bad_signature":
        response = slack_post(api_client, "pause ataque", secret="not-the-secret")
    elif case == "old":
        response = slack_post(api_client, "pause ataque", timestamp=int(time.time()) - 6 * 60)
    elif case == "no_headers":
        response = slack_post(api_client, "pause ataque", headers={"content-type": "application/x-www-form-urlencoded"})
    else:
        body = slash_command_body("pause legítimo")
        headers = sign_request(SLACK_SECRET, body)
        assert api_client.post("/slack/commands", content=body, headers=headers).status_code == 200
        before += 1
        response = api_client.post("/slack/commands", content=body, headers=headers)
        assert response.json() == {"error": "replayed Slack request"}
    assert response.status_code == 401
    assert db.execute("SELECT count(*) AS n FROM julia_status").fetchone()["n"] == before


# ---------------------------------------------------------------------- ops API


def test_ops_endpoints_require_a_valid_operator_jwt(api_client, db):
    now = int(time.time())
    expired = jwt.encode({"sub": "x", "aud": "julia-ops", "exp": now - 10}, JWT_SECRET, algorithm="HS256")
    wrong_aud = jwt.encode({"sub": "x", "aud": "other", "exp": now + 60}, JWT_SECRET, algorithm="HS256")
    no_exp = jwt.encode({"sub": "x", "aud": "julia-ops"}, JWT_SECRET, algorithm="HS256")
    forged = mint_ops_token("another-secret-of-enough-length-for-hs256", "x")
    for path in ("/ops/status", "/ops/queues", "/ops/conversations", "/ops/handoffs"):
        for token in (None, expired, wrong_aud, no_exp, forged):
            assert ops_get(api_client, path, token).status_code == 401, (path, token)
    assert ops_get(api_client, "/ops/status", expired).json() == {"error": "token expired"}
    assert ops_get(api_client, "/ops/status", wrong_aud).json() == {"error": "token audience is not julia-ops"}


def test_ops_endpoints_answer_with_state_queues_conversations_and_handoffs(
    api_client, db, evolution, claude, chatwoot, start_worker
):
    hand_off(api_client, db, evolution, claude, chatwoot, start_worker)
    token = mint_ops_token(JWT_SECRET, "marina", minutes=5)
    status = ops_get(api_client, "/ops/status", token).json()
    assert status["julia"]["status"] == "ativo"
    assert status["handoffs_abertos"] == 1
    assert status["filas"]["inbound"]["depth"] == 0
    queues = ops_get(api_client, "/ops/queues", token).json()
    assert queues["chatwoot"] == {"mensagens_pendentes": 0, "eventos_pendentes": 0}
    assert set(queues) >= {"inbound", "jobs", "outbox", "notificacoes_pendentes"}
    conversations = ops_get(api_client, "/ops/conversations?limit=5", token).json()["conversations"]
    assert conversations[0]["medico"]["telefone"] == payloads.PHONE
    assert conversations[0]["ultima_mensagem"]["texto"] == HANDOFF_REPLY
    assert conversations[0]["chatwoot_conversation_id"] == the_conversation(chatwoot)["id"]
    (handoff,) = ops_get(api_client, "/ops/handoffs", token).json()["handoffs"]
    assert handoff["motivo"] == "pediu para falar com uma pessoa"
    for bad in ("0", "201", "abc", "-1"):
        assert ops_get(api_client, f"/ops/conversations?limit={bad}", token).status_code == 400
    paused = api_client.post("/ops/pause", json={"motivo": "manutenção"}, headers={"authorization": f"Bearer {token}"})
    assert paused.json()["alterado_via"] == "api"


def test_cors_only_when_origins_are_configured(test_env, db):
    preflight = {
        "origin": "https://console.example.com",
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
    }
    env = {**test_env, "CORS_ORIGINS": "https://console.example.com"}
    with TestClient(create_app(load_settings("api", env))) as client:
        allowed = client.options("/ops/status", headers=preflight)
        other = client.options("/ops/status", headers={**preflight, "origin": "https://evil.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(load_settings("api", test_env))) as client:
        assert "access-control-allow-origin" not in client.options("/ops/status", headers=preflight).headers


# ---------------------------------------------------------------------- manager alerts and notifications


def test_manager_alerts_are_rate_limited_in_sql(db):
    db.execute("INSERT INTO app_settings (key, value) VALUES ('manager_alerts_per_hour', '2')")
    ids = [
        db.execute("SELECT notify_humans('guard_failure', '{}'::jsonb, %s) AS id", (f"k{n}",)).fetchone()["id"]
        for n in range(4)
    ]
    claimed = [
        db.execute(
            "SELECT claim_manager_alert(%s, %s, 'alerta') AS id", (i, f"+{GESTOR[:2]} ({GESTOR[2:4]}) {GESTOR[4:]}")
        ).fetchone()["id"]
        for i in ids
    ]
    assert claimed[2:] == [None, None]
    assert None not in claimed[:2]
    # A retried job gets its own alert back, without spending the budget.
    assert (
        db.execute("SELECT claim_manager_alert(%s, %s, 'alerta') AS id", (ids[0], GESTOR)).fetchone()["id"]
        == (claimed[0])
    )
    rows = db.execute("SELECT kind, number FROM outbox ORDER BY id").fetchall()
    assert rows == [{"kind": "alert", "number": GESTOR}] * 2
    with pytest.raises(Exception, match="not a WhatsApp number"):
        db.execute("SELECT claim_manager_alert(%s, 'gestor', 'alerta')", (ids[3],))


def test_a_job_failure_reaches_slack_and_the_managers_whatsapp(db, evolution, slack, start_worker):
    for _ in range(2):  # one notification per task and hour
        db.execute("SELECT record_job_failure('send_outbox', 1, NULL, NULL, 'permanent', 'Evolution answered 401')")
    start_worker()
    wait_for(lambda: evolution.texts_to(GESTOR) and slack.texts() and quiet(db), timeout=20)
    (text,) = slack.texts()
    assert "send_outbox" in text
    assert "Evolution answered 401" in text
    (alert,) = evolution.texts_to(GESTOR)
    assert "ALERTA" in alert


def test_slack_outage_keeps_the_notification_and_retries(db, slack, start_worker):
    slack.fail_next(500, times=1)
    db.execute("SELECT pause_julia('teste', 'manual')")
    start_worker()
    wait_for(lambda: slack.texts(), timeout=20)
    assert "pausada" in slack.texts()[0]
    # Slack has the text a moment before the worker records it as sent.
    wait_for(lambda: db.execute("SELECT state FROM notifications").fetchone()["state"] != "pending", timeout=10)
    row = db.execute("SELECT state, attempts FROM notifications").fetchone()
    assert row == {"state": "sent", "attempts": 2}


# ---------------------------------------------------------------------- the mirror itself


def store(db, conversation_id: int, cliente_id: int, autor: str, texto: str) -> int:
    return db.execute(
        "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto) "
        "VALUES (%s, %s, gen_random_uuid()::text, %s, %s, %s) RETURNING id",
        (conversation_id, cliente_id, "entrada" if autor == "medico" else "saida", autor, texto),
    ).fetchone()["id"]


@pytest.fixture
def stored_conversation(db) -> tuple[int, int]:
    cliente = db.execute("INSERT INTO clientes (telefone, nome) VALUES ('5511911112222', 'Dra. Lia') RETURNING id")
    cliente_id = cliente.fetchone()["id"]
    conversation = db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, '5511911112222@s.whatsapp.net') RETURNING id",
        (cliente_id,),
    )
    return conversation.fetchone()["id"], cliente_id


async def test_the_mirror_posts_each_message_once_in_order_across_crashes_and_deletions(
    database_url, db, chatwoot, stored_conversation
):
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from app.integrations.chatwoot import MARKER, ChatwootClient, ChatwootError
    from app.worker.chatwoot_sync import sync_conversation

    conversation_id, cliente_id = stored_conversation
    store(db, conversation_id, cliente_id, "medico", "um")
    store(db, conversation_id, cliente_id, "julia", "dois")
    pool = AsyncConnectionPool(database_url, kwargs={"autocommit": True, "row_factory": dict_row}, open=False)
    await pool.open()
    try:
        async with ChatwootClient(base_url=chatwoot.url, api_key=CHATWOOT_KEY, account_id="1", inbox_id="1") as client:
            assert await sync_conversation(pool, client, conversation_id) == {"messages": 2, "events": 0}
            assert await sync_conversation(pool, client, conversation_id) == {"messages": 0, "events": 0}
            cw_id = the_conversation(chatwoot)["id"]

            # A crash after Chatwoot took "três" but before it was recorded: found, not posted again.
            tres = store(db, conversation_id, cliente_id, "medico", "três")
            assert db.execute("SELECT begin_chatwoot_message(%s) AS s", (tres,)).fetchone()["s"] == "pending"
            await client.create_message(cw_id, "três", message_type="incoming", attributes={MARKER: tres})
            assert await sync_conversation(pool, client, conversation_id) == {"messages": 1, "events": 0}
            assert public_texts(chatwoot) == [("incoming", "um"), ("outgoing", "dois"), ("incoming", "três")]

            # Deleted in Chatwoot: the failing run forgets it, the next opens a new conversation.
            chatwoot.delete_conversation(cw_id)
            store(db, conversation_id, cliente_id, "medico", "quatro")
            with pytest.raises(ChatwootError):
                await sync_conversation(pool, client, conversation_id)
            assert await sync_conversation(pool, client, conversation_id) == {"messages": 1, "events": 0}
            assert public_texts(chatwoot) == [("incoming", "quatro")]
            assert len(chatwoot.api_calls()) > 0
    finally:
        await pool.close()
    contacts = {c["contact_id"] for c in chatwoot.conversations()}
    assert len(contacts) == 1  # one Chatwoot contact per doctor


def test_the_sweep_redefers_mirror_work_whose_jobs_ran_out(db, stored_conversation):
    conversation_id, cliente_id = stored_conversation
    store(db, conversation_id, cliente_id, "medico", "um")
    db.execute("DELETE FROM procrastinate_jobs WHERE task_name = 'sync_chatwoot_conversation'")
    assert db.execute("SELECT redefer_humans_work('2 minutes') AS n").fetchone()["n"] == 0  # too recent
    assert db.execute("SELECT redefer_humans_work('0 seconds') AS n").fetchone()["n"] == 1
    assert db.execute("SELECT redefer_humans_work('0 seconds') AS n").fetchone()["n"] == 0  # one waits already
    job = db.execute("SELECT queue_name, args FROM procrastinate_jobs WHERE task_name = 'sync_chatwoot_conversation'")
    assert job.fetchone() == {"queue_name": "humans", "args": {"conversation_id": conversation_id}}


def mirror_jobs(db) -> int:
    return db.execute(
        "SELECT count(*) AS n FROM procrastinate_jobs WHERE task_name = 'sync_chatwoot_conversation'"
    ).fetchone()["n"]


def test_with_the_mirror_off_messages_and_events_are_skipped_without_a_job_until_it_is_on_again(
    db, stored_conversation
):
    conversation_id, cliente_id = stored_conversation
    assert db.execute("SELECT record_chatwoot_mirror(false) AS on").fetchone() == {"on": False}
    off = store(db, conversation_id, cliente_id, "medico", "sem chatwoot")
    db.execute("SELECT note_chatwoot(%s, 'nota') AS id", (conversation_id,))
    assert mirror_jobs(db) == 0
    state = db.execute("SELECT state FROM chatwoot_messages WHERE interacao_id = %s", (off,)).fetchone()
    assert state == {"state": "skipped"}
    events = db.execute("SELECT state FROM chatwoot_events WHERE conversation_id = %s", (conversation_id,))
    assert events.fetchall() == [{"state": "skipped"}]
    # Chatwoot configured later: what is stored from then on is mirrored.
    db.execute("SELECT record_chatwoot_mirror(true)")
    on = store(db, conversation_id, cliente_id, "medico", "com chatwoot")
    assert mirror_jobs(db) == 1
    state = db.execute("SELECT state FROM chatwoot_messages WHERE interacao_id = %s", (on,)).fetchone()
    assert state == {"state": "pending"}


def test_a_worker_records_whether_it_mirrors_when_it_starts(db, settings, start_worker):
    start_worker()
    wait_for(lambda: db.execute("SELECT value FROM app_settings WHERE key = 'chatwoot_mirror'").fetchone())
    assert db.execute("SELECT chatwoot_mirror_on() AS on").fetchone() == {"on": True}  # this module's env has it


def test_slack_pause_is_limited_to_allowed_users_when_a_list_is_set(db, test_env):
    from starlette.testclient import TestClient

    from app.core.config import load_settings
    from app.http.app import create_app

    env = {**test_env, "SLACK_SIGNING_SECRET": SLACK_SECRET, "SLACK_ALLOWED_USERS": "U999,joana"}
    before = newest_status(db)
    with TestClient(create_app(load_settings("api", env))) as client:
        refused = slack_post(client, "pause teste")  # signed, but by marina (U000)
        assert "não está na lista" in refused.json()["text"]
        assert newest_status(db) == before
        body = slash_command_body("pause teste", user_name="joana")
        allowed = client.post("/slack/commands", content=body, headers=sign_request(SLACK_SECRET, body, None))
        assert allowed.status_code == 200
    assert newest_status(db)["status"] == "pausado"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event": "message_created", "id": NaN}',
        b'{"event": "message_created", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["nan", "nested-5000-deep"],
)
def test_chatwoot_json_postgres_cannot_store_is_a_422(api_client, db, raw):
    response = api_client.post("/webhooks/chatwoot", content=raw, headers=sign_webhook(CHATWOOT_SECRET, raw))
    assert response.status_code == 422
    assert response.json()["error"].startswith("body cannot be stored")
