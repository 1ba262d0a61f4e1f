"""Fault runs against real `julia api` + `julia worker` processes.

Doctors write numbered messages ("m<doctor>.<n>"); the Claude stand-in's
brain answers with the numbers it was asked to answer ("R m3.1 m3.2"), so
the texts Evolution received tell exactly which doctor message got which
answer. While the messages flow the run kills the worker (SIGKILL) at random
moments and/or stops Postgres; the sender posts each message until it is
acknowledged, like Evolution retrying. The report counts what the
guarantees forbid: messages acknowledged but not stored (lost), doctor
messages never answered, answered more than once, texts sent twice.
"""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from tests import payloads
from tests.processes import stop_process

JULIA = [sys.executable, "-m", "app.ops.cli"]
TOKEN = re.compile(r"m\d+\.\d+")


def token_brain(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """A Claude answer naming the doctor messages of the last user turn."""
    last = next((m for m in reversed(body["messages"]) if m.get("role") == "user"), {})
    content = last.get("content")
    text = content if isinstance(content, str) else " ".join(str(b.get("text", "")) for b in content or [])
    tokens = TOKEN.findall(text)
    return [{"type": "text", "text": "R " + " ".join(tokens) if tokens else "R"}], "end_turn"


class JuliaProcess:
    """A julia subprocess whose output goes to a temp file."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*JULIA, *args], env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> str:
        stop_process(self.proc)
        out = self.output()
        self.log.close()
        return out


@dataclass
class Message:
    doctor: int
    phone: str
    token: str
    body: dict[str, Any]
    acked: bool = False
    statuses: list[int] = field(default_factory=list)


def make_messages(doctors: int, messages: int, seed: int) -> list[Message]:
    """`messages` numbered messages from `doctors` doctors, in a random interleaving."""
    rng = random.Random(seed)
    per_doctor: collections.Counter[int] = collections.Counter()
    out = []
    for i in range(messages):
        d = i % doctors if i < doctors else rng.randrange(doctors)  # every doctor writes at least once
        per_doctor[d] += 1
        phone = f"55119{70000000 + d:08d}"
        token = f"m{d}.{per_doctor[d]}"
        out.append(Message(d, phone, token, payloads.upsert(text=token, phone=phone, push_name=f"Dr. {d}")))
    rng.shuffle(out)
    # Each doctor's messages keep their order.
    by_doctor: dict[int, list[Message]] = collections.defaultdict(list)
    for m in sorted(out, key=lambda m: (m.doctor, int(m.token.split(".")[1]))):
        by_doctor[m.doctor].append(m)
    return [by_doctor[m.doctor].pop(0) for m in out]


class Sender(threading.Thread):
    """Posts each message until acknowledged (2xx), pacing `interval` seconds apart;
    records every status and any 5xx other than 503."""

    def __init__(self, api_url: str, secret: str, messages: list[Message], interval: float, deadline: float) -> None:
        super().__init__(name="chaos-sender", daemon=True)
        self.api_url, self.secret, self.messages = api_url, secret, messages
        self.interval, self.deadline = interval, deadline
        self.statuses: collections.Counter[int] = collections.Counter()
        self.events: list[tuple[float, float, int]] = []  # (sent at, answered at, status)

    def run(self) -> None:
        pending: list[Message] = []
        with httpx.Client(timeout=10) as client:
            for message in self.messages:
                self._post(client, message)
                if not message.acked:
                    pending.append(message)
                self._retry(client, pending)
                time.sleep(self.interval)
            while pending and time.monotonic() < self.deadline:
                time.sleep(0.2)
                self._retry(client, pending)

    def _retry(self, client: httpx.Client, pending: list[Message]) -> None:
        for message in list(pending):
            self._post(client, message)
            if message.acked:
                pending.remove(message)

    def _post(self, client: httpx.Client, message: Message) -> None:
        started = time.monotonic()
        try:
            response = client.post(
                f"{self.api_url}/webhooks/evolution", json=message.body, headers={"x-webhook-secret": self.secret}
            )
            status = response.status_code
        except httpx.TransportError:
            status = 0  # the api itself was unreachable: not an answer
        self.events.append((started, time.monotonic(), status))
        self.statuses[status] += 1
        message.statuses.append(status)
        message.acked = message.acked or 200 <= status < 300


@dataclass(frozen=True, kw_only=True)
class Report:
    messages: int
    doctors: int
    kills: int
    outages: int
    acked: int
    lost: int
    unanswered_messages: int
    unanswered_doctors: int
    answered_twice: int
    sent_twice: int
    statuses: dict[int, int]
    seconds: float

    def line(self) -> str:
        return (
            f"messages {self.messages}, doctors {self.doctors}, kills {self.kills}, postgres outages {self.outages}, "
            f"acked {self.acked}, lost {self.lost}, unanswered messages {self.unanswered_messages} "
            f"(doctors {self.unanswered_doctors}), answered twice {self.answered_twice}, sent twice {self.sent_twice}, "
            f"statuses {dict(sorted(self.statuses.items()))}, {self.seconds:.0f}s"
        )


def answers(sent: list[dict[str, Any]]) -> collections.Counter[str]:
    """How many sent texts answered each doctor message."""
    counts: collections.Counter[str] = collections.Counter()
    for item in sent:
        counts.update(TOKEN.findall(item["text"]))
    return counts


def all_answered(messages: list[Message], sent: list[dict[str, Any]]) -> bool:
    got = answers(sent)
    return all(got[m.token] for m in messages)


def settled(database_url: str) -> bool:
    """Nothing queued or running that could still send."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pgmq.q_inbound)"
                " + (SELECT count(*) FROM procrastinate_jobs"
                "     WHERE status IN ('todo', 'doing') AND queue_name IN ('replies', 'sends')) AS n"
            ).fetchone()
            return row[0] == 0
    except psycopg.OperationalError:
        return False


