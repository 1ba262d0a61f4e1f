from __future__ import annotations

import random

import pytest

from app.conversation.prompt import build_system, history_to_messages, split_reply


def turn(autor: str, texto: str | None = None, tipo: str = "texto") -> dict[str, object]:
    """One stored interacao as reply_context() returns it."""
    return {"autor": autor, "texto": texto, "tipo": tipo, "at": "2026-11-29T10:00:00+00:00"}


def sentences(count: int, length: int = 100, seed: int = 0) -> list[str]:
    """`count` distinct pt-BR-ish sentences of about `length` characters."""
    rng = random.Random(seed)
    words = ["plantão", "hospital", "sábado", "noturno", "valor", "escala", "médico", "clínica", "UTI", "pediatria"]
    out = []
    for i in range(count):
        sentence = f"Frase {i}"
        while len(sentence) < length - 1:
            sentence += f" {rng.choice(words)}"
        out.append(sentence + rng.choice(".!?"))
    return out


def words_of(parts: list[str]) -> list[str]:
    return " ".join(parts).split()


# --- history_to_messages ----------------------------------------------------------------


def test_turns_alternate_between_doctor_and_julia():
    history = [turn("medico", "Oi"), turn("julia", "Olá, Dr.!"), turn("medico", "Tem plantão?")]
    assert history_to_messages(history) == [
        {"role": "user", "content": "Oi"},
        {"role": "assistant", "content": "Olá, Dr.!"},
        {"role": "user", "content": "Tem plantão?"},
    ]


def test_consecutive_turns_of_one_side_are_joined():
    history = [
        turn("medico", "Oi"),
        turn("medico", "Vi o anúncio"),
        turn("julia", "Olá!"),
        turn("humano", "Aqui é a Carla, da equipe."),
        turn("medico", "Ok"),
    ]
    assert history_to_messages(history) == [
        {"role": "user", "content": "Oi\nVi o anúncio"},
        {"role": "assistant", "content": "Olá!\nAqui é a Carla, da equipe."},
        {"role": "user", "content": "Ok"},
    ]


def test_leading_assistant_turns_are_dropped():
    history = [turn("julia", "Olá, Dr. Rafael!"), turn("humano", "Bom dia"), turn("medico", "Oi")]
    assert history_to_messages(history) == [{"role": "user", "content": "Oi"}]


def test_only_assistant_turns_make_no_messages():
    assert history_to_messages([turn("julia", "Olá!")]) == []
    assert history_to_messages([]) == []


@pytest.mark.parametrize(
    ("tipo", "described"),
    [
        ("image", "[o médico enviou uma imagem]"),
        ("audio", "[o médico enviou um áudio]"),
        ("video", "[o médico enviou um vídeo]"),
        ("document", "[o médico enviou um documento]"),
        ("sticker", "[o médico enviou uma figurinha]"),
        ("location", "[o médico enviou uma localização]"),
        ("something-new", "[o médico enviou uma mensagem sem texto]"),
    ],
)
def test_media_without_text_is_described_in_portuguese(tipo, described):
    assert history_to_messages([turn("medico", None, tipo)]) == [{"role": "user", "content": described}]


def test_blank_text_counts_as_no_text_and_a_caption_is_kept():
    history = [turn("medico", "   ", "audio"), turn("medico", "Meu CRM", "image")]
    assert history_to_messages(history) == [{"role": "user", "content": "[o médico enviou um áudio]\nMeu CRM"}]


def test_history_is_not_modified():
    history = [turn("medico", "Oi"), turn("medico", "Tudo bem?")]
    before = [dict(item) for item in history]
    history_to_messages(history)
    assert history == before


# --- build_system ---------------------------------------------------------------------------


def test_only_the_persona_block_is_cached():
    blocks = build_system(empresa="Revoluna", cliente={"nome": "Rafael"})
    assert blocks[0]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in block for block in blocks[1:])
    assert all(block["type"] == "text" for block in blocks)


def test_persona_names_the_company():
    blocks = build_system(empresa="Escalas Aurora", cliente={})
    assert "Escalas Aurora" in blocks[0]["text"]
    assert "Julia" in blocks[0]["text"]


