"""A job left `doing` by a dead worker never jams its lock: the rescue puts it
back to work even when a job with the same queueing lock already waits, for
every queue Julia uses; the owed-reply sweep answers a conversation whose
only job is stuck; a reply job sees the replies written but not yet sent."""

from __future__ import annotations

import time

import pytest
from psycopg.types.json import Jsonb

from app.events.evolution import parse_event
from tests import payloads
from tests.conftest import settled, wait_for
from tests.integration.test_outreach import ALWAYS, WED_0900, claim, doctor, outbox_row
from tests.integration.test_send_safety import conversation


def dead_worker(db) -> int:
    """A worker row whose heartbeat stopped an hour ago (kill -9)."""
    return db.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id"
    ).fetchone()["id"]


def store(db, text: str, **kw) -> dict:
    """What the worker does with one inbound queue message (process_inbound)."""
    message = parse_event(payloads.upsert(text=text, **kw)).to_json()
    body = {"v": 1, "event": "messages.upsert", "message": message, "raw": {}}
    return db.execute("SELECT * FROM process_inbound(0, %s)", (Jsonb(body),)).fetchone()


def fetch_as(db, worker_id: int, queue: str) -> dict:
    """The worker `worker_id` takes the next job of `queue` (procrastinate's own fetch)."""
    db.execute("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo' AND queue_name = %s", (queue,))
    job = db.execute("SELECT * FROM procrastinate_fetch_job_v2(ARRAY[%s], %s)", (queue, worker_id)).fetchone()
    assert job["id"] is not None, f"no job to fetch on {queue}"
    return job


def jobs(db, queue: str) -> list[dict]:
    return db.execute(
        "SELECT id, status, queueing_lock, attempts FROM procrastinate_jobs WHERE queue_name = %s ORDER BY id",
        (queue,),
    ).fetchall()


def test_a_stuck_reply_job_with_a_waiting_twin_is_answered_once_within_seconds(db, evolution, claude, start_worker):
    first = store(db, "Oi")
    stuck = fetch_as(db, dead_worker(db), "replies")  # the worker died while answering "Oi"
    second = store(db, "Tem plantão de GO no sábado?")  # the doctor wrote again: a twin waits
    assert second["reply_job_id"] is not None
    waiting = [j for j in jobs(db, "replies") if j["status"] == "todo"]
    assert [(j["status"], j["queueing_lock"]) for j in jobs(db, "replies")] == [
        ("doing", stuck["queueing_lock"]),
        ("todo", stuck["queueing_lock"]),
    ]

    start_worker()
    wait_for(lambda: evolution.sent_texts() and settled(db), timeout=15)
    assert len(evolution.sent_texts()) == 1
    # One answer, to both messages: the stalled job ran in the waiting one's place.
    assert claude.calls()[-1]["messages"][-1]["content"] == "Oi\nTem plantão de GO no sábado?"
    outbox = db.execute("SELECT reply_to_id FROM outbox").fetchall()
    assert outbox == [{"reply_to_id": second["interacao_id"]}]
    assert first["conversation_id"] == second["conversation_id"]
    assert db.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", (waiting[0]["id"],)).fetchone() == {
        "status": "cancelled"
    }


@pytest.mark.parametrize("queue", ["replies", "sends", "humans"])
def test_rescue_resolves_a_stalled_job_whatever_waits_on_its_lock(db, queue):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    row = outbox_row(db, cliente, kind="reply", conversation_id=conv)
    defer = {
        "replies": ("SELECT defer_reply(%s) AS id", (conv,)),
        "sends": ("SELECT defer_send(%s) AS id", (row,)),
        "humans": ("SELECT defer_chatwoot_sync(%s) AS id", (conv,)),
    }[queue]
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute(*defer)
    stalled = fetch_as(db, dead_worker(db), queue)
    twin = db.execute(*defer).fetchone()["id"]
    assert twin is not None

    rescued = db.execute("SELECT * FROM rescue_stalled_jobs('30 seconds')").fetchall()
    assert rescued == [{"job_id": stalled["id"], "task_name": stalled["task_name"], "replaced_job_id": twin}]
    assert [(j["id"], j["status"]) for j in jobs(db, queue)] == [(stalled["id"], "todo"), (twin, "cancelled")]
    assert db.execute("SELECT * FROM rescue_stalled_jobs('30 seconds')").fetchall() == []  # nothing left stuck
    # The rescued job is the one a worker takes next.
    assert fetch_as(db, dead_worker(db), queue)["id"] == stalled["id"]


def test_a_rescued_send_job_keeps_its_claim_and_sends_once(db):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    row = outbox_row(db, cliente, kind="reply", conversation_id=conv)
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute("SELECT defer_send(%s)", (row,))
    stalled = fetch_as(db, dead_worker(db), "sends")
    assert claim(db, row, WED_0900, ALWAYS, job_id=stalled["id"])["claimed"]  # then kill -9
    db.execute("SELECT defer_send(%s)", (row,))  # e.g. release_held_work deferred a twin
    db.execute("SELECT * FROM rescue_stalled_jobs('30 seconds')")
    job = fetch_as(db, dead_worker(db), "sends")
    assert job["id"] == stalled["id"]
    assert claim(db, row, WED_0900, ALWAYS, job_id=job["id"])["claimed"]  # its own claim: it may resume


