"""A tiny rule-based "model" for `julia dev` without an Anthropic key.

It uses Julia's real tools so the local chat shows the whole path: asked
about shifts, it calls `buscar_vagas` (with a specialty it recognises), and
turns the result into a pt-BR list; asked to reserve "a vaga 12", it calls
`reservar_vaga`; asked to stop, `registrar_opt_out`; asked for a person,
`transferir_para_humano`. Deterministic, no network. Not used by tests.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from app.devkit.standins.anthropic import content_text, recruiter_reply

_SPECIALTIES = {
    "go": "GO",
    "gineco": "GO",
    "obstetricia": "GO",
    "ginecologia": "GO",
    "pediatria": "Pediatria",
    "pediatra": "Pediatria",
    "clinica": "Clínica Médica",
    "clinico": "Clínica Médica",
    "uti": "UTI",
    "ortopedia": "Ortopedia",
    "ortopedista": "Ortopedia",
    "anestesia": "Anestesiologia",
    "anestesista": "Anestesiologia",
    "cardiologia": "Cardiologia",
    "cardiologista": "Cardiologia",
    "emergencia": "Emergência",
    "ps": "Emergência",
    "cirurgia": "Cirurgia Geral",
    "psiquiatria": "Psiquiatria",
}
_JOBS = re.compile(r"\b(vagas?|plantao|plantoes|escalas?|turnos?)\b")
_RESERVE = re.compile(r"\b(reserv\w*|quero|fico com|pode ser)\b.*?(?:#|vaga\s*)(\d+)")
_HUMAN = re.compile(r"\b(atendente|humano|pessoa|alguem da equipe|falar com alguem|reclama\w*)\b")
_STOP = re.compile(r"\b(pare|parar|descadastr\w*|nao quero mais|nao me mande)\b")


def _plain(text: str) -> str:
    return unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()


def _tool(name: str, tool_input: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    block = {"type": "tool_use", "id": f"toolu_dev_{name}", "name": name, "input": tool_input}
    return [block], "tool_use"


def _text(text: str) -> tuple[list[dict[str, Any]], str]:
    return [{"type": "text", "text": text}], "end_turn"


SHOWN_VAGAS = 4
# What Julia says once a tool did its job (the tool's own result decides for buscar/reservar).
_AFTER_TOOL = {
    "transferir_para_humano": "Combinado! Já pedi para alguém da nossa equipe falar com você por aqui. É rapidinho.",
    "registrar_opt_out": (
        "Tudo bem, sem problemas! Não vou mais te mandar mensagens. Se mudar de ideia, é só me chamar por aqui."
    ),
}
# build_system says so when the doctor asked not to receive offers.
OPTED_OUT_MARKER = "pediu para não receber ofertas"


def _format_vagas(result: dict[str, Any]) -> str:
    vagas = result.get("vagas") or []
    if result.get("erro"):
        return f"Hmm, {result['erro'].lower()} Qual é a sua especialidade?"
    if not vagas:
        return "No momento não tenho plantões abertos com esse perfil. Posso te avisar quando surgir algum?"
    especialidade = result.get("especialidade") or "sua especialidade"
    shown = vagas[:SHOWN_VAGAS]
    head = f"Tenho {_plantoes(len(vagas))} de {especialidade}"
    lines = [head + (":" if len(shown) == len(vagas) else f"; estes são {len(shown)} deles:")]
    for v in shown:
        day = "/".join(reversed(str(v["data"]).split("-")[1:]))
        valor = f"R$ {float(v['valor']):,.0f}".replace(",", ".")
        lines.append(f"• {v['hospital']} ({v['cidade']}) — {day}, {v['periodo']}, {valor} (vaga #{v['vaga_id']})")
    lines.append("\nQuer que eu reserve algum? É só dizer o número da vaga.")
    return "\n".join(lines)


def _plantoes(n: int) -> str:
    return f"{n} plantão" if n == 1 else f"{n} plantões"


def _tool_results(content: Any) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def _tool_name(messages: list[dict[str, Any]], tool_use_id: str | None) -> str | None:
    """The name of the tool_use a tool_result answers (in the assistant turn before it)."""
    for message in reversed(messages[:-1]):
        blocks = message.get("content") if message.get("role") == "assistant" else None
        for block in blocks if isinstance(blocks, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("id") == tool_use_id:
                return block.get("name")
    return None


def _after_tool(messages: list[dict[str, Any]], result_block: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """What Julia says once the tool answered."""
    name = _tool_name(messages, result_block.get("tool_use_id"))
    if name in _AFTER_TOOL:
        return _text(_AFTER_TOOL[name])
    try:
        result = json.loads(content_text(result_block.get("content")) or "{}")
    except ValueError:
        return _text("Tive um probleminha para consultar agora. Pode repetir, por favor?")
    if isinstance(result, dict) and "vagas" in result:
        return _text(_format_vagas(result))
    if isinstance(result, dict) and result.get("resultado") == "reservada":
        return _text("Prontinho, reservei essa vaga para você! A equipe vai te mandar os detalhes.")
    if isinstance(result, dict) and result.get("resultado"):
        return _text("Essa vaga não está mais disponível. Quer que eu procure outras?")
    return _text(recruiter_reply("", after_tool=True))


def _specialty(body: dict[str, Any]) -> str | None:
    """The specialty the doctor named most recently, else the one in her profile."""
    for message in reversed(body["messages"]):
        if message.get("role") != "user" or _tool_results(message.get("content")):
            continue
        words = set(re.findall(r"[a-z]+", _plain(content_text(message.get("content")))))
        if found := next((name for word, name in _SPECIALTIES.items() if word in words), None):
            return found
    profile = re.search(r"especialidade: ([^;.\n]+)", content_text(body.get("system")))
    return profile.group(1).strip() if profile else None


def dev_reply(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str] | None:
    """Blocks and stop reason for a request that offers tools, or None for the canned answer."""
    if not body.get("tools") or not body.get("messages"):
        return None
    messages = body["messages"]
    if results := _tool_results(messages[-1].get("content")):
        return _after_tool(messages, results[0])
    text = _plain(content_text(messages[-1].get("content")))
    if _STOP.search(text):
        return _tool("registrar_opt_out", {"motivo": "pediu para parar (chat local)"})
    if _HUMAN.search(text):
        return _tool("transferir_para_humano", {"motivo": "pediu para falar com uma pessoa"})
    if match := _RESERVE.search(text):
        return _tool("reservar_vaga", {"vaga_id": int(match.group(2))})
    if _JOBS.search(text):
        specialty = _specialty(body)
        return _tool("buscar_vagas", {"especialidade": specialty} if specialty else {})
    if OPTED_OUT_MARKER in content_text(body.get("system")):
        # She asked not to receive offers: answer, never pitch.
        return _text("Oi! Estou por aqui se precisar de alguma coisa.")
    return None
