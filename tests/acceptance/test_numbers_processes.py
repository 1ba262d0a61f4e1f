"""Two real `julia worker` processes with different send-limit variables
enforce the one policy in the database."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from tests.conftest import wait_for

ALWAYS = {"DIAS_SEMANA": "1,2,3,4,5,6,7", "HORARIO_INICIO": "00:00", "HORARIO_FIM": "23:59"}


def test_workers_with_different_env_enforce_the_one_policy_in_the_database(spawn, test_env, db, evolution):
    policy = {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:59", "hour_limit": 3, "day_limit": 50}
    db.execute("SELECT set_send_policy(%s, 'test', 'manual')", (Jsonb(policy),))
    for limit in ("50", "1"):
        spawn(["worker"], {**test_env, **ALWAYS, "MAX_MSGS_POR_HORA": limit, "MAX_MSGS_POR_DIA": "500"})
    wait_for(lambda: db.execute("SELECT 1 FROM whatsapp_numbers WHERE instance = 'julia-test'").fetchone(), timeout=30)
    for n in range(10):
        row = db.execute("INSERT INTO clientes (telefone) VALUES (%s) RETURNING id", (f"5511955{n:06d}",)).fetchone()[
            "id"
        ]
        outbox = db.execute(
            "INSERT INTO outbox (idempotency_key, kind, cliente_id, number, texto, dispatched_at) "
            "SELECT %s, 'campaign', id, telefone, 'Oi!', now() FROM clientes WHERE id = %s RETURNING id",
            (f"c{n}", row),
        ).fetchone()["id"]
        db.execute("SELECT defer_send(%s)", (outbox,))
    # Each row sent or deferred to the next hour (its job waits for then).
    wait_for(
        lambda: (
            db.execute("SELECT count(*) AS n FROM outbox WHERE state IN ('sent', 'deferred')").fetchone()["n"] == 10
        ),
        timeout=60,
    )
    sent = evolution.sent_texts()
    assert len(sent) == 3  # the database's hourly cap, whatever each worker's env says
    assert {s["instance"] for s in sent} == {"julia-test"}
    refusals = db.execute("SELECT refusal, count(*) AS n FROM outbox WHERE state = 'deferred' GROUP BY 1").fetchall()
    assert [dict(r) for r in refusals] == [{"refusal": "hourly_limit", "n": 7}]
    assert db.execute("SELECT policy ->> 'hour_limit' AS h FROM send_policy_settings").fetchone()["h"] == "3"
