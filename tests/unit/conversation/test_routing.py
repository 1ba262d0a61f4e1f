import pytest

from app.conversation.routing import LONG_MESSAGE_CHARS, choose_model, needs_complex_model


@pytest.mark.parametrize(
    "text",
    [
        "Oi, tudo bem?",
        "Tem plantão de GO no sábado?",
        "Pode reservar a vaga 12, por favor.",
        "Qual o endereço do hospital?",
    ],
)
def test_ordinary_turns_use_the_simple_model(text):
    assert needs_complex_model(text) is False
    assert choose_model(text, tool_rounds=0, simple="haiku", complex_="sonnet") == "haiku"


@pytest.mark.parametrize(
    "text",
    [
        "Esse valor está muito baixo, dá para negociar?",
        "Consigo um desconto na taxa?",
        "Vocês aumentam para 2 mil?",
        "Tenho uma contraproposta para vocês",
        "Dá pra pagar mais no noturno?",
        "Qual o valor? Qual o hospital? E o horário?",  # three questions at once
        "NEGOCIAÇÃO do valor",  # accents and case do not matter
    ],
)
def test_negotiation_and_many_questions_use_the_complex_model(text):
    assert needs_complex_model(text) is True


def test_long_messages_use_the_complex_model():
    assert needs_complex_model("a" * LONG_MESSAGE_CHARS) is False
    assert needs_complex_model("a" * (LONG_MESSAGE_CHARS + 1)) is True


def test_a_chain_of_tools_moves_to_the_complex_model():
    assert choose_model("Oi", tool_rounds=1, simple="haiku", complex_="sonnet") == "haiku"
    assert choose_model("Oi", tool_rounds=2, simple="haiku", complex_="sonnet") == "sonnet"


def test_empty_text_is_ordinary():
    assert needs_complex_model("") is False
