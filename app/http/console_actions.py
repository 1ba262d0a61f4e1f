"""The ops console's sign-in and actions: GET/POST /ops/entrar (paste an
operator token from `julia token`; the session cookie, signed, HttpOnly and
SameSite=Strict, lasts as long as the token), POST /ops/sair, and every
POST that changes something — each signed in, CSRF-checked, one audited SQL
function under the operator's name (db/console.sql), logged with its
`action`, then back to its page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from app.core.errors import Unauthorized
from app.http import console_html as html
from app.http.auth import Refusal
from app.http.console_requests import (
    BAD_CSRF,
    DB_WAIT,
    SIGNED_OUT,
    console_secret,
    current_session,
    form_reason,
    page,
    path_id,
    read_form,
    redirect,
    refusal_page,
    secure_request,
    stalled_seconds,
)
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
)
from app.store.pool import fetch_one

logger = logging.getLogger(__name__)


def _sign_in_form(secret: str, error: str = "", status: int = 200) -> HTMLResponse:
    nonce = new_nonce()
    response = page(status, html.sign_in_page(csrf_token(secret, "sign_in", nonce), error))
    response.set_cookie(SIGN_IN_COOKIE, nonce, max_age=SIGN_IN_SECONDS, path="/ops", httponly=True, samesite="strict")
    return response


async def sign_in_page(request: Request) -> Response:
    """GET /ops/entrar: the sign-in form (or straight to /ops when signed in)."""
    try:
        secret = console_secret(request)
    except Refusal as exc:
        return refusal_page(exc)
    if current_session(request, secret) is not None:
        return redirect("/ops")
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
        secret = console_secret(request)
        form = await read_form(request)
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
    except Exception as exc:  # noqa: BLE001 - refusal_page answers refusals and re-raises the rest
        return refusal_page(exc)
    logger.info("console sign-in", extra={"action": "console_signed_in", "operator": session.operator})
    response = redirect("/ops")
    response.set_cookie(
        SESSION_COOKIE,
        seal(session, secret),
        max_age=session.seconds_left(),
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=secure_request(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/ops")
    return response


async def sign_out(request: Request) -> Response:
    """POST /ops/sair: end the session (CSRF-checked)."""
    try:
        secret = console_secret(request)
        session = current_session(request, secret)
        if session is not None:
            form = await read_form(request)
            if not csrf_ok(form.get("csrf"), secret, "session", session.sid):
                raise Refusal(403, BAD_CSRF)
            logger.info("console sign-out", extra={"action": "console_signed_out", "operator": session.operator})
    except Exception as exc:  # noqa: BLE001 - refusal_page answers refusals and re-raises the rest
        return refusal_page(exc)
    response = redirect("/ops/entrar")
    response.delete_cookie(SESSION_COOKIE, path="/ops")
    return response


Params = Callable[[Request, dict[str, str]], dict[str, Any]]
# The ids an action's log line carries, under the names other logs use.
LOG_IDS = {"conversation_id": "conversation_id", "id": "campanha_id", "job_id": "job_id"}


def _console_action(action: str, query: str, params: Params, done: str, back: Callable[[Request], str]):
    """A POST action: signed in, CSRF-checked, one audited SQL call, then back to its page."""

    async def endpoint(request: Request) -> Response:
        session: Session | None = None
        try:
            secret = console_secret(request)
            session = current_session(request, secret)
            if session is None:
                raise Refusal(401, SIGNED_OUT)
            form = await read_form(request)
            if not csrf_ok(form.get("csrf"), secret, "session", session.sid):
                logger.warning(
                    "console action without a valid CSRF token",
                    extra={"action": "console_csrf_refused", "operator": session.operator, "path": request.url.path},
                )
                raise Refusal(403, BAD_CSRF)
            values = params(request, form)
            await fetch_one(request.state.pool, query, wait=DB_WAIT, operator=session.operator, **values)
        except Exception as exc:  # noqa: BLE001 - refusal_page answers refusals and re-raises the rest
            csrf = csrf_token(request.state.settings.jwt_secret_key, "session", session.sid) if session else None
            return refusal_page(exc, session, csrf)
        ids = {LOG_IDS[k]: v for k, v in values.items() if k in LOG_IDS}
        logger.warning(action, extra={"action": action, "via": "console", "operator": session.operator, **ids})
        return redirect(f"{back(request)}?feito={done}")

    endpoint.__name__ = f"console_{action}"
    return endpoint


def _julia_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"motivo": form_reason(form, required=True)}


def _conversation_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"conversation_id": path_id(request, "a conversa"), "motivo": form_reason(form, required=False)}


def _campaign_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"id": path_id(request, "a campanha"), "motivo": form_reason(form, required=False)}


def _cancel_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    if form.get("confirmar") != "sim":
        raise Refusal(400, "marque a confirmação para cancelar a campanha")
    return _campaign_params(request, form)


def _job_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {"job_id": path_id(request, "o job"), "motivo": form_reason(form, required=False)}


def _retry_params(request: Request, form: dict[str, str]) -> dict[str, Any]:
    return {**_job_params(request, form), "stalled_seconds": stalled_seconds(request)}


def _to(path: str) -> Callable[[Request], str]:
    return lambda request: path


def _to_conversation(request: Request) -> str:
    return f"/ops/conversas/{request.path_params['id']}"


def _action_route(path: str, action: str, query: str, params: Params, done: str, back: Callable[[Request], str]):
    """The POST route of one console action (see _console_action)."""
    return Route(path, _console_action(action, query, params, done, back), methods=["POST"])


ROUTES: list[BaseRoute] = [
    Route("/ops/entrar", sign_in_page, methods=["GET"]),
    Route("/ops/entrar", sign_in, methods=["POST"]),
    Route("/ops/sair", sign_out, methods=["POST"]),
    _action_route("/ops/pausar", "julia_paused", "console_pause_julia", _julia_params, "pausada", _to("/ops")),
    _action_route("/ops/retomar", "julia_resumed", "console_resume_julia", _julia_params, "retomada", _to("/ops")),
    _action_route(
        "/ops/conversas/{id}/devolver",
        "conversation_handed_back",
        "console_hand_back",
        _conversation_params,
        "devolvida",
        _to_conversation,
    ),
    _action_route(
        "/ops/campanhas/{id}/pausar",
        "campaign_paused",
        "console_pause_campaign",
        _campaign_params,
        "campanha_pausada",
        _to("/ops/campanhas"),
    ),
    _action_route(
        "/ops/campanhas/{id}/cancelar",
        "campaign_cancelled",
        "console_cancel_campaign",
        _cancel_params,
        "campanha_cancelada",
        _to("/ops/campanhas"),
    ),
    _action_route(
        "/ops/jobs/{id}/retentar", "job_retried", "console_retry_job", _retry_params, "job_retentado", _to("/ops/filas")
    ),
    _action_route(
        "/ops/jobs/{id}/descartar",
        "job_dismissed",
        "console_dismiss_job",
        _job_params,
        "job_descartado",
        _to("/ops/filas"),
    ),
]
