from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from app.devkit.standins.anthropic import AnthropicStandin, recruiter_reply
from app.devkit.standins.evolution import EvolutionStandin

KEY = "test-evolution-key"
PHONE = "5511981677736"
LID = "211484206436558@lid"


@pytest.fixture
def claude() -> Iterator[AnthropicStandin]:
    with AnthropicStandin() as standin:
        yield standin


@pytest.fixture
def evolution() -> Iterator[EvolutionStandin]:
    with EvolutionStandin(api_key=KEY, unknown_lids={LID}) as standin:
        yield standin


def client(standin: AnthropicStandin, max_retries: int = 0) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test", base_url=standin.url, max_retries=max_retries, timeout=5.0)


def ask(standin: AnthropicStandin, text: str, max_retries: int = 0) -> anthropic.types.Message:
    with client(standin, max_retries) as claude:
        return claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=256,
            system=[{"type": "text", "text": "Você é a Julia."}],
            messages=[{"role": "user", "content": text}],
        )


def send_text(standin: EvolutionStandin, number: str, text: str, apikey: str = KEY):
    return httpx.post(
        f"{standin.url}/message/sendText/julia",
        headers={"apikey": apikey},
        json={"number": number, "text": text, "delay": 1200},
        timeout=5,
    )


# ---------------------------------------------------------------- Anthropic


def test_default_reply_is_deterministic_pt_br(claude: AnthropicStandin) -> None:
    first = ask(claude, "Oi, bom dia!")
    second = ask(claude, "Oi, bom dia!")

    assert first.content[0].type == "text"
    assert first.content[0].text.startswith("Oi! Aqui é a Julia")
    assert first.content[0].text == second.content[0].text
    assert first.model == "claude-haiku-4-5"
    assert first.stop_reason == "end_turn"
    assert first.usage.input_tokens > 0
    assert "plantões" in ask(claude, "Vocês têm vaga de plantão?").content[0].text
    assert len(claude.calls()) == 3


def test_default_reply_quotes_doctor_and_reads_block_content() -> None:
    assert "Sou pediatra" in recruiter_reply("Sou pediatra em Campinas")
    with AnthropicStandin() as standin, client(standin) as claude:
        reply = claude.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=64,
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "Moro em Santos"}]},
            ],
        )
    assert '"Moro em Santos"' in reply.content[0].text


def test_queued_reply_then_default_resumes(claude: AnthropicStandin) -> None:
    claude.queue_reply("Resposta roteirizada")

    assert ask(claude, "qualquer coisa").content[0].text == "Resposta roteirizada"
    assert ask(claude, "qualquer coisa").content[0].text != "Resposta roteirizada"


def test_thinking_then_text_keeps_block_order(claude: AnthropicStandin) -> None:
    claude.queue_thinking_then_text("Claro, te mando as vagas.")

    message = ask(claude, "tem vaga?")

    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].signature == "sig"
    assert message.content[1].text == "Claro, te mando as vagas."


def test_tool_use_is_scripted(claude: AnthropicStandin) -> None:
    queued = claude.queue_tool_use("buscar_vagas", {"especialidade": "pediatria"}, "Vou ver.")

    message = ask(claude, "tem vaga de pediatria?")

    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content] == ["text", "tool_use"]
    tool = message.content[1]
    assert tool.id == queued["id"] and tool.id.startswith("toolu_")
    assert tool.name == "buscar_vagas"
    assert tool.input == {"especialidade": "pediatria"}


def test_overloaded_is_retried_by_sdk(claude: AnthropicStandin) -> None:
    claude.queue_error(529)
    claude.queue_reply("Depois da sobrecarga")
    started = time.monotonic()

    message = ask(claude, "oi", max_retries=2)

    assert message.content[0].text == "Depois da sobrecarga"
    assert time.monotonic() - started < 2
    assert len(claude.calls()) == 2


def test_errors_have_anthropic_shape(claude: AnthropicStandin) -> None:
    claude.queue_error(429)
    with pytest.raises(anthropic.RateLimitError) as caught:
        ask(claude, "oi")
    assert caught.value.body["error"]["type"] == "rate_limit_error"

    no_key = httpx.post(f"{claude.url}/v1/messages", json={}, timeout=5)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "authentication_error"


def test_streaming_gives_the_same_blocks(claude: AnthropicStandin) -> None:
    claude.queue_tool_use("buscar_vagas", {"cidade": "Santos"}, "Um instante.")
    with (
        client(claude) as sdk,
        sdk.messages.stream(
            model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "oi"}]
        ) as stream,
    ):
        message = stream.get_final_message()

    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"cidade": "Santos"}


def test_models_list(claude: AnthropicStandin) -> None:
    with client(claude) as sdk:
        ids = [model.id for model in sdk.models.list()]

    assert "claude-haiku-4-5" in ids


# ---------------------------------------------------------------- Evolution


