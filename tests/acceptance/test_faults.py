"""Fault runs on real processes (quick versions; `uv run python bench/chaos.py`
runs the long ones): kill -9 of the worker while messages flow, Postgres
stopped and started under a running api and worker, a permanent database
error, and "reply written, send job died, doctor writes again"."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest

from app.core.config import load_settings
from app.devkit.standins.anthropic import AnthropicStandin
from tests import payloads
from tests.acceptance.conftest import free_port, run_julia, start_api
from tests.conftest import PGDATA, WEBHOOK_SECRET, WorkerThread, database_url_for, settled, wait_for
from tests.faults.bodies import fuzzed_bodies
from tests.faults.chaos import JuliaProcess, fuzz, run_chaos, token_brain
from tests.faults.postgres import PostgresControl

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}


@pytest.fixture
def brain_env(test_env):
    """test_env with a Claude stand-in that names the messages it answers."""
    with AnthropicStandin(brain=token_brain) as claude:
        yield {**test_env, "ANTHROPIC_BASE_URL": claude.url}


@pytest.fixture
def brain_api(spawn, brain_env) -> str:
    return start_api(spawn, brain_env)[1]


def assert_guarantees(result) -> None:
    print(result.line())
    assert result.acked == result.messages
    assert (result.lost, result.unanswered_messages, result.answered_twice, result.sent_twice) == (0, 0, 0, 0)
    assert set(result.statuses) <= {200, 503}, result.statuses


def test_kill_9_of_the_worker_while_messages_flow_loses_nothing_and_answers_once(brain_env, brain_api, evolution):
    result = run_chaos(
        env=brain_env,
        api_url=brain_api,
        secret=WEBHOOK_SECRET,
        sent=evolution.sent_texts,
        doctors=8,
        messages=40,
        kills=4,
        seed=12,
    )
    assert result.kills == 4
    assert_guarantees(result)
    assert set(result.statuses) == {200}


def test_postgres_stopped_and_started_under_a_running_api_and_worker(brain_env, brain_api, evolution):
    control = PostgresControl(PGDATA)
    ready_while_down: list[dict] = []
    webhook_while_down: list[int] = []

    def outage() -> None:
        control.stop()
        try:
            response = httpx.get(f"{brain_api}/health/ready", timeout=10)
            ready_while_down.append({**response.json(), "http": response.status_code})
            # One webhook for certain while the database is down (the flow may be slow under load):
            # never 2xx, since it cannot be stored; Evolution delivers it again later.
            body = payloads.upsert(text="while down", message_id="WHILE-DOWN-1")
            webhook = httpx.post(f"{brain_api}/webhooks/evolution", json=body, headers=AUTH, timeout=10)
            webhook_while_down.append(webhook.status_code)
            time.sleep(4)  # longer than the webhook's wait for a connection
        finally:
            control.start()

    result = run_chaos(
        env=brain_env,
        api_url=brain_api,
        secret=WEBHOOK_SECRET,
        sent=evolution.sent_texts,
        doctors=6,
        messages=30,
        kills=0,
        seed=13,
        outage=outage,
        outages=1,
        kill_every=(1.0, 1.5),
        flow_seconds=6,
    )
    assert result.outages == 1
    assert_guarantees(result)  # the worker kept running through it (run_chaos checks) and answered all
    assert webhook_while_down == [503]
    assert set(result.statuses) <= {200, 503}
    assert [(r["http"], r["database"]) for r in ready_while_down] == [(503, "unreachable")]


FUZZ_BODIES = 5_000


def test_fuzzed_webhook_bodies_get_no_5xx_and_every_acknowledged_one_is_stored(
    spawn, brain_env, brain_api, db, evolution
):
    spawn(["worker"], brain_env)
    result = fuzz(brain_api, WEBHOOK_SECRET, fuzzed_bodies(FUZZ_BODIES, seed=12), clients=4)
    statuses, queued = result.statuses, result.queued
    print("fuzz status histogram:", dict(sorted(statuses.items())))
    assert result.problems_outside(outages=[]) == []  # the database was up: not even a 503
    assert sum(statuses.values()) == FUZZ_BODIES
    assert statuses[200] and statuses[400] and statuses[422]  # the run reached each kind of answer

    # Every acknowledged message is processed: stored (or a duplicate/echo), or archived as poison.
    def pending() -> int:
        return db.execute("SELECT count(*) AS n FROM pgmq.q_inbound").fetchone()["n"]

    wait_for(lambda: pending() == 0, timeout=60)
    archived = db.execute("SELECT count(*) AS n FROM pgmq.a_inbound").fetchone()["n"]
    assert archived == len(queued)
    poison = db.execute("SELECT count(*) AS n FROM inbound_failures").fetchone()["n"]
    print(f"queued {len(queued)}, archived {archived}, poison {poison}")

    # Julia still answers a normal message afterwards.
    normal = payloads.upsert(text="m99.1", phone="5521987654321")
    assert httpx.post(f"{brain_api}/webhooks/evolution", json=normal, headers=AUTH, timeout=5).status_code == 200
    wait_for(lambda: "R m99.1" in evolution.texts_to("5521987654321"), timeout=30)


def test_a_permanent_database_error_stops_the_worker_with_a_non_zero_exit(postgresql, test_env):
    with postgresql.cursor() as cur:
        postgresql.autocommit = True
        cur.execute(f"CREATE DATABASE julia_doomed TEMPLATE {postgresql.info.dbname} STRATEGY = FILE_COPY")
    env = {**test_env, "DATABASE_URL": database_url_for("julia_doomed")}
    worker = JuliaProcess(["worker"], env)
    try:
        wait_for(lambda: "worker started" in worker.output() or worker.proc.poll() is not None, timeout=30)
        assert worker.proc.poll() is None, worker.output()
        with psycopg.connect(database_url_for(postgresql.info.dbname), autocommit=True) as conn:
            conn.execute("DROP DATABASE julia_doomed WITH (FORCE)")  # it will never come back
        try:
            wait_for(lambda: worker.proc.poll() is not None, timeout=30)
        except AssertionError:
            raise AssertionError(worker.output()[-4000:]) from None
        assert worker.proc.returncode == 1
        output = worker.output()
        assert "the database refuses it" in output and "does not exist" in output
    finally:
        worker.stop()
    # `julia run` propagates it: the container's ON_FAILURE restart policy sees a failure.
    result = run_julia(["run"], {**env, "RUN_MODE": "worker"})
    assert result.returncode == 1


def test_reply_written_send_job_died_doctor_writes_again_gets_one_answer_each(spawn, brain_env, db, evolution):
    slow_rescue = {**brain_env, "STALLED_WORKER_SECONDS": "120"}
    crashing = spawn(["worker"], {**slow_rescue, "JULIA_FAULT": "after_claim"})
    port = free_port()
    spawn(["api", "--host", "127.0.0.1", "--port", str(port)], brain_env)
    api = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(api), timeout=30, interval=0.1)

    def post(text: str) -> None:
        response = httpx.post(f"{api}/webhooks/evolution", json=payloads.upsert(text=text), headers=AUTH, timeout=5)
        assert response.status_code == 200

    post("m1.1")
    wait_for(lambda: crashing.proc.poll() is not None, timeout=30)
    assert crashing.proc.returncode == 86  # the reply is written, its send job died after the claim
    assert [r["state"] for r in db.execute("SELECT state FROM outbox").fetchall()] == ["claimed"]

    # The doctor writes again; a worker answers before the dead one's send is rescued.
    worker = WorkerThread(load_settings("worker", slow_rescue)).start()
    try:
        post("m1.2")
        wait_for(lambda: db.execute("SELECT count(*) AS n FROM outbox").fetchone()["n"] == 2, timeout=30)
    finally:
        worker.stop()
    texts = [r["texto"] for r in db.execute("SELECT texto FROM outbox ORDER BY id").fetchall()]
    assert texts == ["R m1.1", "R m1.2"]  # the second answer did not answer m1.1 again

    # A worker that knows the dead one is dead sends both, in order, once.
    worker = WorkerThread(load_settings("worker", brain_env)).start()
    try:
        wait_for(lambda: len(evolution.sent_texts()) == 2 and settled(db), timeout=30)
    finally:
        worker.stop()
    assert [m["text"] for m in evolution.sent_texts()] == ["R m1.1", "R m1.2"]


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
