"""The ops console in a real headless Chromium (selenium) against a real
`julia api` process: sign in with an operator token, pause and resume,
hand a conversation back, cancel a campaign — each checked in SQL — and the
refusals (wrong, expired or foreign tokens, a form without its CSRF token).

Screenshots of every step go to test-artifacts/console/ (gitignored).
Chromium and its driver are Debian's `chromium` and `chromium-driver`
(.ci/run installs them, and sets JULIA_BROWSER_TESTS=required so that a
missing browser fails there); elsewhere, without them, these tests are
skipped, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from app.core.tokens import OPS_AUDIENCE, mint_handoff_token, mint_ops_token
from tests.acceptance.conftest import start_api

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
SECRET = "console-test-jwt-secret-of-some-length"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _major(command: str) -> str | None:
    try:
        out = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"(\d+)\.\d+\.\d+", out)
    return found.group(1) if found else None


def find_browser() -> tuple[str | None, str | None, str]:
    """(browser, driver, why not): the first Chromium-family browser whose
    major version is chromedriver's (a mismatched pair cannot start a session)."""
    driver = shutil.which("chromedriver")
    if driver is None:
        return None, None, "chromedriver is not installed"
    wanted = _major(driver)
    for name in BROWSERS:
        if (path := shutil.which(name)) and _major(path) == wanted:
            return path, driver, ""
    return None, driver, f"no Chromium {wanted} (the version of chromedriver) is installed"


CHROMIUM, CHROMEDRIVER, MISSING = find_browser()
REQUIRED = os.environ.get("JULIA_BROWSER_TESTS") == "required"

pytestmark = pytest.mark.skipif(
    bool(MISSING) and not REQUIRED,
    reason=f"headless Chromium unavailable: {MISSING} (Debian: apt-get install chromium chromium-driver)",
)


@pytest.fixture
def console(spawn, test_env) -> str:
    """A running `julia api` with the ops console on (JWT_SECRET_KEY set); its base URL."""
    return start_api(spawn, {**test_env, "JWT_SECRET_KEY": SECRET})[1]


@pytest.fixture
def browser(request) -> Iterator[object]:
    """A headless Chromium; a failed test leaves a screenshot of where it stood."""
    if MISSING:
        pytest.fail(f"JULIA_BROWSER_TESTS=required, but {MISSING}")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1100",
    ):
        options.add_argument(arg)
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium look for a driver on the network
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    failed_before = request.session.testsfailed
    try:
        yield driver
    finally:
        if request.session.testsfailed > failed_before:
            shot(driver, request.node.name, "failure")
        driver.quit()


@pytest.fixture
def snap(request, browser):
    """snap(name): a screenshot of this test's page now."""
    return lambda name: shot(browser, request.node.name, name)


