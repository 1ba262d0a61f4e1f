"""reconcile_send(): which message Evolution lists is a re-attempted row's
earlier send, and recording it as the row's send."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.integration.test_outreach import ALWAYS, WED_0900, claim, doctor, mark_sent, outbox_row

TEXT = "Oi! Temos plantões."  # outbox_row's text


def found(message_id: str, remote_jid: str, text: str | None = TEXT, *, ago: float = 0, from_me: bool = True) -> dict:
    return {
        "message_id": message_id,
        "remote_jid": remote_jid,
        "from_me": from_me,
        "text": text,
        "timestamp": int(time.time() - ago),
    }


def reconcile(db, outbox_id: int, job_id: int, messages: list[dict]) -> str | None:
    return db.execute(
        "SELECT reconcile_send(%s, %s, %s) AS evolution_id", (outbox_id, job_id, Jsonb(messages))
    ).fetchone()["evolution_id"]


def row(db, outbox_id: int) -> dict:
    return db.execute("SELECT state, evolution_message_id, sent_at FROM outbox WHERE id = %s", (outbox_id,)).fetchone()


def test_the_earlier_send_of_the_row_is_found_and_recorded_as_its_send(db):
    cliente = doctor(db, 1)
    phone = db.execute("SELECT telefone FROM clientes WHERE id = %s", (cliente,)).fetchone()["telefone"]
    other = outbox_row(db, doctor(db, 2))
    assert claim(db, other, WED_0900, ALWAYS, job_id=5)["claimed"]
    mark_sent(db, other, 5, WED_0900)  # its id: EVO<other>
    target = outbox_row(db, cliente)
    assert claim(db, target, WED_0900, ALWAYS, job_id=77)["claimed"]
    jid = f"{phone}@s.whatsapp.net"
    not_it = [
        found("OTHER-TEXT", jid, "Outra coisa"),
        found("TOO-OLD", jid, ago=600),  # before the row was written
        found("OTHER-CHAT", "5511900000099@s.whatsapp.net"),
        found(f"EVO{other}", jid),  # already another row's message
        found("FROM-DOCTOR", jid, from_me=False),
    ]
    assert reconcile(db, target, 77, not_it) is None
    assert row(db, target)["state"] == "claimed"

    assert reconcile(db, target, 77, [*not_it, found("3EB0LATER", jid), found("3EB0FIRST", jid, ago=5)]) == "3EB0FIRST"
    sent = row(db, target)
    assert (sent["state"], sent["evolution_message_id"]) == ("sent", "3EB0FIRST")
    history = db.execute("SELECT message_id, autor FROM interacoes WHERE cliente_id = %s", (cliente,)).fetchall()
    assert history == [{"message_id": "3EB0FIRST", "autor": "julia"}]
    # The job asks again (say, its answer was lost): the row is sent, nothing to send.
    assert reconcile(db, target, 77, []) == "3EB0FIRST"


def test_a_brazilian_mobile_stored_in_its_other_form_is_the_same_chat(db):
    cliente = doctor(db, 1, telefone="5531987654321", whatsapp_numero="5531987654321")
    target = outbox_row(db, cliente)
    assert claim(db, target, WED_0900, ALWAYS, job_id=77)["claimed"]
    # WhatsApp knows the account by the 12-digit form; Evolution sent to (and stored) that one.
    assert reconcile(db, target, 77, [found("3EB0TWELVE", "553187654321@s.whatsapp.net")]) == "3EB0TWELVE"


def test_only_the_job_holding_the_claim_may_reconcile(db):
    target = outbox_row(db, doctor(db, 1))
    with pytest.raises(psycopg.Error, match="is not claimed by job 78") as refused:
        reconcile(db, target, 78, [])
    assert refused.value.sqlstate == "JU409"
    assert claim(db, target, WED_0900, ALWAYS, job_id=77)["claimed"]
    with pytest.raises(psycopg.Error, match="is not claimed by job 78") as refused:
        reconcile(db, target, 78, [])
    assert refused.value.sqlstate == "JU409"
