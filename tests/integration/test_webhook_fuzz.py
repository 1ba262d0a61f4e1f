"""5,000 fuzzed webhook bodies with valid credentials: never a 5xx while the
database is up, every body answered 2xx is stored (or archived as poison with
its error), and Julia still answers a normal message afterwards."""

from __future__ import annotations

import collections

from tests import payloads
from tests.conftest import WEBHOOK_SECRET, settled, wait_for
from tests.faults.bodies import fuzzed_bodies

AUTH = {"x-webhook-secret": WEBHOOK_SECRET, "content-type": "application/json"}
FUZZ_BODIES = 5_000


def post_all(api_client, bodies) -> tuple[collections.Counter, list[int]]:
    statuses: collections.Counter = collections.Counter()
    queued = []
    for body in bodies:
        response = api_client.post("/webhooks/evolution", content=body, headers=AUTH)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (response.status_code, response.text, body[:300])
        if response.status_code >= 400:
            assert response.json()["error"]  # a reason, always
        elif response.json().get("status") == "queued":
            queued.append(response.json()["msg_id"])
    return statuses, queued


def test_fuzzed_bodies_get_no_5xx_and_every_queued_one_is_stored(api_client, db, evolution, start_worker):
    statuses, queued = post_all(api_client, fuzzed_bodies(FUZZ_BODIES))
    print("fuzz status histogram:", dict(sorted(statuses.items())))
    assert sum(statuses.values()) == FUZZ_BODIES
    assert statuses[200] and statuses[400] and statuses[422]  # the run did reach each kind
    assert db.execute("SELECT count(*) AS n FROM pgmq.q_inbound").fetchone()["n"] == len(queued)

    start_worker()
    # Every acknowledged message is processed: stored (or a duplicate/echo), or archived as poison.
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM pgmq.q_inbound").fetchone()["n"] == 0, timeout=60)
    archived = db.execute("SELECT count(*) AS n FROM pgmq.a_inbound").fetchone()["n"]
    assert archived == len(queued)
    poison = db.execute("SELECT count(*) AS n FROM inbound_failures").fetchone()["n"]
    print(f"queued {len(queued)}, archived {archived}, poison {poison}")

    # Julia still answers a normal message.
    evolution.reset()
    wait_for(lambda: settled(db), timeout=60)
    normal = payloads.upsert(text="Oi, tudo bem?", phone="5521987654321")
    assert api_client.post("/webhooks/evolution", json=normal, headers=AUTH).status_code == 200
    wait_for(lambda: any(m["number"] == "5521987654321" for m in evolution.sent_texts()), timeout=30)
