"""Revision 0013's data fix: an existing one-number deployment (a database at
0012 that has been receiving webhooks) gets its instance as the first number,
today's counters carried over, and its doctors and conversations attributed."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alembic import command
from app.store import schema


def test_upgrade_from_0012_creates_the_first_number_from_the_inbound_archive(empty_url):
    command.upgrade(schema.alembic_config(empty_url), "0012")
    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        for instance in ("julia-antiga", "julia-prod"):  # the newest message names the instance in use
            msg = conn.execute(
                "SELECT pgmq.send('inbound', %s) AS id", (Jsonb({"v": 1, "message": {"instance": instance}}),)
            ).fetchone()["id"]
            conn.execute("SELECT pgmq.archive('inbound', %s)", (msg,))
        conn.execute(
            "INSERT INTO send_counters (window_kind, window_start, claims) VALUES "
            "('day', date_trunc('day', clock_timestamp() AT TIME ZONE 'America/Sao_Paulo'), 42), "
            "('day', date_trunc('day', clock_timestamp() AT TIME ZONE 'America/Sao_Paulo') - interval '3 days', 99)"
        )
        talked = conn.execute("INSERT INTO clientes (telefone) VALUES ('5511900000001') RETURNING id").fetchone()["id"]
        conn.execute("INSERT INTO clientes (telefone) VALUES ('5511900000002')")
        conv = conn.execute(
            "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, '5511900000001') RETURNING id", (talked,)
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto) "
            "VALUES (%s, %s, 'M1', 'entrada', 'medico', 'oi')",
            (conv, talked),
        )

    schema.upgrade(empty_url)

    with psycopg.connect(empty_url, autocommit=True, row_factory=dict_row) as conn:
        numbers = conn.execute("SELECT id, instance, warmup_days FROM whatsapp_numbers").fetchall()
        assert [(n["instance"], n["warmup_days"]) for n in numbers] == [("julia-prod", 0)]
        counters = conn.execute("SELECT window_kind, claims FROM number_send_counters").fetchall()
        assert [dict(c) for c in counters] == [{"window_kind": "day", "claims": 42}]  # today only
        known = conn.execute("SELECT telefone, number_id FROM clientes ORDER BY telefone").fetchall()
        assert [k["number_id"] for k in known] == [numbers[0]["id"], None]  # only the doctor who talked
        assert conn.execute("SELECT number_id FROM conversations").fetchone()["number_id"] == numbers[0]["id"]
        # The worker's start changes nothing more: its instance is already the number.
        started = conn.execute("SELECT * FROM bootstrap_sending(NULL, 'julia-prod')").fetchall()
        assert {r["item"]: r["action"] for r in started}["number:julia-prod"] == "unchanged"
        rate = conn.execute("SELECT rate_limit_status() AS s").fetchone()["s"]
        assert rate["day"]["sent"] == 42 and rate["numbers"][0]["instance"] == "julia-prod"
