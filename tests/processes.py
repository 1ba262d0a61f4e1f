"""Stopping the subprocesses tests start (julia api, worker, dev)."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> None:
    """Send `sig` to a still running process, wait `timeout` seconds, then SIGKILL it."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