def shot(driver, test: str, name: str) -> Path:
    """Save a screenshot of the page as a test artifact and print where."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', test)}-{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def find(driver, css: str, timeout: float = 10):
    """The element matching `css`, waiting for it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, timeout).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def click_through(driver, css: str, timeout: float = 10) -> None:
    """Click what navigates (a link, a form's button) and wait until the next page replaced this one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    find(driver, css).click()

    def replaced(_driver) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:  # stale, or detached mid-navigation (Chromium says either)
            return True
        return False

    WebDriverWait(driver, timeout).until(replaced)


def sign_in(driver, url: str, token: str) -> None:
    driver.get(f"{url}/ops")
    assert driver.current_url.endswith("/ops/entrar"), "an anonymous visitor is sent to the sign-in form"
    find(driver, "#token").send_keys(token)
    click_through(driver, "#entrar")


def signed_in(driver, url: str, operator: str = "ana") -> None:
    sign_in(driver, url, mint_ops_token(SECRET, operator, minutes=30))
    assert find(driver, "#operador").text == operator
    assert driver.current_url.endswith("/ops")


def newest_status(db) -> dict:
    return db.execute("SELECT status, motivo, alterado_via FROM julia_status ORDER BY id DESC LIMIT 1").fetchone()


def audit(db) -> list[tuple[str, str, str | None, str | None]]:
    rows = db.execute("SELECT operator, action, target, motivo FROM console_actions ORDER BY id").fetchall()
    return [(r["operator"], r["action"], r["target"], r["motivo"]) for r in rows]


def test_sign_in_pause_and_resume(console, browser, snap, db):
    sign_in(browser, console, mint_ops_token(SECRET, "ana", minutes=30))
    assert find(browser, "#operador").text == "ana"
    cookie = browser.get_cookie("julia_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ops"
    assert abs(cookie["expiry"] - (time.time() + 30 * 60)) < 120, "the session lasts as long as the token"
    assert find(browser, "#estado").text == "Ativa"
    snap("signed-in")

    find(browser, "#motivo").send_keys("manutenção do Evolution")
    click_through(browser, "#pausar")
    assert find(browser, "#estado").text == "Pausada"
    assert "pausada" in find(browser, "#aviso").text
    snap("paused")
    assert newest_status(db) == {"status": "pausado", "motivo": "manutenção do Evolution", "alterado_via": "api"}

    find(browser, "#motivo").send_keys("Evolution de volta")
    click_through(browser, "#retomar")
    assert find(browser, "#estado").text == "Ativa"
    snap("resumed")
    assert newest_status(db) == {"status": "ativo", "motivo": "Evolution de volta", "alterado_via": "api"}
    assert audit(db) == [
        ("ana", "signed_in", None, None),
        ("ana", "julia_paused", "julia", "manutenção do Evolution"),
        ("ana", "julia_resumed", "julia", "Evolution de volta"),
    ]

    # Signing out ends the session: the console asks for a token again.
    click_through(browser, "#sair")
    find(browser, "#token")
    browser.get(f"{console}/ops")
    assert browser.current_url.endswith("/ops/entrar")


def handed_off_conversation(db) -> int:
    cliente = db.execute(
        "INSERT INTO clientes (telefone, nome) VALUES ('5531988887777', 'Dra. Marta Souza') RETURNING id"
    )
    cliente_id = cliente.fetchone()["id"]
    conversation_id = db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, '5531988887777@s.whatsapp.net') RETURNING id",
        (cliente_id,),
    ).fetchone()["id"]
    for i, (direcao, autor, texto) in enumerate(
        [
            ("entrada", "medico", "Oi, tem plantão de pediatria sábado?"),
            ("saida", "julia", "Oi Dra. Marta! Tenho dois, quer que eu mostre?"),
            ("entrada", "medico", "Prefiro falar com uma pessoa, por favor"),
        ]
    ):
        db.execute(
            "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (conversation_id, cliente_id, f"console-{i}", direcao, autor, texto),
        )
    db.execute("SELECT transferir_para_humano(%s, 'pediu uma pessoa')", (conversation_id,))
    return conversation_id


def test_hand_a_conversation_back_to_julia(console, browser, snap, db):
    conversation_id = handed_off_conversation(db)
    signed_in(browser, console)
    click_through(browser, "nav a[href='/ops/conversas']")
    find(browser, "#busca").send_keys("marta")
    click_through(browser, "#buscar")
    click_through(browser, f"#conversa-{conversation_id}")
    assert find(browser, "#dono").text == "Humano (handoff)"
    assert "Prefiro falar com uma pessoa" in browser.page_source
    snap("handed-off")

    find(browser, "#motivo").send_keys("dúvida resolvida por telefone")
    click_through(browser, "#devolver")
    assert find(browser, "#dono").text == "Julia"
    snap("handed-back")
    row = db.execute("SELECT handoff_ativo FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    assert row == {"handoff_ativo": False}
    assert audit(db)[-1] == (
        "ana",
        "conversation_handed_back",
        f"conversation:{conversation_id}",
        "dúvida resolvida por telefone",
    )
    # The search also finds her by phone, in any form an operator types it.
    browser.get(f"{console}/ops/conversas?q=(31)%2098888-7777")
    find(browser, f"#conversa-{conversation_id}")


def test_cancel_a_campaign(console, browser, snap, db):
    for phone, nome in (("5511911110001", "Dr. Caio"), ("5511911110002", "Dra. Bia")):
        db.execute("INSERT INTO clientes (telefone, nome) VALUES (%s, %s)", (phone, nome))
    campaign_id = db.execute(
        "SELECT create_campaign('Plantões de dezembro', 'Oi {primeiro_nome}!', '{}', NULL, NULL) AS id"
    ).fetchone()["id"]
    assert db.execute("SELECT start_campaign(%s) AS n", (campaign_id,)).fetchone()["n"] == 2
    signed_in(browser, console)
    click_through(browser, "nav a[href='/ops/campanhas']")
    assert find(browser, f"#status-campanha-{campaign_id}").text == "ativa"
    snap("active")

    find(browser, f"#motivo-cancelar-{campaign_id}").send_keys("público errado")
    find(browser, f"#confirmar-{campaign_id}").click()
    click_through(browser, f"#cancelar-campanha-{campaign_id}")
    assert find(browser, f"#status-campanha-{campaign_id}").text == "cancelada"
    assert "campaign_cancelled: 2" in find(browser, f"#campanha-{campaign_id}").text
    snap("cancelled")
    assert db.execute("SELECT status FROM campanhas WHERE id = %s", (campaign_id,)).fetchone()["status"] == "cancelada"
    rows = db.execute("SELECT state, refusal FROM outbox WHERE campanha_id = %s", (campaign_id,)).fetchall()
    assert rows == [{"state": "failed", "refusal": "campaign_cancelled"}] * 2
    assert audit(db)[-1] == ("ana", "campaign_cancelled", f"campaign:{campaign_id}", "público errado")


def test_wrong_expired_and_foreign_tokens_are_refused(console, browser, snap, db):
    expired = jwt.encode({"sub": "ana", "aud": OPS_AUDIENCE, "exp": int(time.time()) - 60}, SECRET, algorithm="HS256")
    forged = mint_ops_token("another-secret-entirely-different", "ana", minutes=30)
    cases = [
        ("garbage", "not-a-token", "Token inválido"),
        ("expired", expired, "Token expirado"),
        ("forged", forged, "Token inválido"),
        ("handoff", mint_handoff_token(SECRET, 1), "não é de operador"),
    ]
    for name, token, message in cases:
        sign_in(browser, console, token)
        assert message in find(browser, "#erro").text, name
        assert browser.get_cookie("julia_console") is None, name
        snap(name)
    browser.get(f"{console}/ops/filas")
    assert browser.current_url.endswith("/ops/entrar")
    assert audit(db) == []


def test_a_form_without_its_csrf_token_is_refused(console, browser, snap, db):
    signed_in(browser, console)
    find(browser, "#motivo").send_keys("sem csrf")
    browser.execute_script("document.querySelector('form[action=\"/ops/pausar\"] input[name=csrf]').remove()")
    click_through(browser, "#pausar")
    assert "CSRF" in find(browser, "#erro").text
    snap("missing-csrf")

    browser.get(f"{console}/ops")
    find(browser, "#motivo").send_keys("csrf de outra sessão")
    browser.execute_script("document.querySelector('form[action=\"/ops/pausar\"] input[name=csrf]').value = 'forged'")
    click_through(browser, "#pausar")
    assert "CSRF" in find(browser, "#erro").text
    assert db.execute("SELECT (julia_state()).status").fetchone()["status"] == "ativo"
    assert audit(db) == [("ana", "signed_in", None, None)]


def test_every_section_renders_with_its_data(console, browser, snap, db):
    conversation_id = handed_off_conversation(db)
    job_id = db.execute(
        "SELECT defer_job('reply_to_conversation', jsonb_build_object('conversation_id', %s::bigint), 'replies') AS id",
        (conversation_id,),
    ).fetchone()["id"]
    db.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (job_id,))
    db.execute("UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (job_id,))
    db.execute(
        "SELECT record_job_failure('reply_to_conversation', %s, %s, NULL, 'permanent', 'Anthropic said 400')",
        (job_id, conversation_id),
    )
    db.execute("INSERT INTO inbound_failures (msg_id, read_ct, error, message) VALUES (42, 5, 'bad body', '{}')")
    db.execute("SELECT add_number('julia-console', '5511900000000', 20, 100, false, 'console test', 'manual')")
    signed_in(browser, console)

    click_through(browser, "nav a[href='/ops/filas']")
    find(browser, "#inbound-depth")
    snap("queues")
    click_through(browser, f"#retry-{job_id}")
    assert "rodar de novo" in find(browser, "#aviso").text
    assert db.execute("SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone() == {
        "status": "todo"
    }

    click_through(browser, "nav a[href='/ops/numeros']")
    find(browser, "#hora-enviadas")
    assert "julia-console" in browser.page_source
    snap("numbers")

    click_through(browser, "nav a[href='/ops/falhas']")
    assert "Anthropic said 400" in browser.page_source and "bad body" in browser.page_source
    snap("failures")

    # A conversation that does not exist is a clear 404 page, never a 500.
    browser.get(f"{console}/ops/conversas/99999999999999999999")
    assert "não existe" in find(browser, "#erro").text
    assert [a for _, a, _, _ in audit(db)] == ["signed_in", "job_retried"]