def report(
    *,
    database_url: str,
    messages: list[Message],
    sent: list[dict[str, Any]],
    kills: int,
    outages: int,
    statuses: collections.Counter[int],
    seconds: float,
) -> Report:
    with psycopg.connect(database_url, autocommit=True) as conn:
        stored = {r[0] for r in conn.execute("SELECT message_id FROM interacoes WHERE autor = 'medico'").fetchall()}
    got = answers(sent)
    unanswered = [m for m in messages if not got[m.token]]
    texts = collections.Counter((item["number"], item["text"]) for item in sent)
    return Report(
        messages=len(messages),
        doctors=len({m.doctor for m in messages}),
        kills=kills,
        outages=outages,
        acked=sum(m.acked for m in messages),
        lost=sum(1 for m in messages if m.acked and m.body["data"]["key"]["id"] not in stored),
        unanswered_messages=len(unanswered),
        unanswered_doctors=len({m.doctor for m in unanswered}),
        answered_twice=sum(1 for m in messages if got[m.token] > 1),
        sent_twice=sum(n - 1 for n in texts.values() if n > 1),
        statuses=dict(statuses),
        seconds=seconds,
    )


def run_chaos(
    *,
    env: dict[str, str],
    api_url: str,
    secret: str,
    sent: Callable[[], list[dict[str, Any]]],
    doctors: int,
    messages: int,
    kills: int,
    seed: int,
    outage: Callable[[], None] | None = None,
    outages: int = 0,
    kill_every: tuple[float, float] = (0.7, 2.0),
    flow_seconds: float | None = None,
    settle_seconds: float = 60.0,
    kill_started: bool = False,
) -> Report:
    """Send `messages` while killing the worker `kills` times (and calling
    `outage()` `outages` times between kills); then let one worker finish and
    report. Bounded: about (kills + outages) * kill_every + settle_seconds.
    With `kill_started` each wait starts once the worker has started, so no
    kill lands on a worker still booting (on a loaded machine most would)."""
    rng = random.Random(seed)
    started = time.monotonic()
    plan = make_messages(doctors, messages, seed)
    events = ["kill"] * kills + ["outage"] * outages
    rng.shuffle(events)
    # Messages flow for about as long as the faults last (or `flow_seconds`).
    flow = flow_seconds or max(1.0, len(events) * sum(kill_every) / 2)
    sender = Sender(api_url, secret, plan, interval=flow / max(1, messages), deadline=started + 600)
    worker = JuliaProcess(["worker"], env)
    sender.start()
    done_kills = done_outages = 0
    try:
        for event in events:
            if kill_started:
                _wait_started(worker)
            time.sleep(rng.uniform(*kill_every))
            if event == "kill":
                worker.kill()
                worker.log.close()
                done_kills += 1
                worker = JuliaProcess(["worker"], env)
            else:
                assert outage is not None
                # The outage hits a running worker (a kill may hit one starting).
                _wait_started(worker)
                outage()
                done_outages += 1
                if worker.proc.poll() is not None:
                    raise AssertionError(f"worker exited ({worker.proc.returncode}) in an outage:\n{worker.output()}")
        sender.join(timeout=600)
        deadline = time.monotonic() + settle_seconds
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited ({worker.proc.returncode}):\n{worker.output()[-5000:]}")
            if all_answered(plan, sent()) and settled(env["DATABASE_URL"]):
                break
            time.sleep(0.2)
        time.sleep(0.5)  # anything still in flight would show up as a double send
    finally:
        worker.stop()
    return report(
        database_url=env["DATABASE_URL"],
        messages=plan,
        sent=sent(),
        kills=done_kills,
        outages=done_outages,
        statuses=sender.statuses,
        seconds=time.monotonic() - started,
    )


