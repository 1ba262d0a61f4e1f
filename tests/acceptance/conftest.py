"""Real `julia` processes (the console script's code, as subprocesses)
against the test database and stand-in servers."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_for
from tests.processes import stop_process

JULIA = [sys.executable, "-m", "app.ops.cli"]


# Ports for the servers the tests start, below the kernel's ephemeral range: a port the
# kernel hands out (bind to port 0) can be given to another process's outgoing connection
# or stand-in before the `julia api` that was told it binds it ("address already in use",
# seen with four xdist workers). Each xdist worker draws from its own block.
PORT_BLOCK = 400
FIRST_PORT = 15000
_next_port = itertools.count()


def free_port() -> int:
    """A port free on 127.0.0.1 now, that no other worker or outgoing connection is handed."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    base = FIRST_PORT + worker * PORT_BLOCK
    if base + PORT_BLOCK <= ephemeral_low:
        for _ in range(PORT_BLOCK):
            port = base + next(_next_port) % PORT_BLOCK
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind(("127.0.0.1", port))
                return port
    with socket.socket() as s:  # no room below the ephemeral range: the kernel's choice
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
