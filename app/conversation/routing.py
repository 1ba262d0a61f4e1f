"""Which model answers a turn: LLM_MODEL for ordinary turns, LLM_MODEL_COMPLEX
when the turn needs more (a chain of tools, a long or many-part message, a
negotiation). Pure and small, so it can be tested exhaustively.
"""

from __future__ import annotations

import re
import unicodedata

LONG_MESSAGE_CHARS = 400
MANY_QUESTIONS = 3
TOOL_CHAIN_ROUNDS = 2

_NEGOTIATION = re.compile(
    r"\b(negocia\w*|contraproposta|proposta|aument\w*|desconto|mais caro|muito baixo|pouco|"
    r"valor melhor|melhorar o valor|pagar mais|cobrir|reajuste|acima de)\b"
)


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def needs_complex_model(latest_doctor_text: str, *, tool_rounds: int = 0) -> bool:
    """True when the turn should go to the complex model."""
    text = _fold(latest_doctor_text or "")
    return (
        tool_rounds >= TOOL_CHAIN_ROUNDS
        or len(text) > LONG_MESSAGE_CHARS
        or text.count("?") >= MANY_QUESTIONS
        or _NEGOTIATION.search(text) is not None
    )


def choose_model(latest_doctor_text: str, *, tool_rounds: int, simple: str, complex_: str) -> str:
    """The model name for this turn."""
    return complex_ if needs_complex_model(latest_doctor_text, tool_rounds=tool_rounds) else simple
