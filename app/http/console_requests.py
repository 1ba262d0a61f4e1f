"""What every ops-console request goes through (app/http/console*.py):
the console's switch (JWT_SECRET_KEY), the signed-in session, urlencoded
forms with limits, ids from the path, security headers, and the HTML page
that answers a refusal with its 4xx (503 when the database is away) —
anything else is a bug and propagates.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from app.core.config import Settings
from app.core.errors import Conflict, InvalidInput, NotFound
from app.http import console_html as html
from app.http.auth import Refusal, read_body
from app.http.console_session import SESSION_COOKIE, Session, unseal
from app.store.errors import is_connection_error

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


def page(status: int, body: str) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def console_secret(request: Request) -> str:
    settings: Settings = request.state.settings
    if not settings.jwt_secret_key:
        raise Refusal(503, "Console desligado: JWT_SECRET_KEY não está definido neste serviço.")
    return settings.jwt_secret_key


def current_session(request: Request, secret: str) -> Session | None:
    return unseal(request.cookies.get(SESSION_COOKIE), secret)


def secure_request(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def refusal_page(exc: Exception, session: Session | None = None, csrf: str | None = None) -> HTMLResponse:
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
    return page(status, html.error_page(status, reason, operator=operator, csrf=csrf))


async def read_form(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form (first value of each); 400/413 otherwise."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise Refusal(400, "o pedido precisa ser um formulário (application/x-www-form-urlencoded)")
    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise Refusal(400, "formulário malformado") from None
    return {key: values[0] for key, values in fields.items()}


def form_reason(form: dict[str, str], *, required: bool) -> str | None:
    motivo = form.get("motivo", "").strip()
    if len(motivo) > MAX_REASON:
        raise Refusal(400, f"o motivo tem mais de {MAX_REASON} caracteres")
    if required and not motivo:
        raise Refusal(400, "o motivo é obrigatório")
    return motivo or None


def path_id(request: Request, what: str) -> int:
    raw = request.path_params["id"]
    if not raw.isdecimal() or len(raw) > 18:
        raise Refusal(404, f"{what} {raw!r} não existe")
    return int(raw)


def stalled_seconds(request: Request) -> float:
    return request.state.settings.stalled_worker_seconds
