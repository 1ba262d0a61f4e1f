"""The ops console's conversation, campaign, numbers and failures sections
(pt-BR HTML, pure functions of what their SQL functions return; the frame
and the escaping are console_html's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from app.http.console_html import form, h, reason_field, table, when

OWNERS = {"julia": "Julia", "humano": "Humano (handoff)", "assumida": "Assumida por agente"}
CAMPAIGN_STATUS = {
    "rascunho": "rascunho",
    "ativa": "ativa",
    "pausada": "pausada",
    "concluida": "concluída",
    "cancelada": "cancelada",
}


def _doctor(medico: Mapping[str, Any]) -> str:
    name = h(medico.get("nome") or "sem nome")
    phone = h(medico.get("telefone") or medico.get("lid"))
    opt = ' <span class="tag">opt-out</span>' if medico.get("opt_out") else ""
    return f"{name}<br><small>{phone}</small>{opt}"


def conversations_section(query: str, conversations: Sequence[Mapping[str, Any]]) -> str:
    search = (
        '<form method="get" action="/ops/conversas" class="inline">'
        f'<label>Buscar por nome ou telefone <input type="search" name="q" id="busca" value="{h(query)}"'
        ' maxlength="100"></label><button type="submit" id="buscar">Buscar</button></form>'
    )
    rows = []
    for c in conversations:
        cid = h(c.get("conversation_id"))
        last = c.get("ultima_mensagem") or {}
        rows.append(
            (
                f'<a href="/ops/conversas/{cid}" id="conversa-{cid}">#{cid}</a>',
                _doctor(c.get("medico") or {}),
                f'<span class="owner {h(c.get("owner"))}">{h(OWNERS.get(c.get("owner"), c.get("owner")))}</span>',
                h(c.get("status")),
                f"{h(last.get('autor'))}: {h(last.get('texto'))}" if last else "—",
                when(c.get("updated_at")),
            )
        )
    listing = table(
        ("Conversa", "Médico", "Quem responde", "Status", "Última mensagem", "Atualizada"),
        rows,
        empty="Nenhuma conversa encontrada.",
    )
    return f"<section>{search}{listing}</section>"


def _text(message: Mapping[str, Any]) -> str:
    texto = message.get("texto")
    return h(texto) if texto is not None else h(f"[{message.get('tipo') or 'mensagem'}]")


def transcript_section(t: Mapping[str, Any], csrf: str) -> str:
    cid = h(t.get("conversation_id"))
    medico = t.get("medico") or {}
    owner = t.get("owner")
    facts = (
        f"<dl><dt>Médico</dt><dd>{_doctor(medico)}</dd>"
        f"<dt>Especialidade</dt><dd>{h(medico.get('especialidade'))}</dd>"
        f'<dt>Quem responde</dt><dd id="dono">{h(OWNERS.get(owner, owner))}</dd>'
        f"<dt>Motivo do handoff</dt><dd>{h(t.get('handoff_motivo'))}</dd>"
        f"<dt>Handoff desde</dt><dd>{when(t.get('handoff_em'))}</dd>"
        f"<dt>Julia quieta até</dt><dd>{when(t.get('julia_pausada_ate'))}</dd>"
        f"<dt>Mensagens na saída</dt><dd>{h(t.get('pendentes'))}</dd></dl>"
    )
    action = ""
    if owner != "julia":
        action = form(
            f"/ops/conversas/{cid}/devolver",
            csrf,
            reason_field(required=False, field_id="motivo"),
            "Devolver para a Julia",
            css="stack",
            button_id="devolver",
        )
    authors = {"medico": "Médico", "julia": "Julia", "humano": "Humano"}
    messages = "".join(
        f'<li class="msg {h(m.get("autor"))}"><span class="meta">{h(authors.get(m.get("autor"), m.get("autor")))}'
        f" · {when(m.get('at'))}</span>{_text(m)}</li>"
        for m in t.get("mensagens") or []
    )
    transcript = f'<ol class="transcript">{messages}</ol>' if messages else '<p class="empty">Sem mensagens.</p>'
    return f"<section>{facts}{action}</section><section><h2>Mensagens</h2>{transcript}</section>"


def _filter(filtro: Mapping[str, Any]) -> str:
    parts = []
    for key, label in (("especialidades", "especialidades"), ("regioes", "regiões"), ("tags", "tags")):
        if filtro.get(key):
            parts.append(f"{label}: {', '.join(map(str, filtro[key]))}")
    if filtro.get("sem_contato_ha_dias") is not None:
        parts.append(f"sem contato há {filtro['sem_contato_ha_dias']} dias")
    return h("; ".join(parts) or "todos")


def campaigns_section(campaigns: Sequence[Mapping[str, Any]], csrf: str) -> str:
    blocks = []
    for k in campaigns:
        kid = h(k.get("campanha_id"))
        status = k.get("status")
        total = k.get("total") or 0
        sent = k.get("enviadas") or 0
        percent = round(100 * sent / total) if total else 0
        refusals = k.get("recusas") or {}
        refusal_line = ", ".join(f"{h(r)}: {h(n)}" for r, n in sorted(refusals.items())) or "nenhuma"
        actions = ""
        if status in ("ativa", "rascunho"):
            actions += form(
                f"/ops/campanhas/{kid}/pausar",
                csrf,
                reason_field(required=False, field_id=f"motivo-pausar-{kid}"),
                "Pausar campanha",
                css="inline",
                button_id=f"pausar-campanha-{kid}",
            )
        if status in ("ativa", "rascunho", "pausada"):
            confirm = (
                f'<label><input type="checkbox" name="confirmar" value="sim" required id="confirmar-{kid}">'
                " confirmo: nada mais será enviado</label>"
            )
            actions += form(
                f"/ops/campanhas/{kid}/cancelar",
                csrf,
                reason_field(required=False, field_id=f"motivo-cancelar-{kid}") + confirm,
                "Cancelar campanha",
                css="inline danger",
                button_id=f"cancelar-campanha-{kid}",
            )
        blocks.append(
            f'<article class="campaign" id="campanha-{kid}"><h3>{h(k.get("campanha"))} '
            f'<span class="tag" id="status-campanha-{kid}">{h(CAMPAIGN_STATUS.get(status, status))}</span></h3>'
            f'<p><progress max="{h(total)}" value="{h(sent)}"></progress> {h(sent)} de {h(total)} enviadas'
            f" ({percent}%) · {h(k.get('pendentes'))} pendentes · {h(k.get('falhas'))} falhas · "
            f"{h(k.get('entregues'))} entregues · {h(k.get('lidas'))} lidas · {h(k.get('respondidas'))} respondidas · "
            f"{h(k.get('opt_outs'))} opt-outs</p>"
            f"<p>Recusas por motivo: {refusal_line}</p>"
            f"<p><small>Público: {_filter(k.get('filtro') or {})} · criada {when(k.get('created_at'))}"
            f" · modelo: {h(k.get('template'))}</small></p>{actions}</article>"
        )
    return "".join(blocks) or '<p class="empty">Nenhuma campanha.</p>'


def numbers_section(limits: Mapping[str, Any]) -> str:
    hour, day = limits.get("hour") or {}, limits.get("day") or {}
    totals = (
        '<ul class="counts">'
        f'<li>Nesta hora: <strong id="hora-enviadas">{h(hour.get("sent"))}</strong> de {h(hour.get("limit"))}'
        f" (restam {h(hour.get('remaining'))})</li>"
        f'<li>Hoje: <strong id="dia-enviadas">{h(day.get("sent"))}</strong> de {h(day.get("limit"))}'
        f" (restam {h(day.get('remaining'))})</li></ul><p><small>Mensagens proativas (campanhas e follow-ups), "
        "hora de São Paulo.</small></p>"
    )
    rows = []
    for n in limits.get("numbers") or []:
        nh, nd = n.get("hour") or {}, n.get("day") or {}
        state = "pausado: " + str(n.get("pause_reason") or "") if n.get("paused") else n.get("state")
        rows.append(
            (
                h(n.get("instance")),
                h(n.get("phone")),
                h(state),
                "sim" if n.get("available") else h(n.get("unavailable") or "não"),
                "sim" if n.get("in_hours") else "não",
                h(n.get("warmup_day")),
                f"{h(nh.get('sent'))} / {h(nh.get('limit'))}",
                f"{h(nd.get('sent'))} / {h(nd.get('limit'))}",
            )
        )
    numbers = table(
        ("Instância", "Telefone", "Estado", "Disponível", "No horário", "Dia de aquecimento", "Hora", "Dia"),
        rows,
        empty="Nenhum número cadastrado.",
    )
    policy = h(json.dumps(limits.get("policy") or {}, ensure_ascii=False, sort_keys=True))
    return (
        f"<section><h2>Hoje</h2>{totals}</section><section><h2>Números</h2>{numbers}</section>"
        f"<section><h2>Política de envio</h2><pre>{policy}</pre></section>"
    )


def failures_section(failures: Mapping[str, Any]) -> str:
    jobs = table(
        ("Quando", "Tarefa", "Job", "Conversa", "Saída", "Tipo", "Erro"),
        (
            (
                when(f.get("at")),
                h(f.get("task")),
                f'<a href="/ops/filas">{h(f.get("job_id"))}</a> <small>{h(f.get("job_status"))}</small>',
                f'<a href="/ops/conversas/{h(f.get("conversation_id"))}">#{h(f.get("conversation_id"))}</a>'
                if f.get("conversation_id")
                else "—",
                h(f.get("outbox_id")),
                h(f.get("classification")),
                h(f.get("error")),
            )
            for f in failures.get("jobs") or []
        ),
        empty="Nenhuma falha de job.",
    )
    inbound = table(
        ("Quando", "Mensagem pgmq", "Leituras", "Erro", "Conteúdo"),
        (
            (when(p.get("at")), h(p.get("msg_id")), h(p.get("read_ct")), h(p.get("error")), h(p.get("message")))
            for p in failures.get("inbound") or []
        ),
        empty="Nenhuma mensagem envenenada.",
    )
    return (
        f"<section><h2>Jobs que falharam de vez</h2>{jobs}</section>"
        f"<section><h2>Mensagens de entrada arquivadas (pgmq)</h2>{inbound}</section>"
    )