def test_send_text_is_accepted_and_recorded(evolution: EvolutionStandin) -> None:
    response = send_text(evolution, PHONE, "Oi, doutora!")

    assert response.status_code == 201
    body = response.json()
    assert body["key"]["remoteJid"] == f"{PHONE}@s.whatsapp.net"
    assert body["key"]["fromMe"] is True
    assert len(body["key"]["id"]) == 20 and body["key"]["id"] == body["key"]["id"].upper()
    assert body["message"] == {"conversation": "Oi, doutora!"}
    assert evolution.texts_to(PHONE) == ["Oi, doutora!"]
    assert evolution.sent_texts()[0]["id"] == body["key"]["id"]
    assert evolution.requests[-1].headers["apikey"] == KEY
    assert send_text(evolution, PHONE, "de novo").json()["key"]["id"] != body["key"]["id"]


def test_wrong_apikey_is_unauthorized(evolution: EvolutionStandin) -> None:
    response = send_text(evolution, PHONE, "Oi", apikey="wrong")

    assert response.status_code == 401
    assert response.json()["response"] == {"message": "Unauthorized"}
    assert evolution.sent_texts() == []


def test_injected_failure_then_ok(evolution: EvolutionStandin) -> None:
    evolution.fail_next(500)

    assert send_text(evolution, PHONE, "primeira").status_code == 500
    assert send_text(evolution, PHONE, "segunda").status_code == 201
    assert evolution.texts_to(PHONE) == ["segunda"]


def test_unknown_lid_is_refused(evolution: EvolutionStandin) -> None:
    response = send_text(evolution, LID, "Oi")

    assert response.status_code == 400
    assert response.json()["response"]["message"] == [{"jid": LID, "exists": False, "number": LID}]


def test_missing_text_presence_and_welcome(evolution: EvolutionStandin) -> None:
    missing = httpx.post(
        f"{evolution.url}/message/sendText/julia",
        headers={"apikey": KEY},
        json={"number": PHONE},
        timeout=5,
    )
    presence = httpx.post(
        f"{evolution.url}/chat/sendPresence/julia",
        headers={"apikey": KEY},
        json={"number": PHONE, "presence": "composing", "delay": 1000},
        timeout=5,
    )
    welcome = httpx.get(f"{evolution.url}/", timeout=5)

    assert missing.status_code == 400
    assert presence.status_code == 201 and presence.json() == {"presence": "composing"}
    assert welcome.json()["version"] == "2.3.7"


def test_delay_and_reset(evolution: EvolutionStandin) -> None:
    evolution.set_delay(0.2)
    started = time.monotonic()
    assert send_text(evolution, PHONE, "devagar").status_code == 201
    assert time.monotonic() - started >= 0.2

    evolution.reset()

    assert evolution.sent_texts() == [] and evolution.requests == []


# ---------------------------------------------------------------- Evolution: onWhatsApp


def whatsapp_numbers(standin: EvolutionStandin, body: object, apikey: str = KEY) -> httpx.Response:
    return httpx.post(f"{standin.url}/chat/whatsappNumbers/julia", headers={"apikey": apikey}, json=body, timeout=5)


def test_whatsapp_numbers_answers_like_evolution_with_the_form_that_exists(evolution: EvolutionStandin) -> None:
    evolution.set_accounts("553187654321", "5511981677736")
    response = whatsapp_numbers(evolution, {"numbers": ["5531987654321", "551181677736", "551133334444"]})

    assert response.status_code == 200
    assert response.json() == [
        {"jid": "553187654321@s.whatsapp.net", "exists": True, "number": "5531987654321"},
        {"jid": "5511981677736@s.whatsapp.net", "exists": True, "number": "551181677736"},
        {"jid": "551133334444@s.whatsapp.net", "exists": False, "number": "551133334444"},
    ]
    assert evolution.number_checks() == [["5531987654321", "551181677736", "551133334444"]]
    # sendText reaches only the form that exists.
    assert send_text(evolution, "5531987654321", "Oi").status_code == 400
    assert send_text(evolution, "553187654321", "Oi").status_code == 201


def test_whatsapp_numbers_by_default_every_number_exists_as_asked(evolution: EvolutionStandin) -> None:
    response = whatsapp_numbers(evolution, {"numbers": ["14155552671"]})
    assert response.json() == [{"jid": "14155552671@s.whatsapp.net", "exists": True, "number": "14155552671"}]


def test_whatsapp_numbers_checks_apikey_and_body(evolution: EvolutionStandin) -> None:
    assert whatsapp_numbers(evolution, {"numbers": ["5511981677736"]}, apikey="wrong").status_code == 401
    bad = whatsapp_numbers(evolution, {"numbers": "5511981677736"})
    assert bad.status_code == 400
    assert bad.json()["response"]["message"] == ['"numbers" must be an array of numeric strings']
