"""The ops console at /ops: server-rendered pages (pt-BR) for the operators,
each a few SQL reads (the ops functions and db/console.sql): /ops (Julia's
state, pause/resume), /ops/filas, /ops/conversas[/{id}], /ops/campanhas,
/ops/numeros, /ops/falhas, and its stylesheet. A visitor who is not signed
in is sent to /ops/entrar. Sign-in and the actions: console_actions; the
HTML: console_html and console_sections. A refusal is an HTML page with a
4xx (503 when the console is off or the database away), never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.http import console_actions
from app.http import console_html as html
from app.http import console_sections as sections
from app.http.auth import Refusal
from app.http.console_requests import (
    DB_WAIT,
    LIST_LIMIT,
    MAX_QUERY,
    console_secret,
    current_session,
    page,
    path_id,
    redirect,
    refusal_page,
    stalled_seconds,
)
from app.http.console_session import Session, csrf_token
from app.store.pool import fetch_one

Render = Callable[[Request, Session, str], Awaitable[tuple[str, str]]]


def _console_page(active: str, render: Render) -> Callable[[Request], Awaitable[Response]]:
    """A GET page for a signed-in operator; others go to the sign-in form."""

    async def endpoint(request: Request) -> Response:
        session: Session | None = None
        csrf: str | None = None
        try:
            secret = console_secret(request)
            session = current_session(request, secret)
            if session is None:
                return redirect("/ops/entrar")
            csrf = csrf_token(secret, "session", session.sid)
            title, body = await render(request, session, csrf)
        except Exception as exc:  # noqa: BLE001 - refusal_page answers refusals and re-raises the rest
            return refusal_page(exc, session, csrf)
        notice = html.DONE.get(request.query_params.get("feito", ""), "")
        return page(200, html.layout(title, body, operator=session.operator, csrf=csrf, active=active, notice=notice))

    endpoint.__name__ = f"console_{render.__name__}"
    return endpoint


async def _value(request: Request, name: str, column: str = "result", /, **params: Any) -> Any:
    row = await fetch_one(request.state.pool, name, wait=DB_WAIT, **params)
    return row[column] if row else None


async def julia(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    status = await _value(request, "ops_status", "status")
    actions = await _value(request, "console_recent_actions", limit=15)
    return "Julia", html.julia_section(status, actions, csrf)


async def queues(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    depths = await _value(request, "ops_queue_depths")
    jobs = await _value(request, "console_problem_jobs", stalled_seconds=stalled_seconds(request), limit=LIST_LIMIT)
    return "Filas", html.queues_section(depths, jobs, csrf)


async def conversations(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    query = request.query_params.get("q", "").strip()
    if len(query) > MAX_QUERY:
        raise Refusal(400, f"a busca tem mais de {MAX_QUERY} caracteres")
    found = await _value(request, "console_conversations", query=query or None, limit=LIST_LIMIT)
    return "Conversas", sections.conversations_section(query, found)


async def transcript(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    conversation_id = path_id(request, "a conversa")
    found = await _value(request, "console_transcript", conversation_id=conversation_id)
    if found is None:
        raise Refusal(404, f"a conversa {conversation_id} não existe")
    return f"Conversa #{conversation_id}", sections.transcript_section(found, csrf)


async def campaigns(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    return "Campanhas", sections.campaigns_section(await _value(request, "console_campaigns", limit=LIST_LIMIT), csrf)


async def numbers(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    return "Números e limites", sections.numbers_section(await _value(request, "rate_limit_status", "status"))


async def failures(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    return "Falhas", sections.failures_section(await _value(request, "console_failures", limit=LIST_LIMIT))


ROUTES: list[BaseRoute] = [
    Route("/ops", _console_page("/ops", julia), methods=["GET"]),
    Route("/ops/filas", _console_page("/ops/filas", queues), methods=["GET"]),
    Route("/ops/conversas", _console_page("/ops/conversas", conversations), methods=["GET"]),
    Route("/ops/conversas/{id}", _console_page("/ops/conversas", transcript), methods=["GET"]),
    Route("/ops/campanhas", _console_page("/ops/campanhas", campaigns), methods=["GET"]),
    Route("/ops/numeros", _console_page("/ops/numeros", numbers), methods=["GET"]),
    Route("/ops/falhas", _console_page("/ops/falhas", failures), methods=["GET"]),
    *console_actions.ROUTES,
    Mount("/ops/static", app=StaticFiles(directory=Path(__file__).parent / "static"), name="console_static"),
]
