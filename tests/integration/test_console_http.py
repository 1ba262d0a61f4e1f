"""The ops console over HTTP, in process (the browser tests drive the same
pages in Chromium): every page answers for a signed-in operator, and every
refusal is a clear HTML page with a 4xx (503 when the console is off)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.core.config import load_settings
from app.core.tokens import mint_ops_token
from app.http.app import create_app
from tests.acceptance.test_console import handed_off_conversation

SECRET = "console-http-test-secret-long-enough"


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


@pytest.fixture
def client(test_env) -> Iterator[TestClient]:
    app = create_app(load_settings("api", {**test_env, "JWT_SECRET_KEY": SECRET}))
    with TestClient(app, follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, operator: str = "ana") -> str:
    """Sign in; the CSRF token of the session's forms."""
    csrf = csrf_of(client.get("/ops/entrar").text)
    response = client.post("/ops/entrar", data={"csrf": csrf, "token": mint_ops_token(SECRET, operator)})
    assert response.status_code == 303 and response.headers["location"] == "/ops"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ops" in cookie
    return csrf_of(client.get("/ops").text)


def test_every_page_answers_for_a_signed_in_operator(client, db):
    conversation_id = handed_off_conversation(db)
    sign_in(client)
    for path in (
        "/ops",
        "/ops/filas",
        "/ops/conversas",
        "/ops/conversas?q=marta",
        f"/ops/conversas/{conversation_id}",
        "/ops/campanhas",
        "/ops/numeros",
        "/ops/falhas",
        "/ops/static/console.css",
    ):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text)
    page = client.get("/ops")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_anonymous_visitors_are_sent_to_sign_in_and_actions_refused(client, db):
    assert client.get("/ops/filas").headers["location"] == "/ops/entrar"
    response = client.post("/ops/pausar", data={"csrf": "x", "motivo": "x"})
    assert response.status_code == 401 and "entre de novo" in response.text
    assert db.execute("SELECT count(*) AS n FROM console_actions").fetchone()["n"] == 0


def test_sign_in_needs_the_forms_csrf_token(client):
    client.get("/ops/entrar")
    response = client.post("/ops/entrar", data={"token": mint_ops_token(SECRET, "ana")})
    assert response.status_code == 403 and "CSRF" in response.text
    assert "julia_console=" not in response.headers.get("set-cookie", "")


def test_refusals_are_clear_4xx_pages(client, db):
    csrf = sign_in(client)
    cases = [
        ("/ops/pausar", {"csrf": csrf, "motivo": " "}, 400, "motivo é obrigatório"),
        ("/ops/pausar", {"csrf": csrf, "motivo": "x" * 501}, 400, "mais de 500"),
        ("/ops/retomar", {"csrf": csrf, "motivo": "já ativa"}, 409, "already active"),
        ("/ops/conversas/123456789/devolver", {"csrf": csrf}, 404, "not found"),
        ("/ops/conversas/99999999999999999999/devolver", {"csrf": csrf}, 404, "não existe"),
        ("/ops/campanhas/1/cancelar", {"csrf": csrf}, 400, "confirmação"),
        ("/ops/campanhas/1/cancelar", {"csrf": csrf, "confirmar": "sim"}, 404, "not found"),
        ("/ops/jobs/abc/retentar", {"csrf": csrf}, 404, "não existe"),
        ("/ops/jobs/1/descartar", {"csrf": csrf}, 404, "not found"),
        ("/ops/pausar", {"motivo": "sem csrf"}, 403, "CSRF"),
    ]
    for path, data, status, text in cases:
        response = client.post(path, data=data)
        assert (response.status_code, text in response.text) == (status, True), (path, response.text)
        assert response.headers["content-type"].startswith("text/html")
    response = client.post("/ops/pausar", content=b'{"motivo": "json"}', headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert client.get("/ops/conversas/424242").status_code == 404
    assert client.get("/ops/conversas?q=" + "9" * 101).status_code == 400
    assert db.execute("SELECT count(*) AS n FROM console_actions WHERE action <> 'signed_in'").fetchone()["n"] == 0


def test_what_doctors_write_is_escaped(client, db):
    db.execute("INSERT INTO clientes (telefone, nome) VALUES ('5511922223333', '<script>alert(1)</script>')")
    db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid) SELECT id, '5511922223333@s.whatsapp.net' FROM clientes"
    )
    sign_in(client)
    page = client.get("/ops/conversas").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_console_is_off_without_a_jwt_secret(test_env):
    with TestClient(create_app(load_settings("api", test_env)), follow_redirects=False) as c:
        for response in (c.get("/ops"), c.get("/ops/entrar"), c.post("/ops/pausar", data={"motivo": "x"})):
            assert response.status_code == 503 and "JWT_SECRET_KEY" in response.text