def _wait_started(worker: JuliaProcess, timeout: float = 90.0) -> None:
    """Until the worker logged its start. A worker still starting exits when the
    database goes away (fail fast, the platform restarts it), so an outage must
    not begin before this: on a loaded machine a start can take tens of seconds."""
    deadline = time.monotonic() + timeout
    while '"worker_start"' not in worker.output():
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited ({worker.proc.returncode}) while starting:\n{worker.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"worker did not start within {timeout:.0f} s:\n{worker.output()}")
        time.sleep(0.1)


@dataclass
class FuzzResult:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    queued: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    events: list[tuple[float, float, int]] = field(default_factory=list)  # (sent at, answered at, status)

    def problems_outside(self, outages: list[tuple[float, float]]) -> list[str]:
        """The problems, plus every 503 answered to a request that overlapped no outage."""
        late = [
            f"503 at {t0:.2f}-{t1:.2f} outside the outages {outages}"
            for t0, t1, status in self.events
            if status == 503 and not any(t0 <= end and t1 >= begin for begin, end in outages)
        ]
        return self.problems + late


def fuzz(api_url: str, secret: str, bodies: Iterable[bytes], *, clients: int = 1) -> FuzzResult:
    """Post each body once from `clients` concurrent connections; records statuses,
    queued msg_ids and problems (a 5xx other than 503, a 4xx without a reason)."""
    result = FuzzResult()
    lock = threading.Lock()
    pending = iter(bodies)

    def post_all() -> None:
        headers = {"x-webhook-secret": secret, "content-type": "application/json"}
        with httpx.Client(timeout=30) as client:
            while (body := _next(pending, lock)) is not None:
                started = time.monotonic()
                response = client.post(f"{api_url}/webhooks/evolution", content=body, headers=headers)
                with lock:
                    _record(result, body, started, response)

    threads = [threading.Thread(target=post_all, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def _next(bodies: Iterator[bytes], lock: threading.Lock) -> bytes | None:
    with lock:
        return next(bodies, None)


def _record(result: FuzzResult, body: bytes, started: float, response: httpx.Response) -> None:
    status = response.status_code
    result.events.append((started, time.monotonic(), status))
    result.statuses[status] += 1
    if status >= 500 and status != 503:
        result.problems.append(f"{status} {response.text[:200]} for {body[:200]!r}")
    elif status >= 400 and not response.json().get("error"):
        result.problems.append(f"{status} without a reason for {body[:200]!r}")
    elif status < 300 and response.json().get("status") == "queued":
        result.queued.append(response.json()["msg_id"])
