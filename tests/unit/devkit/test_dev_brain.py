"""The rule-based brain of `julia dev`: what a newcomer sees in the local chat."""

from __future__ import annotations

import json

from app.conversation.prompt import build_system
from app.devkit.standins.dev_brain import dev_reply

TOOLS = [{"name": "buscar_vagas"}, {"name": "transferir_para_humano"}, {"name": "registrar_opt_out"}]


def body(*messages: dict, cliente: dict | None = None) -> dict:
    system = build_system(empresa="Revoluna", cliente=cliente or {"nome": "Ana"})
    return {"system": system, "tools": TOOLS, "messages": list(messages)}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def tool_turn(name: str, tool_input: dict, result: dict) -> list[dict]:
    """The assistant's tool_use and the user turn carrying its result, as the agent sends them."""
    use = {"type": "tool_use", "id": f"toolu_{name}", "name": name, "input": tool_input}
    answer = {"type": "tool_result", "tool_use_id": use["id"], "content": json.dumps(result)}
    return [{"role": "assistant", "content": [use]}, {"role": "user", "content": [answer]}]


def text_of(reply: tuple[list[dict], str]) -> str:
    blocks, stop = reply
    assert stop == "end_turn"
    return blocks[0]["text"]


def test_a_request_for_a_person_is_answered_as_a_handoff():
    first = dev_reply(body(user("quero falar com um atendente")))
    assert first[0][0]["name"] == "transferir_para_humano"
    turn = tool_turn("transferir_para_humano", first[0][0]["input"], {"resultado": "transferida"})
    said = text_of(dev_reply(body(user("quero falar com um atendente"), *turn)))
    assert "equipe" in said and "conferi" not in said


def test_an_opt_out_is_acknowledged_and_never_followed_by_a_pitch():
    turn = tool_turn("registrar_opt_out", {"motivo": "x"}, {"resultado": "registrado"})
    assert "Não vou mais te mandar mensagens" in text_of(dev_reply(body(user("pare"), *turn)))
    later = dev_reply(body(user("oi, tudo bem?"), cliente={"nome": "Ana", "opt_out": True}))
    assert later is not None and "plant" not in text_of(later).lower()
    # Without the opt-out the greeting goes to the canned recruiter answer (which offers shifts).
    assert dev_reply(body(user("oi, tudo bem?"))) is None


def test_the_specialty_she_just_stated_is_remembered():
    reply = dev_reply(
        body(
            user("sou pediatra"),
            {"role": "assistant", "content": "Que bom! Posso te ajudar com algo?"},
            user("tem plantão essa semana?"),
        )
    )
    assert reply[0][0] == {**reply[0][0], "name": "buscar_vagas", "input": {"especialidade": "Pediatria"}}


def test_the_profile_specialty_is_used_when_she_names_none():
    reply = dev_reply(body(user("tem plantão?"), cliente={"nome": "Ana", "especialidade": "Cardiologia"}))
    assert reply[0][0]["input"] == {"especialidade": "Cardiologia"}


def test_the_count_matches_the_list():
    vagas = [
        {"hospital": f"H{i}", "cidade": "BH", "data": "2026-12-0{i}", "periodo": "noite", "valor": 1500, "vaga_id": i}
        for i in range(1, 6)
    ]
    turn = tool_turn("buscar_vagas", {"especialidade": "GO"}, {"vagas": vagas, "especialidade": "GO"})
    said = text_of(dev_reply(body(user("tem vaga de GO?"), *turn)))
    assert said.startswith("Tenho 5 plantões de GO; estes são 4 deles:")
    assert said.count("• ") == 4
    one = tool_turn("buscar_vagas", {}, {"vagas": vagas[:1], "especialidade": "GO"})
    assert text_of(dev_reply(body(user("tem vaga?"), *one))).startswith("Tenho 1 plantão de GO:")
