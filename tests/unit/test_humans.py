"""Humans in the loop without a database: webhook signatures and parsing,
Slack command parsing and signatures, handoff tokens, notification texts,
and the Chatwoot/Slack clients against their stand-ins."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import jwt
import pytest

from app.core.config import load_settings
from app.core.errors import BadSignature, InvalidEvent
from app.core.tokens import (
    InvalidHandoffToken,
    handoff_link,
    mint_handoff_token,
    verify_handoff_token,
    verify_ops_token,
)
from app.devkit.standins.chatwoot import (
    ChatwootStandin,
    attachment_json,
    message_created_event,
    sign_webhook,
    status_changed_event,
)
from app.devkit.standins.slack import SlackStandin, sign_request, slash_command_body
from app.events.chatwoot import (
    AgentMessage,
    Attachment,
    Ignored,
    Resolved,
    parse_event,
)
from app.events.chatwoot import verify_signature as verify_chatwoot
from app.events.slack import Command, parse_command, signature_valid
from app.integrations.chatwoot import MARKER, ChatwootClient, ChatwootError
from app.integrations.slack import SlackClient, SlackError, slack_configured
from app.ops.cli import main
from app.worker.notifications import format_notification, manager_alert_text

SECRET = "unit-secret-with-enough-bytes-for-hs256"


# ---------------------------------------------------------------------- Chatwoot webhook


def test_chatwoot_signature_accepts_only_the_right_fresh_hmac():
    body = b'{"event": "message_created"}'
    verify_chatwoot(SECRET, sign_webhook(SECRET, body), body)
    now = int(time.time())
    cases = {
        "missing": {},
        "wrong secret": sign_webhook("other", body),
        "stale": sign_webhook(SECRET, body, timestamp=now - 301),
        "future": sign_webhook(SECRET, body, timestamp=now + 301),
        "not a time": {**sign_webhook(SECRET, body), "x-chatwoot-timestamp": "yesterday"},
    }
    for name, headers in cases.items():
        with pytest.raises(BadSignature):
            verify_chatwoot(SECRET, headers, body)
            pytest.fail(name)
    with pytest.raises(BadSignature, match="does not match"):
        verify_chatwoot(SECRET, sign_webhook(SECRET, body), body + b" ")
    # The documented construction: sha256= + HMAC-SHA256("{timestamp}.{body}").
    digest = hmac.new(SECRET.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    verify_chatwoot(SECRET, {"x-chatwoot-timestamp": str(now), "x-chatwoot-signature": f"sha256={digest}"}, body)


def test_agent_messages_are_recognised_and_everything_else_ignored():
    agent = message_created_event(conversation_id=5, message_id=10, content="  Oi doutor  ")
    assert parse_event(agent, account_id="1", inbox_id="1") == AgentMessage(
        conversation_id=5, message_id=10, content="Oi doutor"
    )
    assert parse_event({**agent, "message_type": 1}) == AgentMessage(
        conversation_id=5, message_id=10, content="Oi doutor"
    )
    ignored = {
        "private note": {"private": True},
        "message_type 'incoming'": {"message_type": "incoming"},
        "julia's own mirrored message": {"content_attributes": {MARKER: 3}},
        "sender 'agent_bot' is not an agent": {"sender": {"type": "agent_bot"}},
        "no text": {"content": " "},
        "another inbox": {"inbox": {"id": 9}},
        "another account": {"account": {"id": 2}},
    }
    for reason, change in ignored.items():
        assert parse_event({**agent, **change}, account_id="1", inbox_id="1") == Ignored(
            event="message_created", reason=reason
        )


def test_agent_text_is_converted_from_markdown_and_attachments_are_read():
    body = message_created_event(
        conversation_id=5,
        message_id=11,
        content="**Plantão** confirmado",
        attachments=[
            attachment_json(
                attachment_id=1, message_id=11, data_url="https://cw.example/blobs/1/escala%20s%C3%A1b.png"
            ),
            attachment_json(attachment_id=2, message_id=11, data_url="https://cw.example/b/2/a.pdf", file_type="file"),
            attachment_json(
                attachment_id=3,
                message_id=11,
                data_url="https://cw.example/b/3/v.mp4",
                file_type="video",
                file_size=17 * 1024 * 1024,
            ),
            attachment_json(attachment_id=4, message_id=11, data_url="", file_type="location"),
        ],
    )
    event = parse_event(body, account_id="1", inbox_id="1")
    assert isinstance(event, AgentMessage)
    assert event.content == "*Plantão* confirmado"
    assert event.attachments == (
        Attachment(
            mediatype="image",
            url="https://cw.example/blobs/1/escala%20s%C3%A1b.png",
            mimetype="image/png",
            file_name="escala sáb.png",
        ),
        Attachment(
            mediatype="document", url="https://cw.example/b/2/a.pdf", mimetype="application/pdf", file_name="a.pdf"
        ),
    )
    assert event.refused == (
        "v.mp4: 17 MB, o WhatsApp aceita até 16 MB para video",
        "anexo 4: tipo 'location' não vai para o WhatsApp",
    )
    # An image alone, without any text, is an agent message too.
    alone = parse_event({**body, "content": None, "attachments": body["attachments"][:1]})
    assert isinstance(alone, AgentMessage)
    assert (alone.content, len(alone.attachments)) == ("", 1)


def test_status_changes_and_unknown_events():
    assert parse_event(status_changed_event(conversation_id=8, status="resolved")) == Resolved(conversation_id=8)
    assert isinstance(parse_event(status_changed_event(conversation_id=8, status="open")), Ignored)
    assert parse_event({"event": "contact_created"}) == Ignored(event="contact_created", reason="not handled")
    for bad in ([], {"no": "event"}, {"event": "message_created", "id": 1}, {"event": "conversation_status_changed"}):
        with pytest.raises(InvalidEvent):
            parse_event(bad)


# ---------------------------------------------------------------------- Slack commands


def test_slash_command_text_is_a_verb_and_a_reason():
    assert parse_command("Pause  Evolution instável ") == Command(name="pause", motivo="Evolution instável")
    assert parse_command("status") == Command(name="status", motivo="")
    assert parse_command("") == Command(name="", motivo="")


def test_slack_signature_window_and_tampering():
    body = slash_command_body("pause x")
    headers = sign_request(SECRET, body)
    ts, sig = headers["x-slack-request-timestamp"], headers["x-slack-signature"]
    assert signature_valid(SECRET, body, ts, sig)
    assert not signature_valid(SECRET, body + b"&x=1", ts, sig)
    assert not signature_valid("other", body, ts, sig)
    old = sign_request(SECRET, body, timestamp=int(time.time()) - 301)
    assert not signature_valid(SECRET, body, old["x-slack-request-timestamp"], old["x-slack-signature"])
    assert not signature_valid(SECRET, body, "soon", sig)
    assert not signature_valid(SECRET, body, None, sig)
    assert not signature_valid(SECRET, body, ts, None)
    assert not signature_valid(SECRET, b"\xff\xfe", ts, sig)


# ---------------------------------------------------------------------- handoff links


def test_handoff_tokens_name_a_conversation_and_expire():
    token = mint_handoff_token(SECRET, 42, minutes=5)
    assert verify_handoff_token(token, SECRET) == 42
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="julia-handoff")
    assert claims["exp"] - claims["iat"] == 300
    with pytest.raises(InvalidHandoffToken, match="expired"):
        verify_handoff_token(mint_handoff_token(SECRET, 42, minutes=-1), SECRET)
    other_aud = jwt.encode({"sub": "42", "aud": "julia-ops", "exp": time.time() + 60}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidHandoffToken, match="audience"):
        verify_handoff_token(other_aud, SECRET)
    no_exp = jwt.encode({"sub": "42", "aud": "julia-handoff"}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidHandoffToken):
        verify_handoff_token(no_exp, SECRET)
    with pytest.raises(InvalidHandoffToken):
        verify_handoff_token(token, "another-secret-with-enough-bytes-for-hs256")
    assert handoff_link("https://x.example/h?src=julia", "T") == "https://x.example/h?src=julia&token=T"
    assert handoff_link("https://x.example/h", "a.b") == "https://x.example/h?token=a.b"


# ---------------------------------------------------------------------- notification texts


def test_notification_texts():
    handoff = format_notification(
        "handoff",
        {"nome": "Dr. Rafael", "telefone": "5511981677736", "motivo": "reclamação"},
        chatwoot_link="https://cw/app/accounts/1/conversations/7",
        external_link="https://ext/?token=T",
    )
    assert "Dr. Rafael (5511981677736)" in handoff
    assert "Motivo: reclamação" in handoff
    assert "Chatwoot: https://cw/app/accounts/1/conversations/7" in handoff
    assert "Sistema externo: https://ext/?token=T" in handoff
    assert "pausada* (via slack): deploy" in format_notification("pause", {"via": "slack", "motivo": "deploy"})
    assert "Campanha *GO Sul* concluída: 10 enviadas" in format_notification(
        "campaign_finished", {"campanha": "GO Sul", "enviadas": 10, "respondidas": 2, "falhas": 0}
    )
    assert "Resumo de 2026-11-29" in format_notification("daily_summary", {"dia": "2026-11-29", "handoffs": 1})
    assert format_notification("novidade", {"a": 1}) == "*novidade*: a: 1"
    assert "guarda de ambiente" in manager_alert_text("guard_failure", {}, "Julia")


def test_chatwoot_webhook_secret_is_a_secret():
    settings = load_settings("dev", {"CHATWOOT_WEBHOOK_SECRET": "s3cret", "SLACK_API_URL": "http://127.0.0.1:1/api/"})
    assert settings.describe()["chatwoot_webhook_secret"] == "<set>"
    assert "s3cret" not in repr(settings)
    assert settings.slack_api_url == "http://127.0.0.1:1/api"


# ---------------------------------------------------------------------- clients against stand-ins


async def test_slack_client_posts_with_the_bot_token_or_the_webhook():
    with SlackStandin(bot_token="xoxb-unit") as server:
        async with SlackClient(bot_token="xoxb-unit", channel="#julia", api_url=server.api_url) as bot:
            assert await bot.post("via bot") is True
        async with SlackClient(webhook_url=server.webhook_url) as hook:
            assert await hook.post("via webhook") is True
        assert server.posts() == [
            {"via": "bot", "channel": "#julia", "text": "via bot"},
            {"via": "webhook", "channel": None, "text": "via webhook"},
        ]
        async with SlackClient(bot_token="xoxb-wrong", channel="#julia", api_url=server.api_url) as bad:
            with pytest.raises(SlackError, match="invalid_auth") as refused:
                await bad.post("x")
        assert refused.value.transient is False
        server.fail_next(500)
        async with SlackClient(webhook_url=server.webhook_url) as hook:
            with pytest.raises(SlackError) as failed:
                await hook.post("x")
        assert failed.value.transient is True
    async with SlackClient() as nothing:
        assert await nothing.post("nowhere") is False
    assert not slack_configured(load_settings("dev", {"SLACK_BOT_TOKEN": "xoxb"}))  # no channel
    assert slack_configured(load_settings("dev", {"SLACK_WEBHOOK_URL": "https://hooks"}))


async def test_chatwoot_client_finds_or_creates_the_contact_and_posts():
    with ChatwootStandin(api_key="k", account_id="3") as server:
        async with ChatwootClient(base_url=server.url, api_key="k", account_id="3", inbox_id="1") as client:
            first = await client.find_or_create_contact(phone="5511981677736", identifier=None, name="Dr. R")
            again = await client.find_or_create_contact(phone="5511981677736", identifier=None, name="Dr. R")
            assert first == again
            assert first.source_id
            conversation = await client.create_conversation(contact_id=first.id, source_id=first.source_id)
            posted = await client.create_message(conversation, "oi", message_type="incoming", attributes={MARKER: 9})
            note = await client.create_message(conversation, "nota", private=True)
            await client.toggle_status(conversation, "open")
            assert await client.find_marked_message(conversation, 9) == posted
            assert await client.find_marked_message(conversation, 10) is None
            server.fail_next(503)
            with pytest.raises(ChatwootError) as failed:
                await client.toggle_status(conversation, "open")
            assert failed.value.transient is True
            with pytest.raises(ChatwootError) as missing:
                await client.create_message(999, "x")
            assert (missing.value.status, missing.value.transient) == (404, False)
        async with ChatwootClient(base_url=server.url, api_key="wrong", account_id="3", inbox_id="1") as client:
            with pytest.raises(ChatwootError) as unauthorised:
                await client.toggle_status(conversation, "open")
            assert unauthorised.value.status == 401
        (stored,) = server.conversations()
        assert [(m["id"], m["private"]) for m in server.messages(stored["id"])] == [(posted, False), (note, True)]
        assert stored["status_history"] == ["open"]
        assert all(r.headers.get("api_access_token") in ("k", "wrong") for r in server.api_calls())


# ---------------------------------------------------------------------- julia token


def test_julia_token_prints_a_token_the_ops_api_accepts(monkeypatch, capsys):
    monkeypatch.setenv("JWT_SECRET_KEY", SECRET)
    main(["token", "--subject", "marina", "--minutes", "5"])
    token = capsys.readouterr().out.strip()
    claims = verify_ops_token({"authorization": f"Bearer {token}"}, SECRET)
    assert claims["sub"] == "marina"
    assert claims["exp"] - claims["iat"] == 300
    monkeypatch.delenv("JWT_SECRET_KEY")
    with pytest.raises(SystemExit) as exited:
        main(["token", "--subject", "marina"])
    assert exited.value.code == 1
    assert "JWT_SECRET_KEY" in capsys.readouterr().err


def test_webhook_builders_round_trip():
    body = message_created_event(conversation_id=1, message_id=2, content="x")
    assert json.loads(json.dumps(body))["conversation"]["id"] == 1
