"""Real `julia` processes (the console script's code, as subprocesses)
against the test database and stand-in servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import wait_for
from tests.processes import stop_process

JULIA = [sys.executable, "-m", "app.ops.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_julia(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a julia command to completion."""
    return subprocess.run(
        [*JULIA, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False
    )


class Process:
    """A julia subprocess whose output goes to a file (a pipe could fill and block it)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*JULIA, *args], env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )

    def stop(self) -> str:
        """Stop (SIGTERM, then SIGKILL) and return what the process printed."""
        stop_process(self.proc)
        if self.log.closed:
            return ""
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        return output


@pytest.fixture
def spawn(test_env: dict[str, str]) -> Iterator[Callable[..., Process]]:
    """Start julia subprocesses; all are stopped after the test, before its
    database and stand-ins go away (hence the dependency on test_env)."""
    started: list[Process] = []

    def start(args: list[str], env: dict[str, str]) -> Process:
        process = Process(args, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def start_api(spawn: Callable[..., Process], env: dict[str, str]) -> tuple[Process, str]:
    """Spawn `julia api` on a free port and wait until /health answers; (process, base URL)."""
    port = free_port()
    process = spawn(["api", "--host", "127.0.0.1", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.proc.poll() is None, process.stop()
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout=30, interval=0.1)
    return process, url


@pytest.fixture
def api_url(spawn, test_env) -> str:
    """A running `julia api` on a free port; waits until /health answers."""
    return start_api(spawn, test_env)[1]