def test_doctors_name_is_given_when_known():
    blocks = build_system(empresa="Revoluna", cliente={"nome": "Rafael Souza"})
    assert "Rafael Souza" in blocks[-1]["text"]
    assert "Rafael Souza" not in blocks[0]["text"]


def test_unknown_name_is_said_and_not_invented():
    for cliente in ({}, {"nome": None}, {"nome": ""}):
        text = " ".join(str(block["text"]) for block in build_system(empresa="Revoluna", cliente=cliente))
        assert "Ainda não sabemos o nome do médico." in text
        assert "None" not in text


def test_cached_block_is_identical_for_every_doctor():
    first = build_system(empresa="Revoluna", cliente={"nome": "Ana"})[0]
    second = build_system(empresa="Revoluna", cliente={"nome": "Bruno"})[0]
    assert first == second


# --- split_reply ---------------------------------------------------------------------------


def test_short_text_is_one_part():
    assert split_reply("  Olá, Dr. Rafael! Tudo bem?\n") == ["Olá, Dr. Rafael! Tudo bem?"]


def test_empty_text_is_no_parts():
    assert split_reply("") == []
    assert split_reply(" \n\n ") == []


def test_short_paragraphs_are_packed_into_one_message():
    text = "Olá, Dr. Rafael!\n\nTemos plantões no sábado.\n\n  \n\nPosso te mandar os detalhes?"
    assert split_reply(text) == ["Olá, Dr. Rafael!\n\nTemos plantões no sábado.\n\nPosso te mandar os detalhes?"]


def test_paragraphs_are_packed_up_to_the_target():
    paragraphs = [" ".join(sentences(2, 90, seed=i)) for i in range(4)]  # ~180 characters each
    parts = split_reply("\n\n".join(paragraphs))
    assert parts == ["\n\n".join(paragraphs[:2]), "\n\n".join(paragraphs[2:])]
    assert all(len(part) <= 400 for part in parts)


def test_very_long_paragraph_is_cut_at_sentence_ends():
    paragraph = " ".join(sentences(20, 100))  # ~2000 characters, no blank line
    parts = split_reply(paragraph)
    assert 1 < len(parts) <= 4
    assert all(len(part) <= 700 for part in parts)
    assert all(part[-1] in ".!?" for part in parts)
    assert words_of(parts) == paragraph.split()


@pytest.mark.parametrize("max_parts", [1, 2, 4])
def test_never_more_than_max_parts_and_the_rest_joins_the_last(max_parts):
    paragraphs = [" ".join(sentences(3, 100, seed=i)) for i in range(10)]  # ~300 characters each
    parts = split_reply("\n\n".join(paragraphs), max_parts=max_parts)
    assert len(parts) == max_parts
    assert parts[-1].endswith(paragraphs[-1])


@pytest.mark.parametrize("seed", range(25))
def test_no_text_is_lost(seed):
    rng = random.Random(seed)
    paragraphs = []
    for i in range(rng.randint(1, 8)):
        paragraph = sentences(rng.randint(1, 15), rng.randint(20, 160), seed=seed * 100 + i)
        paragraphs.append(" ".join(paragraph) if rng.random() < 0.7 else "\n".join(paragraph))
    text = "\n\n".join(paragraphs)
    parts = split_reply(text)
    assert 1 <= len(parts) <= 4
    assert all(part == part.strip() and part for part in parts)
    assert words_of(parts) == text.split()


def test_history_never_ends_on_an_assistant_turn():
    history = [
        {"autor": "medico", "texto": "Oi"},
        {"autor": "julia", "texto": "Olá!"},
        {"autor": "medico", "texto": "Tem plantão?"},
        {"autor": "humano", "texto": "Já te respondo"},
    ]
    messages = history_to_messages(history)
    assert messages[-1] == {"role": "user", "content": "Tem plantão?"}


def test_the_system_prompt_says_when_the_doctor_opted_out():
    opted = build_system(empresa="Revoluna", cliente={"nome": "Ana", "opt_out": True})[1]["text"]
    assert "não receber ofertas" in opted
    assert "não receber ofertas" not in build_system(empresa="Revoluna", cliente={"nome": "Ana"})[1]["text"]
