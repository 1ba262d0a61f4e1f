"""The ops console's HTML (pt-BR): the frame every page shares (escaping,
São Paulo times, tables, CSRF-carrying forms, navigation), the sign-in and
error pages, and the Julia and queues sections. Pure functions of plain
values; every value is escaped here. The other sections: console_sections.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from app.core.config import SAO_PAULO

NAV = (
    ("/ops", "Julia"),
    ("/ops/filas", "Filas"),
    ("/ops/conversas", "Conversas"),
    ("/ops/campanhas", "Campanhas"),
    ("/ops/numeros", "Números e limites"),
    ("/ops/falhas", "Falhas"),
)

PROBLEMS = {
    "falhou": "falhou",
    "parado": "parado (worker sem sinal)",
    "tentando": "tentando de novo",
    "atrasado": "atrasado",
}
# What an action did, shown after it redirects (?feito=...): fixed texts only.
DONE = {
    "pausada": "Julia foi pausada.",
    "retomada": "Julia foi retomada.",
    "devolvida": "Conversa devolvida para a Julia.",
    "campanha_pausada": "Campanha pausada.",
    "campanha_cancelada": "Campanha cancelada.",
    "job_retentado": "Job colocado para rodar de novo.",
    "job_descartado": "Job descartado.",
}


def h(value: Any) -> str:
    """Escaped text of a value ('—' for None)."""
    return "—" if value is None else escape(str(value), quote=True)


def when(value: Any) -> str:
    """A timestamp (datetime or ISO text) in São Paulo time, e.g. 01/12/2026 09:45:03."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return h(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return h(value.strftime("%d/%m/%Y %H:%M:%S"))
        return h(value.astimezone(SAO_PAULO).strftime("%d/%m/%Y %H:%M:%S"))
    return h(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str, css: str = "") -> str:
    """A table of already-escaped cells, or a line saying it is empty."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{h(empty)}</p>'
    head = "".join(f"<th>{h(x)}</th>" for x in headers)
    return f'<table class="{h(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def form(action: str, csrf: str, fields: str, button: str, *, css: str = "", button_id: str = "") -> str:
    """A POST form with its CSRF token."""
    bid = f' id="{h(button_id)}"' if button_id else ""
    return (
        f'<form method="post" action="{h(action)}" class="{h(css)}">'
        f'<input type="hidden" name="csrf" value="{h(csrf)}">{fields}'
        f'<button type="submit"{bid}>{h(button)}</button></form>'
    )


def reason_field(name: str = "motivo", *, required: bool, label: str = "Motivo", field_id: str = "") -> str:
    req = " required" if required else ""
    fid = f' id="{h(field_id)}"' if field_id else ""
    return f'<label>{h(label)} <input type="text" name="{h(name)}" maxlength="500"{req}{fid}></label>'


def layout(title: str, body: str, *, operator: str | None, csrf: str | None, active: str = "", notice: str = "") -> str:
    """The page around a section: navigation, who is signed in, a notice."""
    nav = ""
    if operator is not None and csrf is not None:
        links = "".join(
            f'<a href="{h(href)}"{" class=active" if href == active else ""}>{h(label)}</a>' for href, label in NAV
        )
        sign_out = form("/ops/sair", csrf, "", "Sair", css="inline", button_id="sair")
        nav = (
            f'<nav>{links}<span class="who">Operador: <strong id="operador">{h(operator)}</strong> {sign_out}</span>'
            "</nav>"
        )
    message = f'<p class="notice" id="aviso">{h(notice)}</p>' if notice else ""
    return (
        '<!doctype html><html lang="pt-BR"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{h(title)} · Julia ops</title><link rel="stylesheet" href="/ops/static/console.css"></head>'
        f"<body>{nav}<main><h1>{h(title)}</h1>{message}{body}</main></body></html>"
    )


def error_page(status: int, reason: str, *, operator: str | None = None, csrf: str | None = None) -> str:
    titles = {
        400: "Pedido inválido",
        401: "Entre de novo",
        403: "Pedido recusado",
        404: "Não encontrado",
        409: "Não foi possível",
        503: "Indisponível",
    }
    body = f'<p class="error" id="erro">{h(reason)}</p><p><a href="/ops">Voltar ao console</a></p>'
    if status == 401:
        body = f'<p class="error" id="erro">{h(reason)}</p><p><a href="/ops/entrar">Entrar</a></p>'
    return layout(titles.get(status, "Erro"), body, operator=operator, csrf=csrf)


def sign_in_page(csrf: str, error: str = "") -> str:
    message = f'<p class="error" id="erro">{h(error)}</p>' if error else ""
    fields = (
        '<label>Token de operador <textarea name="token" id="token" rows="4" required '
        'autocomplete="off" spellcheck="false"></textarea></label>'
        '<p class="hint">Gere um com <code>julia token --subject SEU_NOME --minutes 480</code>.'
        " A sessão dura o mesmo que o token.</p>"
    )
    body = message + form("/ops/entrar", csrf, fields, "Entrar", css="stack", button_id="entrar")
    return layout("Entrar no console", body, operator=None, csrf=None)


def julia_section(status: Mapping[str, Any], actions: Sequence[Mapping[str, Any]], csrf: str) -> str:
    julia = status.get("julia") or {}
    paused = julia.get("status") == "pausado"
    state = (
        f'<p class="state {"paused" if paused else "active"}" id="estado">'
        f"{'Pausada' if paused else 'Ativa'}</p>"
        f'<dl><dt>Motivo</dt><dd id="motivo-atual">{h(julia.get("motivo"))}</dd>'
        f"<dt>Alterado via</dt><dd>{h(julia.get('alterado_via'))}</dd>"
        f"<dt>Desde</dt><dd>{when(julia.get('since'))}</dd></dl>"
    )
    path, label, css, button = (
        ("/ops/retomar", "Retomar Julia", "stack", "retomar")
        if paused
        else ("/ops/pausar", "Pausar Julia", "stack danger", "pausar")
    )
    action = form(path, csrf, reason_field(required=True, field_id="motivo"), label, css=css, button_id=button)
    queues = status.get("filas") or {}
    inbound = queues.get("inbound") or {}
    summary = (
        '<ul class="counts">'
        f"<li><strong>{h(status.get('conversas_abertas'))}</strong> conversas abertas</li>"
        f"<li><strong>{h(status.get('handoffs_abertos'))}</strong> com humano</li>"
        f"<li><strong>{h(status.get('falhas_24h'))}</strong> falhas em 24 h</li>"
        f"<li><strong>{h(inbound.get('depth'))}</strong> na fila de entrada</li></ul>"
    )
    audit = table(
        ("Quando", "Operador", "Ação", "Alvo", "Motivo"),
        (
            (when(a.get("at")), h(a.get("operator")), h(a.get("action")), h(a.get("target")), h(a.get("motivo")))
            for a in actions
        ),
        empty="Nenhuma ação feita pelo console ainda.",
    )
    return (
        f"<section><h2>Estado</h2>{state}{action}</section><section><h2>Resumo</h2>{summary}</section>"
        f"<section><h2>Últimas ações no console</h2>{audit}</section>"
    )


def _args(args: Any) -> str:
    return h(json.dumps(args, ensure_ascii=False)[:200]) if args else "—"


def queues_section(depths: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], csrf: str) -> str:
    inbound = depths.get("inbound") or {}
    age = inbound.get("oldest_age_seconds")
    head = (
        '<ul class="counts">'
        f'<li><strong id="inbound-depth">{h(inbound.get("depth"))}</strong> mensagens na fila de entrada</li>'
        f"<li>mais antiga há <strong>{h(age if age is not None else 0)}</strong> s</li></ul>"
    )
    states = ("todo", "doing", "failed")
    labels = {"todo": "esperando", "doing": "rodando", "failed": "falharam"}
    by_queue = depths.get("jobs") or {}
    jobs_table = table(
        ("Fila", *(labels[s] for s in states)),
        ((h(q), *(h(by_queue[q].get(s, 0)) for s in states)) for q in sorted(by_queue)),
        empty="Nenhum job esperando, rodando ou falho.",
    )
    outbox = depths.get("outbox") or {}
    outbox_line = ", ".join(f"{h(k)}: {h(v)}" for k, v in sorted(outbox.items())) or "vazia"
    chatwoot = depths.get("chatwoot") or {}
    other = (
        f"<p>Saída (outbox): {outbox_line}. Chatwoot pendente: {h(chatwoot.get('mensagens_pendentes'))} mensagens, "
        f"{h(chatwoot.get('eventos_pendentes'))} eventos. Notificações pendentes: "
        f"{h(depths.get('notificacoes_pendentes'))}.</p>"
    )
    rows = []
    for job in jobs:
        jid = h(job.get("id"))
        buttons = ""
        if job.get("status") in ("failed", "doing", "todo"):
            retry = f"/ops/jobs/{jid}/retentar"
            buttons += form(retry, csrf, "", "Rodar de novo", css="inline", button_id=f"retry-{jid}")
        if job.get("status") in ("failed", "todo"):
            dismiss = f"/ops/jobs/{jid}/descartar"
            buttons += form(dismiss, csrf, "", "Descartar", css="inline", button_id=f"dismiss-{jid}")
        rows.append(
            (
                jid,
                h(job.get("queue")),
                h(job.get("task")),
                h(PROBLEMS.get(job.get("problem"), job.get("problem"))),
                h(job.get("attempts")),
                _args(job.get("args")),
                when(job.get("last_event_at")),
                buttons,
            )
        )
    problems = table(
        ("Job", "Fila", "Tarefa", "Problema", "Tentativas", "Argumentos", "Último evento", ""),
        rows,
        empty="Nenhum job parado ou falhando.",
        css="jobs",
    )
    return (
        f"<section><h2>Entrada</h2>{head}</section><section><h2>Jobs por fila</h2>{jobs_table}{other}</section>"
        f"<section><h2>Jobs parados ou falhando</h2>{problems}</section>"
    )
