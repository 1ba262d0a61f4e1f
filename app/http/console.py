"""The ops console at /ops: server-rendered pages (pt-BR) for the operators,
each page a few SQL functions (db/console.sql and the ops reads), each
action one audited SQL function under the operator's name.

Sign-in: GET/POST /ops/entrar (paste an operator token from `julia token`;
the session cookie lasts as long as the token), POST /ops/sair. Pages:
/ops (Julia's state, pause/resume), /ops/filas, /ops/conversas[/{id}],
/ops/campanhas, /ops/numeros, /ops/falhas. Every POST carries the
session's CSRF token. A refusal is an HTML page with a 4xx (503 when the
console is off or the database away), never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from app.http import console_html as html
from app.http.auth import Refusal, read_body
from app.http.console_session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    SIGN_IN_SECONDS,
    Session,
    csrf_ok,
    csrf_token,
    new_nonce,
    seal,
    session_from_token,
    unseal,
)
from app.store.errors import is_connection_error
from app.store.pool import fetch_one

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
MAX_REASON = 500
MAX_QUERY = 100
LIST_LIMIT = 50
DB_WAIT = 10
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SIGNED_OUT = "Sua sessão terminou ou não existe: entre de novo com um token de operador."
BAD_CSRF = "Token CSRF ausente ou inválido: recarregue a página e tente de novo."

Render = Callable[[Request, Session, str], Awaitable[tuple[str, str]]]


def _page(status: int, body: str) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def _secret(request: Request) -> str:
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        raise Refusal(503, "Console desligado: JWT_SECRET_KEY não está definido neste serviço.")
    return settings.jwt_secret_key


def _session(request: Request, secret: str) -> Session | None:
    return unseal(request.cookies.get(SESSION_COOKIE), secret)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def _failure(exc: Exception, session: Session | None = None, csrf: str | None = None) -> HTMLResponse:
    """The page for a refusal; anything else is a bug and propagates."""
    if isinstance(exc, Refusal):
        status, reason = exc.status, str(exc)
    elif isinstance(exc, NotFound):
        status, reason = 404, str(exc)
    elif isinstance(exc, Conflict):
        status, reason = 409, str(exc)
    elif isinstance(exc, InvalidInput):
        status, reason = 400, str(exc)
    elif is_connection_error(exc):
        status, reason = 503, "Banco de dados indisponível agora; tente de novo em instantes."
    else:
        raise exc
    operator = session.operator if session else None
    return _page(status, html.error_page(status, reason, operator=operator, csrf=csrf))


async def _form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form (first value of each); 400/413 otherwise."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Refusal(400, "o pedido precisa ser um formulário (application/x-www-form-urlencoded)")
    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise Refusal(400, "formulário malformado") from None
    return {key: values[0] for key, values in fields.items()}


def _reason(form: dict[str, str], *, required: bool) -> str | None:
    motivo = form.get("motivo", "").strip()
    if len(motivo) > MAX_REASON:
        raise Refusal(400, f"o motivo tem mais de {MAX_REASON} caracteres")
    if required and not motivo:
        raise Refusal(400, "o motivo é obrigatório")
    return motivo or None


def _path_id(request: Request, what: str) -> int:
    raw = request.path_params["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise Refusal(404, f"{what} {raw!r} não existe")
    return int(raw)


# ---------------------------------------------------------------- sign-in


def _sign_in_form(secret: str, error: str = "", status: int = 200) -> HTMLResponse:
    nonce = new_nonce()
    response = _page(status, html.sign_in_page(csrf_token(secret, "sign_in", nonce), error))
    response.set_cookie(SIGN_IN_COOKIE, nonce, max_age=SIGN_IN_SECONDS, path="/ops", httponly=True, samesite="strict")
    return response


async def sign_in_page(request: Request) -> Response:
    """GET /ops/entrar: the sign-in form (or straight to /ops when signed in)."""
    try:
        secret = _secret(request)
    except Refusal as exc:
        return _failure(exc)
    if _session(request, secret) is not None:
        return _redirect("/ops")
    return _sign_in_form(secret)


def _token_refusal(reason: str) -> str:
    if "expired" in reason:
        return "Token expirado: gere outro com julia token."
    if "audience" in reason:
        return "Este token não é de operador (audience errada)."
    return f"Token inválido ({reason}): cole o token inteiro gerado por julia token."


async def sign_in(request: Request) -> Response:
    """POST /ops/entrar: check the pasted token; a session cookie until the token expires."""
    try:
        secret = _secret(request)
        form = await _form(request)
        if not csrf_ok(form.get("csrf"), secret, "sign_in", request.cookies.get(SIGN_IN_COOKIE)):
            logger.warning("console sign-in without a valid CSRF token", extra={"action": "console_csrf_refused"})
            return _sign_in_form(secret, BAD_CSRF, status=403)
        try:
            session = session_from_token(form.get("token", ""), secret)
        except Unauthorized as exc:
            logger.warning("console sign-in refused", extra={"action": "console_sign_in_refused", "reason": str(exc)})
            return _sign_in_form(secret, _token_refusal(str(exc)), status=401)
        audit = {"operator": session.operator, "expires_at": session.expires_at}
        await fetch_one(request.state.pool, "console_sign_in", wait=DB_WAIT, **audit)
    except Exception as exc:  # noqa: BLE001 - _failure answers refusals and re-raises the rest
        return _failure(exc)
    logger.info("console sign-in", extra={"action": "console_signed_in", "operator": session.operator})
    response = _redirect("/ops")
    response.set_cookie(
        SESSION_COOKIE,
        seal(session, secret),
        max_age=session.seconds_left(),
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/ops")
    return response


async def sign_out(request: Request) -> Response:
    """POST /ops/sair: end the session (CSRF-checked)."""
    try:
        secret = _secret(request)
        session = _session(request, secret)
        if session is not None:
            form = await _form(request)
            if not csrf_ok(form.get("csrf"), secret, "session", session.sid):
                raise Refusal(403, BAD_CSRF)
            logger.info("console sign-out", extra={"action": "console_signed_out", "operator": session.operator})
    except Exception as exc:  # noqa: BLE001 - _failure answers refusals and re-raises the rest
        return _failure(exc)
    response = _redirect("/ops/entrar")
    response.delete_cookie(SESSION_COOKIE, path="/ops")
    return response


# ---------------------------------------------------------------- pages


def _console_page(active: str, render: Render) -> Callable[[Request], Awaitable[Response]]:
    """A GET page for a signed-in operator; others go to the sign-in form."""

    async def endpoint(request: Request) -> Response:
        session: Session | None = None
        csrf: str | None = None
        try:
            secret = _secret(request)
            session = _session(request, secret)
            if session is None:
                return _redirect("/ops/entrar")
            csrf = csrf_token(secret, "session", session.sid)
            title, body = await render(request, session, csrf)
        except Exception as exc:  # noqa: BLE001 - _failure answers refusals and re-raises the rest
            return _failure(exc, session, csrf)
        notice = html.DONE.get(request.query_params.get("feito", ""), "")
        return _page(200, html.layout(title, body, operator=session.operator, csrf=csrf, active=active, notice=notice))

    endpoint.__name__ = f"console_{render.__name__}"
    return endpoint


async def _value(request: Request, name: str, column: str = "result", /, **params: Any) -> Any:
    row = await fetch_one(request.state.pool, name, wait=DB_WAIT, **params)
    return row[column] if row else None


def _stalled_seconds(request: Request) -> float:
    return request.state.settings.stalled_worker_seconds


async def julia(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    status = await _value(request, "ops_status", "status")
    actions = await _value(request, "console_recent_actions", limit=15)
    return "Julia", html.julia_section(status, actions, csrf)


async def queues(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    depths = await _value(request, "ops_queue_depths")
    jobs = await _value(request, "console_problem_jobs", stalled_seconds=_stalled_seconds(request), limit=LIST_LIMIT)
    return "Filas", html.queues_section(depths, jobs, csrf)


async def conversations(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    query = request.query_params.get("q", "").strip()
    if len(query) > MAX_QUERY:
        raise Refusal(400, f"a busca tem mais de {MAX_QUERY} caracteres")
    found = await _value(request, "console_conversations", query=query or None, limit=LIST_LIMIT)
    return "Conversas", html.conversations_section(query, found)


async def transcript(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    conversation_id = _path_id(request, "a conversa")
    found = await _value(request, "console_transcript", conversation_id=conversation_id)
    if found is None:
        raise Refusal(404, f"a conversa {conversation_id} não existe")
    return f"Conversa #{conversation_id}", html.transcript_section(found, csrf)


async def campaigns(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    return "Campanhas", html.campaigns_section(await _value(request, "console_campaigns", limit=LIST_LIMIT), csrf)


async def numbers(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    return "Números e limites", html.numbers_section(await _value(request, "rate_limit_status", "status"))


async def failures(request: Request, session: Session, csrf: str) -> tuple[str, str]:
    return "Falhas", html.failures_section(await _value(request, "console_failures", limit=LIST_LIMIT))


# ---------------------------------------------------------------- actions

Params = Callable[[Request, dict[str, str]], dict[str, Any]]
# The ids an action's log line carries, under the names other logs use.
LOG_IDS = {"conversation_id": "conversation_id", "id": "campanha_id", "job_id": "job_id"}


def _console_action(action: str, query: str, params: Params, done: str, back: Callable[[Request], str]):
    """A POST action: signed in, CSRF-checked, one audited SQL call, then back to its page."""

    async def endpoint(request: Request) -> Response:
        session: Session | None = None
        try:
            secret = _secret(request)
            session = _session(request, secret)
            if session is None:
                raise Refusal(401, SIGNED_OUT)
            form = await _form(request)
            if not csrf_ok(form.get("csrf"), secret, "session", session.sid):
                logger.warning(
                    "console action without a valid CSRF token",
                    extra={"action": "console_csrf_refused", "operator": session.operator, "path": request.url.path},
                )
                raise Refusal(403, BAD_CSRF)
            values = params(request, form)
            await fetch_one(request.state.pool, query, wait=DB_WAIT, operator=session.operator, **values)
        except Exception as exc:  # noqa: BLE001 - _failure answers refusals and re-raises the rest
            csrf = csrf_token(request.state.settings.jwt_secret_key, "session", session.sid) if session else None
            return _failure(exc, session, csrf)
        ids = {LOG_IDS[k]: v for k, v in values.items() if k in LOG_IDS}
        logger.warning(action, extra={"action": action, "via": "console", "operator": session.operator, **ids})
        return _redirect(f"{back(request)}?feito={done}")

    endpoint.__name__ = f"console_{action}"
    return endpoint


def _julia_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"motivo": _reason(form, required=True)}


def _conversation_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"conversation_id": _path_id(request, "a conversa"), "motivo": _reason(form, required=False)}


def _campaign_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"id": _path_id(request, "a campanha"), "motivo": _reason(form, required=False)}


def _cancel_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    if form.get("confirmar") != "sim":
        raise Refusal(400, "marque a confirmação para cancelar a campanha")
    return _campaign_params(request, form)


def _job_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"job_id": _path_id(request, "o job"), "motivo": _reason(form, required=False)}


def _retry_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {**_job_params(request, form), "stalled_seconds": _stalled_seconds(request)}


def _to(path: str) -> Callable[[Request], str]:
    return lambda request: path


def _to_conversation(request: Request) -> str:
    return f"/ops/conversas/{request.path_params['id']}"


ROUTES: list[BaseRoute] = [
    Route("/ops", _console_page("/ops", julia), methods=["GET"]),
    Route("/ops/entrar", sign_in_page, methods=["GET"]),
    Route("/ops/entrar", sign_in, methods=["POST"]),
    Route("/ops/sair", sign_out, methods=["POST"]),
    Route("/ops/filas", _console_page("/ops/filas", queues), methods=["GET"]),
    Route("/ops/conversas", _console_page("/ops/conversas", conversations), methods=["GET"]),
    Route("/ops/conversas/{id}", _console_page("/ops/conversas", transcript), methods=["GET"]),
    Route("/ops/campanhas", _console_page("/ops/campanhas", campaigns), methods=["GET"]),
    Route("/ops/numeros", _console_page("/ops/numeros", numbers), methods=["GET"]),
    Route("/ops/falhas", _console_page("/ops/falhas", failures), methods=["GET"]),
    Route(
        "/ops/pausar",
        _console_action("julia_paused", "console_pause_julia", _julia_params, "pausada", _to("/ops")),
        methods=["POST"],
    ),
    Route(
        "/ops/retomar",
        _console_action("julia_resumed", "console_resume_julia", _julia_params, "retomada", _to("/ops")),
        methods=["POST"],
    ),
    Route(
        "/ops/conversas/{id}/devolver",
        _console_action(
            "conversation_handed_back", "console_hand_back", _conversation_params, "devolvida", _to_conversation
        ),
        methods=["POST"],
    ),
    Route(
        "/ops/campanhas/{id}/pausar",
        _console_action(
            "campaign_paused", "console_pause_campaign", _campaign_params, "campanha_pausada", _to("/ops/campanhas")
        ),
        methods=["POST"],
    ),
    Route(
        "/ops/campanhas/{id}/cancelar",
        _console_action(
            "campaign_cancelled", "console_cancel_campaign", _cancel_params, "campanha_cancelada", _to("/ops/campanhas")
        ),
        methods=["POST"],
    ),
    Route(
        "/ops/jobs/{id}/retentar",
        _console_action("job_retried", "console_retry_job", _retry_params, "job_retentado", _to("/ops/filas")),
        methods=["POST"],
    ),
    Route(
        "/ops/jobs/{id}/descartar",
        _console_action("job_dismissed", "console_dismiss_job", _job_params, "job_descartado", _to("/ops/filas")),
        methods=["POST"],
    ),
    Mount("/ops/static", app=StaticFiles(directory=Path(__file__).parent / "static"), name="console_static"),
]
