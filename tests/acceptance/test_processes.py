"""`julia api` + `julia worker` as real processes: every Evolution layout is
answered once, to the doctor's phone; a worker killed between claim and
send sends exactly once after restart; a database behind the code's
migrations is refused."""

from __future__ import annotations

import httpx
import pytest

from tests import payloads
from tests.acceptance.conftest import run_julia
from tests.conftest import WEBHOOK_SECRET, database_url_for, settled, wait_for

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}


def sent_states(db) -> list[str]:
    return [r["state"] for r in db.execute("SELECT state FROM outbox ORDER BY id").fetchall()]


LAYOUTS = ("classic", "v2_3_5", "v2_3_7", "sender_pn", "lid_only")


def test_each_layout_is_answered_once_to_the_doctor(api_url, spawn, test_env, db, evolution):
    """One api + one worker process; a doctor per Evolution layout, each delivered twice."""
    spawn(["worker"], test_env)
    expected = {}
    for n, layout in enumerate(LAYOUTS):
        phone, lid = f"55119000000{n:02d}", f"9990000000{n:02d}@lid"
        body = payloads.upsert(layout=layout, text="Oi, vocês têm plantão?", phone=phone, lid=lid)
        expected[layout] = lid if layout == "lid_only" else phone
        for _ in range(2):  # Evolution delivers twice
            response = httpx.post(f"{api_url}/webhooks/evolution", json=body, headers=AUTH, timeout=5)
            assert response.status_code == 200, response.text
    wait_for(lambda: sent_states(db) == ["sent"] * len(LAYOUTS) and settled(db), timeout=40)
    assert sorted(m["number"] for m in evolution.sent_texts()) == sorted(expected.values())


def test_worker_killed_between_claim_and_send_sends_exactly_once(api_url, spawn, test_env, db, evolution):
    crashing = spawn(["worker"], {**test_env, "JULIA_FAULT": "after_claim"})
    response = httpx.post(f"{api_url}/webhooks/evolution", json=payloads.upsert(text="Oi"), headers=AUTH, timeout=5)
    assert response.status_code == 200
    wait_for(lambda: crashing.proc.poll() is not None, timeout=30)
    assert crashing.proc.returncode == 86  # died right after the claim committed
    assert sent_states(db) == ["claimed"]
    assert evolution.sent_texts() == []

    spawn(["worker"], test_env)  # the restarted worker rescues the stalled job
    wait_for(lambda: sent_states(db) == ["sent"] and settled(db), timeout=30)
    assert len(evolution.sent_texts()) == 1


def test_processes_refuse_a_database_behind_the_code(postgresql, test_env):
    with postgresql.cursor() as cur:
        postgresql.autocommit = True
        cur.execute("CREATE DATABASE julia_behind STRATEGY = FILE_COPY")
    env = {**test_env, "DATABASE_URL": database_url_for("julia_behind")}
    assert run_julia(["db", "upgrade", "0001"], env).returncode == 0
    for command in (["worker"], ["api", "--port", "1"]):
        result = run_julia(command, env)
        assert result.returncode == 1
        assert "missing: 0002" in result.stderr
        assert "julia db upgrade" in result.stderr
    assert run_julia(["db", "current"], env).returncode == 1
    assert run_julia(["db", "upgrade"], env).returncode == 0
    assert run_julia(["db", "current"], env).returncode == 0


@pytest.mark.parametrize("run_mode", [None, "", "web", "API"])
def test_run_mode_missing_or_invalid_exits_1_naming_valid_values(run_mode, test_env):
    env = {k: v for k, v in test_env.items() if k != "RUN_MODE"}
    if run_mode is not None:
        env["RUN_MODE"] = run_mode
    result = run_julia(["run"], env)
    assert result.returncode == 1
    assert "valid values: api, worker, scheduler" in result.stderr
