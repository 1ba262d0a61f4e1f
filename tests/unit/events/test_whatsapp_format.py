"""Markdown -> WhatsApp formatting (pure)."""

from __future__ import annotations

import pytest

from app.events.whatsapp_format import markdown_to_whatsapp


@pytest.mark.parametrize(
    ("markdown", "whatsapp"),
    [
        ("Oi doutor, tudo bem?", "Oi doutor, tudo bem?"),
        ("**plantão** confirmado", "*plantão* confirmado"),
        ("__plantão__ confirmado", "*plantão* confirmado"),
        ("um *detalhe* importante", "um _detalhe_ importante"),
        ("um _detalhe_ importante", "um _detalhe_ importante"),
        ("~~cancelado~~ remarcado", "~cancelado~ remarcado"),
        ("***muito*** importante", "*_muito_* importante"),
        ("# Plantões de hoje", "*Plantões de hoje*"),
        ("## Detalhes ##", "*Detalhes*"),
        ("* um\n* dois\n+ três", "- um\n- dois\n- três"),
        ("- um\n- dois", "- um\n- dois"),
        ("1. um\n2. dois", "1. um\n2. dois"),
        ("> citação", "> citação"),
        ("veja [o edital](https://x.example/e?a=1_2)", "veja o edital (https://x.example/e?a=1_2)"),
        ("[https://x.example](https://x.example)", "https://x.example"),
        ("<https://x.example/a_b_c>", "https://x.example/a_b_c"),
        ("![mapa](https://x.example/m.png)", "mapa (https://x.example/m.png)"),
        ("use `R$ *1500*`", "use ```R$ *1500*```"),
        ("```python\nx = a * b * c\n**não**\n```", "```x = a * b * c\n**não**```"),
        ("2 * 3 * 4 = 24", "2 * 3 * 4 = 24"),
        ("snake_case_name e 5*3", "snake_case_name e 5*3"),
        (r"\*literal\* e \_também\_", "*literal* e _também_"),
        ("a\n\n\n\nb", "a\n\nb"),
        ("---\nfim", "fim"),
        ("CRM **12345**\r\nok", "CRM *12345*\nok"),
        ("", ""),
    ],
)
def test_markdown_becomes_whatsapp_formatting(markdown: str, whatsapp: str) -> None:
    assert markdown_to_whatsapp(markdown) == whatsapp


def test_escaped_markers_are_not_reformatted() -> None:
    assert markdown_to_whatsapp(r"\*\*não é negrito\*\*") == "**não é negrito**"


def test_code_inside_a_link_label_and_bold_survive_together() -> None:
    assert markdown_to_whatsapp("**veja** [`x_y`](https://a.example)") == "*veja* ```x_y``` (https://a.example)"
