"""Julia's tool loop end to end: webhook -> worker -> Claude stand-in that
asks for tools -> SQL tool effects -> reply. Asserts on effects, not mocks."""

from __future__ import annotations

import pytest

from tests import payloads
from tests.conftest import WEBHOOK_SECRET, settled, wait_for
from tests.factories import Domain

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}


def post(api_client, **kwargs):
    response = api_client.post("/webhooks/evolution", json=payloads.upsert(**kwargs), headers=AUTH)
    assert response.status_code == 200, response.text


def sent_and_settled(db, evolution, n=1):
    wait_for(lambda: len(evolution.sent_texts()) >= n and settled(db), timeout=30)
    return [m["text"] for m in evolution.sent_texts()]


def tool_results(call):
    """The tool_result blocks Claude received in one call."""
    last = call["messages"][-1]
    return [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


@pytest.fixture
def shifts(db):
    d = Domain(db)
    go = d.especialidade("Ginecologia e Obstetrícia", "GO")
    hospital = d.hospital("Hospital Santa Aurora", regiao="Zona Sul SP")
    return {"vaga": d.vaga(hospital_id=hospital, especialidade_id=go, valor=1800)}


def test_search_then_reserve_through_tools(api_client, db, evolution, claude, start_worker, shifts):
    claude.queue_tool_use("buscar_vagas", {"especialidade": "GO"})
    claude.queue_reply("Tenho um plantão noturno no Hospital Santa Aurora por R$ 1.800. Quer reservar?")
    claude.queue_tool_use("reservar_vaga", {"vaga_id": shifts["vaga"]})
    claude.queue_reply("Prontinho, reservei para você!")
    start_worker()
    post(api_client, text="Tem plantão de GO?")
    assert sent_and_settled(db, evolution) == [
        "Tenho um plantão noturno no Hospital Santa Aurora por R$ 1.800. Quer reservar?"
    ]
    # Claude got the real search result, with the vaga id it can reserve.
    (result,) = tool_results(claude.calls()[1])
    assert f'"vaga_id": {shifts["vaga"]}' in result["content"]
    assert result["is_error"] is False

    post(api_client, text="Quero sim")
    assert sent_and_settled(db, evolution, 2)[-1] == "Prontinho, reservei para você!"
    vaga = db.execute("SELECT status, reservada_por FROM vagas WHERE id = %s", (shifts["vaga"],)).fetchone()
    assert vaga["status"] == "reservada"
    assert vaga["reservada_por"] == db.execute("SELECT id FROM clientes").fetchone()["id"]


def test_tool_errors_go_back_to_the_model_never_to_the_doctor(api_client, db, evolution, claude, start_worker):
    claude.queue_tool_use("reservar_vaga", {})
    claude.queue_reply("Qual plantão você quer reservar?")
    start_worker()
    post(api_client, text="Quero reservar")
    assert sent_and_settled(db, evolution) == ["Qual plantão você quer reservar?"]
    (result,) = tool_results(claude.calls()[1])
    assert result["is_error"] is True
    assert "vaga_id is required" in result["content"]
    # Both model calls are recorded, the answering one with the reply (enqueue_reply_recorded).
    calls = db.execute("SELECT outcome, stop_reason, reply_to_id, job_id FROM llm_calls ORDER BY id").fetchall()
    assert [(c["outcome"], c["stop_reason"]) for c in calls] == [("ok", "tool_use"), ("ok", "end_turn")]
    assert len({(c["reply_to_id"], c["job_id"]) for c in calls}) == 1
    assert calls[0]["job_id"] is not None and calls[0]["reply_to_id"] is not None


def test_an_empty_answer_is_recorded_and_the_reply_retried(api_client, db, evolution, claude, start_worker):
    claude.queue_reply("")
    claude.queue_reply("Oi! Temos sim.")
    start_worker()
    post(api_client, text="Oi")
    assert sent_and_settled(db, evolution) == ["Oi! Temos sim."]
    calls = db.execute("SELECT outcome, job_id FROM llm_calls ORDER BY id").fetchall()
    assert [c["outcome"] for c in calls] == ["ok", "ok"]
    assert calls[0]["job_id"] == calls[1]["job_id"]  # the same job, its second attempt


def test_tool_loop_is_bounded(api_client, db, evolution, claude, start_worker):
    for n in range(6):
        claude.queue_tool_use("salvar_preferencias", {f"campo_{n}": n}, text=f"volta {n}")
    start_worker()
    post(api_client, text="Oi")
    sent = sent_and_settled(db, evolution)
    calls = claude.calls()
    assert len(calls) == 5  # 4 tool rounds + 1 final answer
    assert calls[-1]["tool_choice"] == {"type": "none"}
    assert "tool_choice" not in calls[0]
    assert sent == ["volta 4"]
    prefs = db.execute("SELECT preferencias FROM clientes").fetchone()["preferencias"]
    assert sorted(prefs) == ["campo_0", "campo_1", "campo_2", "campo_3"]  # the 5th was never run


def test_handoff_stops_julia_until_handed_back(api_client, db, evolution, claude, start_worker):
    claude.queue_tool_use("transferir_para_humano", {"motivo": "quer falar com uma pessoa"})
    claude.queue_reply("Claro! Vou chamar alguém da equipe para falar com você.")
    start_worker()
    post(api_client, text="Quero falar com uma pessoa")
    assert sent_and_settled(db, evolution) == ["Claro! Vou chamar alguém da equipe para falar com você."]
    post(api_client, text="Alô?")
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM interacoes WHERE autor = 'medico'").fetchone()["n"] == 2)
    wait_for(lambda: settled(db))
    assert len(evolution.sent_texts()) == 1
    assert len(claude.calls()) == 2
    metrics = db.execute("SELECT houve_handoff, motivo_handoff FROM metricas_conversa").fetchone()
    assert metrics == {"houve_handoff": True, "motivo_handoff": "quer falar com uma pessoa"}


def test_opt_out_is_confirmed_once_and_recorded(api_client, db, evolution, claude, start_worker):
    claude.queue_tool_use("registrar_opt_out", {"motivo": "pediu para parar"})
    claude.queue_reply("Tudo bem, não vou mais te mandar mensagens. Obrigada!")
    start_worker()
    post(api_client, text="Por favor, pare de me mandar mensagens")
    assert sent_and_settled(db, evolution) == ["Tudo bem, não vou mais te mandar mensagens. Obrigada!"]
    row = db.execute("SELECT opt_out, opt_out_motivo FROM clientes").fetchone()
    assert row == {"opt_out": True, "opt_out_motivo": "pediu para parar"}


def test_human_typing_on_the_company_phone_pauses_julia_in_that_conversation(
    api_client, db, evolution, claude, start_worker
):
    start_worker()
    post(api_client, text="Oi")
    sent_and_settled(db, evolution)
    post(api_client, text="Oi doutor, aqui é o Marcos da equipe!", from_me=True)
    wait_for(lambda: db.execute("SELECT julia_pausada_ate FROM conversations").fetchone()["julia_pausada_ate"])
    post(api_client, text="Oi Marcos, tudo bem?")
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM interacoes").fetchone()["n"] == 4)
    wait_for(lambda: settled(db))
    assert len(evolution.sent_texts()) == 1
    authors = [r["autor"] for r in db.execute("SELECT autor FROM interacoes ORDER BY id").fetchall()]
    assert authors == ["medico", "julia", "humano", "medico"]
    metrics = db.execute("SELECT * FROM metricas_conversa").fetchone()
    assert (metrics["total_mensagens_medico"], metrics["total_mensagens_julia"], metrics["total_mensagens_humano"]) == (
        2,
        1,
        1,
    )
    assert metrics["total_mensagens"] == 4
    assert metrics["primeira_resposta_segundos"] is not None
    assert metrics["duracao_total_minutos"] == 0


def test_julias_own_echo_is_not_a_human_takeover(api_client, db, evolution, start_worker):
    start_worker()
    post(api_client, text="Oi")
    sent_and_settled(db, evolution)
    echo = evolution.sent_texts()[0]
    post(api_client, text=echo["text"], from_me=True, message_id=echo["id"])
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM pgmq.q_inbound").fetchone()["n"] == 0)
    assert db.execute("SELECT julia_pausada_ate FROM conversations").fetchone()["julia_pausada_ate"] is None
    assert db.execute("SELECT count(*) AS n FROM interacoes").fetchone()["n"] == 2


def test_negotiation_goes_to_the_complex_model_and_thinking_is_not_sent(
    api_client, db, evolution, claude, start_worker
):
    claude.queue_thinking_then_text("Entendo! Vou verificar com a equipe se dá para melhorar o valor.")
    start_worker()
    post(api_client, text="Esse valor está muito baixo, dá para negociar um aumento?")
    assert sent_and_settled(db, evolution) == ["Entendo! Vou verificar com a equipe se dá para melhorar o valor."]
    assert claude.calls()[0]["model"] == "claude-sonnet-4-6"


def test_retrieved_knowledge_reaches_the_model(api_client, db, evolution, claude, start_worker, database_url):
    import subprocess
    import sys

    db.execute(
        "INSERT INTO conhecimento_julia (fonte, titulo, conteudo) VALUES "
        "('manual', 'Adiantamento', 'O adiantamento do plantão é pago em até 2 dias úteis via PIX.'), "
        "('manual', 'Estacionamento', 'O Hospital Santa Aurora tem estacionamento conveniado.')"
    )
    reindex = subprocess.run(
        [sys.executable, "-m", "app.ops.cli", "kb", "reindex"],
        env={"APP_ENV": "test", "DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert reindex.returncode == 0, reindex.stderr
    start_worker()
    post(api_client, text="Como funciona o adiantamento?")
    sent_and_settled(db, evolution)
    context = claude.calls()[0]["system"][1]["text"]
    assert "O adiantamento do plantão é pago em até 2 dias úteis via PIX." in context


def test_prompt_rules_and_profile_reach_the_model(api_client, db, evolution, claude, start_worker):
    db.execute(
        "INSERT INTO prompts (nome, versao, conteudo, ativo) VALUES "
        "('julia_system', 1, 'Você é a Julia da {empresa}. Seja breve.', true)"
    )
    db.execute("INSERT INTO diretrizes (titulo, texto, prioridade) VALUES ('valores', 'Nunca prometa valores.', 1)")
    db.execute("INSERT INTO diretrizes (titulo, texto, ativa) VALUES ('velha', 'Regra desativada.', false)")
    start_worker()
    post(api_client, text="Oi")
    sent_and_settled(db, evolution)
    system = claude.calls()[0]["system"]
    assert system[0]["text"].startswith("Você é a Julia da Revoluna. Seja breve.")
    assert "Nunca prometa valores." in system[0]["text"]
    assert "Regra desativada." not in system[0]["text"]
    assert system[0]["cache_control"] == {"type": "ephemeral"}
    assert "Dr. Rafael" in system[1]["text"]
