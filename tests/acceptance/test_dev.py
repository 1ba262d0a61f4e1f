"""`julia dev` as a newcomer meets it: a fresh directory, no settings at all.

One real `julia dev` process (embedded PostgreSQL in a temporary .julia/,
stand-ins for WhatsApp and Claude) and the CLI beside it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import JULIA, free_port
from tests.conftest import wait_for
from tests.processes import stop_process

# One `julia dev` for the module: its tests run on one xdist worker (tests/conftest.py,
# SHARED_PROCESS_FILES).

# What a newcomer's shell does not have: everything Julia reads.
NOT_SET = ("DATABASE_URL", "APP_ENV", "EVOLUTION_", "ANTHROPIC_", "JWT_SECRET_KEY", "VOYAGE_", "CHATWOOT_", "SLACK_")


def newcomer_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(NOT_SET)}


class Dev:
    def __init__(self, cwd: Path, port: int) -> None:
        self.out = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*JULIA, "dev", "--port", str(port)],
            cwd=cwd,
            env=newcomer_env(),
            stdout=self.out,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def output(self) -> str:
        self.out.seek(0)
        return self.out.read()

    def stop(self) -> str:
        stop_process(self.proc, signal.SIGINT, timeout=30)
        output = self.output()
        self.out.close()
        return output


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("newcomer")
    port = free_port()
    process = Dev(cwd, port)
    try:
        wait_for(lambda: "Julia is running." in process.output() or process.proc.poll() is not None, timeout=120)
        assert process.proc.poll() is None, process.output()
        yield process, cwd, f"http://127.0.0.1:{port}", port
    finally:
        process.stop()


def test_ready_is_printed_only_once_the_port_answers(dev):
    process, _, base, _ = dev
    # No wait: the banner came, so the port must answer now.
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    banner = process.output()
    assert f"{base}/dev/chat" in banner and f"{base}/ops" in banner
    assert re.search(r"Database:\s+postgresql://", banner)


def test_the_printed_token_opens_the_ops_api(dev):
    process, _, base, _ = dev
    token = re.search(r"Ops token \(12 h\):\s+(\S+)", process.output()).group(1)
    status = httpx.get(f"{base}/ops/status", headers={"authorization": f"Bearer {token}"}, timeout=5)
    assert status.status_code == 200 and "julia" in status.json()
    assert httpx.get(f"{base}/ops/status", timeout=5).status_code == 401


def test_root_leads_to_the_chat_and_bad_bodies_get_a_reason(dev):
    _, _, base, _ = dev
    home = httpx.get(base, timeout=5)
    assert home.status_code == 307 and home.headers["location"] == "/dev/chat"
    bad = httpx.post(f"{base}/dev/chat/send", content=b"not json", timeout=5)
    assert bad.status_code == 400 and "JSON object" in bad.json()["error"]


def test_asking_for_a_person_shows_a_handoff_in_the_chat(dev):
    _, _, base, _ = dev
    phone = "5531900001111"
    sent = httpx.post(
        f"{base}/dev/chat/send",
        json={"phone": phone, "name": "Ana", "text": "quero falar com um atendente"},
        timeout=10,
    )
    assert sent.status_code == 200, sent.text

    def answered() -> dict | None:
        state = httpx.get(f"{base}/dev/chat/messages", params={"phone": phone}, timeout=5).json()
        return state if any(m["autor"] == "julia" for m in state["messages"]) else None

    answered = wait_for(answered, timeout=60)
    julia = [m["texto"] for m in answered["messages"] if m["autor"] == "julia"]
    assert len(julia) == 1 and "equipe" in julia[0] and "conferi" not in julia[0]
    assert answered["silence"] == "handoff" and answered["opt_out"] is False


def test_cli_commands_find_the_dev_database(dev):
    _, cwd, _, _ = dev
    status = subprocess.run(
        [*JULIA, "status"], cwd=cwd, env=newcomer_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert status.returncode == 0, status.stderr
    assert "using the julia dev database" in status.stderr


def test_julia_token_beside_julia_dev_mints_a_token_the_api_accepts(dev):
    _, cwd, base, _ = dev
    minted = subprocess.run(
        [*JULIA, "token", "--subject", "ana"], cwd=cwd, env=newcomer_env(), capture_output=True, text=True, timeout=60
    )
    assert minted.returncode == 0, minted.stderr
    headers = {"authorization": f"Bearer {minted.stdout.strip()}"}
    assert httpx.get(f"{base}/ops/status", headers=headers, timeout=5).status_code == 200


def test_a_taken_port_says_so_and_suggests_another(dev):
    _, cwd, _, port = dev
    second = subprocess.run(
        [*JULIA, "dev", "--port", str(port)],
        cwd=cwd,
        env=newcomer_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert f"port {port} is already in use" in second.stderr and f"--port {port + 1}" in second.stderr
    assert "starting embedded PostgreSQL" not in second.stdout  # it stops before starting anything


# README commands that start a long-running server of their own: they are the
# production processes ("Running the parts separately"), not run beside julia dev.
SERVERS = {("api",), ("worker",), ("run",), ("dev",)}
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[list[str]]:
    """Every `uv run julia ...` line of README's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:3] == ["uv", "run", "julia"]:
            commands.append(words[3:])
    return commands


def test_every_readme_command_works_as_written_beside_julia_dev(dev):
    _, cwd, _, _ = dev
    (cwd / "db").symlink_to(README.parent / "db")  # `julia db import db/demo`, as from a checkout
    commands = [c for c in readme_commands() if tuple(c[:1]) not in SERVERS]
    assert len(commands) > 20  # the README's sections, not an empty parse
    failed = []
    for args in commands:
        result = subprocess.run(
            [*JULIA, *args], cwd=cwd, env=newcomer_env(), capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0 or "Traceback" in result.stderr:
            failed.append((" ".join(args), result.returncode, result.stderr.strip()[-300:]))
    assert failed == []
