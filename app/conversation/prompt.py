"""Pure conversation logic: the system prompt, the message list for Claude
and splitting a reply into WhatsApp-sized messages. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date

PERSONA = """Você é a Julia, recrutadora da {empresa}, uma empresa de escalas médicas.
Você conversa com médicos pelo WhatsApp para oferecer plantões, tirar dúvidas e
registrar interesse.

Como você escreve:
- Português do Brasil, tom cordial e profissional, frases curtas como no WhatsApp.
- Trate o médico por "Dr." ou "Dra." seguido do nome quando souber o nome.
- Nunca invente plantões, valores, hospitais ou regras: se não souber, diga que vai
  confirmar com a equipe.
- Nunca mencione que é uma IA, um modelo ou um sistema, nem mostre mensagens de erro.
- Se o médico pedir para não receber mais mensagens, confirme com educação e encerre.
- Se o médico pedir para falar com uma pessoa, diga que vai chamar alguém da equipe."""

MEDIA_LABELS = {
    "image": "uma imagem",
    "video": "um vídeo",
    "audio": "um áudio",
    "document": "um documento",
    "sticker": "uma figurinha",
    "location": "uma localização",
    "contact": "um contato",
}


def build_system(
    *,
    empresa: str,
    cliente: Mapping[str, object],
    prompt: str | None = None,
    diretrizes: Sequence[str] = (),
    knowledge: Sequence[Mapping[str, object]] = (),
    today: date | None = None,
) -> list[dict[str, object]]:
    """System blocks for Claude.

    The first block (persona from the active prompt, else the default, plus
    the active diretrizes) is the same for every conversation and is marked
    for prompt caching; the second carries what is specific to this turn:
    the date, the doctor's profile and the knowledge retrieved for it.
    """
    persona = (prompt or PERSONA).replace("{empresa}", empresa)
    stable = persona
    if diretrizes:
        stable += "\n\nRegras que você sempre segue:\n" + "\n".join(f"- {d}" for d in diretrizes)
    blocks: list[dict[str, object]] = [{"type": "text", "text": stable, "cache_control": {"type": "ephemeral"}}]

    lines = []
    if today is not None:
        lines.append(f"Hoje é {today.strftime('%d/%m/%Y')} ({_WEEKDAYS[today.weekday()]}).")
    nome = cliente.get("nome")
    lines.append(f"O médico desta conversa se chama {nome}." if nome else "Ainda não sabemos o nome do médico.")
    profile = {k: cliente[k] for k in ("crm", "especialidade", "regiao", "cidade", "preferencias") if cliente.get(k)}
    if profile:
        lines.append("Perfil conhecido: " + "; ".join(f"{k}: {v}" for k, v in profile.items()) + ".")
    if cliente.get("opt_out"):
        lines.append(
            "Este médico pediu para não receber ofertas (opt-out): responda só ao que ele perguntar,"
            " sem oferecer plantões por iniciativa sua."
        )
    if knowledge:
        lines.append("\nInformações da empresa que podem ajudar (use só se forem pertinentes):")
        lines.extend(f"- {hit['titulo']}: {hit['conteudo']}" for hit in knowledge)
    blocks.append({"type": "text", "text": "\n".join(lines)})
    return blocks


_WEEKDAYS = ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira", "sábado", "domingo")


def latest_doctor_text(history: Sequence[Mapping[str, object]]) -> str:
    """The doctor's messages since Julia (or a human) last spoke, joined."""
    texts: list[str] = []
    for item in reversed(history):
        if item.get("autor") != "medico":
            break
        texts.append(_describe(item))
    return "\n".join(reversed(texts))


def _describe(item: Mapping[str, object]) -> str:
    text = str(item.get("texto") or "").strip()
    if text:
        return text
    label = MEDIA_LABELS.get(str(item.get("tipo")), "uma mensagem sem texto")
    return f"[o médico enviou {label}]"


def history_to_messages(history: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
    """Turn stored interacoes (oldest first) into alternating user/assistant turns.

    The doctor is the user; Julia and humans on the company phone are the
    assistant. Consecutive turns of one side are joined; the list starts and
    ends with the doctor, as the Messages API requires (no prefill).
    """
    messages: list[dict[str, object]] = []
    for item in history:
        role = "user" if item.get("autor") == "medico" else "assistant"
        text = _describe(item)
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] = f"{messages[-1]['content']}\n{text}"
        else:
            messages.append({"role": role, "content": text})
    while messages and messages[0]["role"] != "user":
        messages.pop(0)
    # Nothing after Julia's (or a human's) last word is owed an answer.
    while messages and messages[-1]["role"] != "user":
        messages.pop()
    return messages


_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _pack(units: Sequence[str], limit: int, sep: str) -> list[str]:
    """Greedily join units with `sep` while the result stays within `limit`."""
    packed: list[str] = []
    for unit in units:
        if packed and len(packed[-1]) + len(sep) + len(unit) <= limit:
            packed[-1] = f"{packed[-1]}{sep}{unit}"
        else:
            packed.append(unit)
    return packed


def split_reply(text: str, *, target: int = 400, max_chars: int = 700, max_parts: int = 4) -> list[str]:
    """Split a reply into a few natural WhatsApp messages.

    Paragraphs are packed into messages of about `target` characters; a
    paragraph longer than `max_chars` is cut at sentence ends. Never more than
    `max_parts` messages: the rest joins the last one.
    """
    units: list[str] = []
    for paragraph in _PARAGRAPHS.split(text.strip()):
        paragraph = paragraph.strip()
        if len(paragraph) > max_chars:
            units.extend(_pack(_SENTENCE_END.split(paragraph), max_chars, " "))
        elif paragraph:
            units.append(paragraph)
    parts = _pack(units, target, "\n\n")
    if len(parts) > max_parts:
        parts = [*parts[: max_parts - 1], "\n\n".join(parts[max_parts - 1 :])]
    return parts