def test_rescue_leaves_jobs_of_live_workers_alone(db):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute("SELECT defer_reply(%s)", (conv,))
    live = db.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id").fetchone()["id"]
    fetch_as(db, live, "replies")
    assert db.execute("SELECT * FROM rescue_stalled_jobs('30 seconds')").fetchall() == []
    db.execute("DELETE FROM procrastinate_workers WHERE id = %s", (live,))  # pruned: the job has no worker
    assert len(db.execute("SELECT * FROM rescue_stalled_jobs('30 seconds')").fetchall()) == 1


def test_a_worker_never_rescues_its_own_jobs(db):
    cliente = doctor(db, 1)
    conv = conversation(db, cliente)
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute("SELECT defer_reply(%s)", (conv,))
    late = dead_worker(db)  # its heartbeat is an hour old, but it is the one asking
    job = fetch_as(db, late, "replies")
    assert db.execute("SELECT * FROM rescue_stalled_jobs('30 seconds', %s)", (late,)).fetchall() == []
    assert (
        db.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", (job["id"],)).fetchone()["status"] == "doing"
    )
    other = dead_worker(db)
    rescued = db.execute("SELECT job_id FROM rescue_stalled_jobs('30 seconds', %s)", (other,)).fetchall()
    assert rescued == [{"job_id": job["id"]}]  # any other worker (or none named) rescues it


def test_a_job_whose_worker_row_was_pruned_is_rescued_whoever_asks(db):
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute("SELECT defer_job('periodic_rescue_stalled_jobs', '{\"timestamp\": 1}', 'periodic')")
    worker = dead_worker(db)
    job = fetch_as(db, worker, "periodic")
    db.execute("DELETE FROM procrastinate_workers WHERE id = %s", (worker,))  # its worker_id is now NULL
    rescued = db.execute("SELECT job_id FROM rescue_stalled_jobs('30 seconds', %s)", (worker,)).fetchall()
    assert rescued == [{"job_id": job["id"]}]


def test_a_running_reply_is_not_run_again_when_its_own_worker_heartbeat_lags(db, evolution, claude, start_worker):
    """A live worker whose heartbeat is late (a starved machine) keeps its running
    job: its rescue loop (every half second here) must not put it back to 'todo'
    for a second run beside the first."""
    claude.set_delay(3.0)  # the answer takes longer than the stalled-worker window (2 s)
    start_worker()
    store(db, "Oi, tem plantão?")

    def running() -> dict | None:
        return db.execute(
            "SELECT id, worker_id FROM procrastinate_jobs WHERE queue_name = 'replies' AND status = 'doing'"
        ).fetchone()

    wait_for(lambda: running() is not None, timeout=15)
    job = running()
    lagging_until = time.monotonic() + 3.0
    while time.monotonic() < lagging_until:  # the heartbeat looks an hour old for 3 s
        db.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = %s",
            (job["worker_id"],),
        )
        time.sleep(0.05)
    wait_for(lambda: evolution.sent_texts() and settled(db), timeout=20)
    assert len(claude.calls()) == 1
    assert len(evolution.sent_texts()) == 1
    events = db.execute("SELECT type FROM procrastinate_events WHERE job_id = %s ORDER BY id", (job["id"],)).fetchall()
    assert [e["type"] for e in events].count("started") == 1


def test_a_stalled_job_without_a_queueing_lock_is_rescued(db):
    db.execute("DELETE FROM procrastinate_jobs")
    db.execute("SELECT defer_job('periodic_rescue_stalled_jobs', '{\"timestamp\": 1}', 'periodic')")
    stalled = fetch_as(db, dead_worker(db), "periodic")
    rescued = db.execute("SELECT * FROM rescue_stalled_jobs('30 seconds')").fetchall()
    assert rescued == [{"job_id": stalled["id"], "task_name": "periodic_rescue_stalled_jobs", "replaced_job_id": None}]


def test_the_owed_reply_sweep_answers_a_conversation_whose_only_job_is_stuck(db):
    store(db, "Oi")
    db.execute("UPDATE interacoes SET created_at = now() - interval '10 minutes'")
    stuck = fetch_as(db, dead_worker(db), "replies")
    db.execute("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '10 minutes'")
    db.execute("SELECT sweep_owed_replies('3 minutes')")
    assert [(j["id"], j["status"]) for j in jobs(db, "replies")] == [(stuck["id"], "todo")]


def test_a_reply_job_sees_replies_written_but_not_sent(db):
    first = store(db, "Oi")
    conv = first["conversation_id"]
    db.execute(
        "SELECT * FROM enqueue_reply(%s, %s, %s)", (conv, first["interacao_id"], ["Oi! Aqui é a Julia.", "Tudo bem?"])
    )
    second = store(db, "Tem plantão?")
    ctx = db.execute("SELECT reply_context(%s) AS c", (conv,)).fetchone()["c"]
    assert ctx["reply_to_id"] == second["interacao_id"]
    assert [(h["autor"], h["texto"]) for h in ctx["history"]] == [
        ("medico", "Oi"),
        ("julia", "Oi! Aqui é a Julia."),
        ("julia", "Tudo bem?"),
        ("medico", "Tem plantão?"),
    ]
