"""Why a started campaign sent nothing at once, said in words an operator reads."""

from __future__ import annotations

from app.ops.campaigns import why_none_now

OPEN = {"em_horario": True, "limite_dia_restante": 10, "limite_hora_restante": 3, "numeros": [{"disponivel": True}]}


def test_each_reason_is_named():
    assert "pausada" in why_none_now(OPEN, julia_paused=True)
    closed = {**OPEN, "em_horario": False, "proxima_abertura": "2026-12-02T11:00:00+00:00"}
    assert why_none_now(closed, julia_paused=False) == (
        "fora do horário de envio; a próxima janela abre 02/12 às 08:00 (horário de São Paulo)"
    )
    assert "limite do dia" in why_none_now({**OPEN, "limite_dia_restante": 0}, julia_paused=False)
    assert "limite desta hora" in why_none_now({**OPEN, "limite_hora_restante": 0}, julia_paused=False)
    no_number = {**OPEN, "numeros": [{"disponivel": False}]}
    assert "nenhum número" in why_none_now(no_number, julia_paused=False)
    assert "agendador" in why_none_now(OPEN, julia_paused=False)
