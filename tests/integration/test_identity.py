"""One doctor, one record, whatever address WhatsApp uses (issue 13), on real
Postgres: the identity rule (db/identity.sql) for every form, the webhook and
the importer going through it, two first messages in two forms at once, the
onWhatsApp check before a first proactive send, and the opt-out guarantee
across forms."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.events.evolution import parse_event
from app.ops import importer
from tests import payloads
from tests.conftest import WEBHOOK_SECRET, settled, wait_for
from tests.integration.test_outreach import ALWAYS, WED_0900, claim

AUTH = {"x-webhook-secret": WEBHOOK_SECRET}
# One doctor's number in its two WhatsApp forms (DDD 31: old accounts often keep 12 digits).
WITH_NINE = "5531987654321"
WITHOUT_NINE = "553187654321"


def key(db, address: str | None) -> str | None:
    return db.execute("SELECT phone_key(%s) AS k", (address,)).fetchone()["k"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (WITH_NINE, WITHOUT_NINE),
        (f"{WITHOUT_NINE}@s.whatsapp.net", WITH_NINE),
        (f"{WITH_NINE}:12@s.whatsapp.net", WITHOUT_NINE),  # device suffix (Evolution 2.3.3/2.3.4)
        (f"{WITHOUT_NINE}:3@s.whatsapp.net", f"{WITH_NINE}@c.us"),
        ("+55 (31) 98765-4321", WITHOUT_NINE),
    ],
)
def test_forms_of_one_brazilian_mobile_have_one_key(db, a, b):
    assert key(db, a) == key(db, b) == WITH_NINE
    assert key(db, "551181677736") == key(db, "5511981677736") == "5511981677736"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("551133334444", "5511933334444"),  # a landline (8 digits from 2-5) is not a mobile without its 9
        ("14155552671", "141555552671"),  # another country: no ninth digit
        ("351912345678", "3519912345678"),
        ("5511951234567", "551151234567"),  # the 12-digit form would be a landline
    ],
)
def test_landlines_and_other_countries_are_left_as_they_are(db, a, b):
    assert key(db, a) == a
    assert key(db, b) == b


def test_lids_groups_and_empty_addresses_have_no_phone_key(db):
    assert [key(db, a) for a in ("211484206436558@lid", "120363@g.us", "", None)] == [None] * 4


# phone_key() as revision 0012 indexed it (a SQL function); the PL/pgSQL one must give the same
# text for every address, or clientes_phone_key_idx would hold keys the function no longer makes.
PHONE_KEY_0012 = """
CREATE FUNCTION pg_temp.phone_key_0012(p_address text) RETURNS text LANGUAGE sql IMMUTABLE SET search_path = '' AS $$
    SELECT CASE
        WHEN d ~ '^55[1-9][1-9][6-9][0-9]{7}$' THEN pg_catalog.substr(d, 1, 4) || '9' || pg_catalog.substr(d, 5)
        ELSE d
    END
      FROM (SELECT public.jid_phone(p_address) AS d) AS a;
$$
"""


def test_phone_key_gives_what_the_indexed_definition_gave(db):
    rng = random.Random(13)
    alphabet = "0123456789" * 4 + "+()- :@.abcsw"
    addresses = [None, "", "@", ":", "55", WITH_NINE, WITHOUT_NINE, f"{WITHOUT_NINE}:7@s.whatsapp.net", "x@lid"]
    addresses += ["55" + "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 11))) for _ in range(3000)]
    addresses += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(3000)]
    addresses += [
        a + rng.choice(["@s.whatsapp.net", "@c.us", "@g.us", "@lid", ":1@s.whatsapp.net"]) for a in addresses[9:2009]
    ]
    db.execute(PHONE_KEY_0012)
    differ = db.execute(
        "SELECT a FROM unnest(%s::text[]) AS a WHERE public.phone_key(a) IS DISTINCT FROM pg_temp.phone_key_0012(a)",
        (addresses,),
    ).fetchall()
    assert differ == []
    assert (
        db.execute(
            "SELECT count(DISTINCT public.phone_key(a)) AS n FROM unnest(%s::text[]) AS a", (addresses,)
        ).fetchone()["n"]
        > 3000
    )


def resolve(db, phone: str | None, lid: str | None = None, nome: str | None = None) -> int:
    return db.execute("SELECT resolve_cliente(%s, %s, %s) AS id", (phone, lid, nome)).fetchone()["id"]


def count_clientes(db) -> int:
    return db.execute("SELECT count(*) AS n FROM clientes").fetchone()["n"]


def test_a_doctor_stored_in_one_form_is_found_from_the_other_and_keeps_her_stored_number(db):
    stored = resolve(db, WITH_NINE, nome="Ana")
    assert resolve(db, WITHOUT_NINE) == stored
    assert resolve(db, f"{WITH_NINE}:7@s.whatsapp.net") == stored
    other = resolve(db, "5511981677736")
    assert resolve(db, "551181677736") == other != stored
    assert count_clientes(db) == 2
    assert db.execute("SELECT telefone FROM clientes WHERE id = %s", (stored,)).fetchone()["telefone"] == WITH_NINE


def test_landline_and_mobile_lookalike_stay_two_doctors(db):
    assert resolve(db, "551133334444") != resolve(db, "5511933334444")


def test_lid_with_phone_joins_the_doctor_stored_in_the_other_form(db):
    stored = resolve(db, WITH_NINE, nome="Ana")
    assert resolve(db, WITHOUT_NINE, "111@lid") == stored
    assert db.execute("SELECT lid FROM clientes WHERE id = %s", (stored,)).fetchone()["lid"] == "111@lid"
    # Later LID-only messages find her.
    assert resolve(db, None, "111@lid") == stored
    assert count_clientes(db) == 1


def test_a_lid_only_row_folds_into_the_phone_row_when_an_event_pairs_them(db):
    stored = resolve(db, WITH_NINE, nome="Ana")
    lid_only = resolve(db, None, "222@lid", "Ana S.")
    assert lid_only != stored
    conv = db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, '222@lid') RETURNING id", (lid_only,)
    ).fetchone()["id"]
    db.execute(
        "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto) "
        "VALUES (%s, %s, 'lid-msg-1', 'entrada', 'medico', 'oi')",
        (conv, lid_only),
    )
    db.execute("UPDATE clientes SET opt_out = true, opt_out_em = now() WHERE id = %s", (lid_only,))

    assert resolve(db, WITHOUT_NINE, "222@lid") == stored
    row = db.execute("SELECT lid, opt_out, nome FROM clientes WHERE id = %s", (stored,)).fetchone()
    assert row == {"lid": "222@lid", "opt_out": True, "nome": "Ana"}
    assert count_clientes(db) == 1
    assert db.execute("SELECT cliente_id FROM interacoes WHERE message_id = 'lid-msg-1'").fetchone() == {
        "cliente_id": stored
    }
    fusion = db.execute("SELECT mantido_id, removido_id, removido ->> 'lid' AS lid FROM clientes_fusoes").fetchone()
    assert fusion == {"mantido_id": stored, "removido_id": lid_only, "lid": "222@lid"}


def test_a_lid_tied_to_another_phone_is_left_alone(db):
    ana = resolve(db, WITH_NINE, "333@lid")
    bruno = resolve(db, "5511981677736")
    assert resolve(db, "5511981677736", "333@lid") == bruno
    assert db.execute("SELECT id FROM clientes WHERE lid = '333@lid'").fetchone()["id"] == ana


def test_two_first_messages_in_two_forms_while_the_first_is_uncommitted_make_one_row(database_url, db):
    """The second waits on the identity lock, then finds the first one's row."""
    result: dict[str, int] = {}

    def first() -> None:
        with psycopg.connect(database_url, row_factory=dict_row) as conn:
            result["first"] = resolve(conn, WITHOUT_NINE, None, "Ana")
            time.sleep(0.5)  # still uncommitted when the second message arrives
            conn.commit()

    thread = threading.Thread(target=first)
    thread.start()
    wait_for(lambda: "first" in result, timeout=10)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        result["second"] = resolve(conn, WITH_NINE, "444@lid", "Ana")
    thread.join(timeout=10)
    assert result["first"] == result["second"]
    assert count_clientes(db) == 1


def queued_message(db, body: dict) -> tuple[int, dict]:
    """What the api puts on pgmq 'inbound' for a webhook body."""
    message = {"v": 1, "event": "messages.upsert", "message": parse_event(body).to_json(), "raw": body["data"]}
    msg_id = db.execute("SELECT enqueue_inbound(%s) AS id", (Jsonb(message),)).fetchone()["id"]
    return msg_id, message


def test_first_messages_of_new_doctors_in_two_forms_at_once_make_one_row_each(database_url, db):
    pairs = [(f"55319876543{n:02d}", f"5531876543{n:02d}") for n in range(8)]
    jobs = []
    for n, (with_nine, without_nine) in enumerate(pairs):
        jobs.append(queued_message(db, payloads.upsert(phone=with_nine, layout="classic", text="Oi")))
        jobs.append(
            queued_message(
                db, payloads.upsert(phone=without_nine, lid=f"9{n:05d}@lid", layout="v2_3_5", text="Tem plantão?")
            )
        )
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def process(msg_id: int, message: dict) -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                barrier.wait()
                conn.execute("SELECT * FROM process_inbound(%s, %s)", (msg_id, Jsonb(message)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=process, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    rows = db.execute("SELECT phone_key(telefone) AS k, count(*) AS n FROM clientes GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [{"k": with_nine, "n": 1} for with_nine, _ in sorted(pairs)]
    # Each doctor's two messages are in one conversation.
    assert db.execute("SELECT count(*) AS n FROM conversations").fetchone()["n"] == len(pairs)
    assert db.execute("SELECT count(DISTINCT conversation_id) AS n FROM interacoes").fetchone()["n"] == len(pairs)


# ---------------------------------------------------------------- importer


def write(directory: Path, name: str, text: str) -> Path:
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def import_medicos(db, tmp_path: Path, csv: str) -> list[importer.FileReport]:
    return importer.load_directory(db, write(tmp_path, "medicos.csv", csv))


def test_import_of_the_other_form_updates_the_doctor_and_typed_numbers_become_e164(db, tmp_path):
    import_medicos(db, tmp_path, f"telefone,nome\n{WITH_NINE},Ana Souza\n(11) 98167-7736,Bruno Lima\n")
    (report,) = import_medicos(db, tmp_path, f"telefone,nome,crm,opt_out\n{WITHOUT_NINE},,CRM-MG 1,sim\n")
    assert (report.inserted, report.updated) == (0, 1)
    rows = db.execute("SELECT telefone, nome, crm, opt_out FROM clientes ORDER BY id").fetchall()
    assert rows == [
        {"telefone": WITH_NINE, "nome": "Ana Souza", "crm": "CRM-MG 1", "opt_out": True},
        {"telefone": "5511981677736", "nome": "Bruno Lima", "crm": None, "opt_out": False},
    ]


def test_import_keeps_landlines_and_foreign_numbers_as_they_are(db, tmp_path):
    import_medicos(
        db,
        tmp_path,
        "telefone,nome\n551133334444,Clínica\n5511933334444,Carla\n+1 415 555 2671,Dave\n+351 912 345 678,Eva\n",
    )
    phones = [r["telefone"] for r in db.execute("SELECT telefone FROM clientes ORDER BY id")]
    assert phones == ["551133334444", "5511933334444", "14155552671", "351912345678"]


# ---------------------------------------------------------------- webhook → reply


def post(api_client, body: dict) -> None:
    response = api_client.post("/webhooks/evolution", json=body, headers=AUTH)
    assert response.status_code == 200, response.text


def import_ana(db, tmp_path: Path, telefone: str, **extra: str) -> None:
    cols = {"telefone": telefone, "nome": "Ana Souza", "especialidade": "Pediatria", **extra}
    db.execute("INSERT INTO especialidades (nome) VALUES ('Pediatria') ON CONFLICT DO NOTHING")
    import_medicos(db, tmp_path, ",".join(cols) + "\n" + ",".join(cols.values()) + "\n")


@pytest.mark.parametrize(("imported", "writes_from"), [(WITH_NINE, WITHOUT_NINE), (WITHOUT_NINE, WITH_NINE)])
def test_imported_doctor_writing_from_the_other_form_is_answered_as_herself(
    api_client, db, evolution, claude, start_worker, tmp_path, imported, writes_from
):
    import_ana(db, tmp_path, imported)
    start_worker()
    claude.queue_reply("Oi, Dra. Ana! Tenho plantões de pediatria.")
    post(api_client, payloads.upsert(phone=writes_from, push_name="Aninha", text="Oi, tem plantão?"))
    wait_for(lambda: settled(db) and evolution.sent_texts())

    assert count_clientes(db) == 1
    system = claude.calls()[-1]["system"][1]["text"]  # the turn-specific block: the doctor's profile
    assert "Ana Souza" in system and "Pediatria" in system
    # Julia answers the form the doctor writes from, and remembers it.
    assert [m["number"] for m in evolution.sent_texts()] == [writes_from]
    row = db.execute("SELECT telefone, nome, whatsapp_numero FROM clientes").fetchone()
    assert row == {"telefone": imported, "nome": "Ana Souza", "whatsapp_numero": writes_from}


def test_device_suffix_jid_is_the_same_doctor(api_client, db, evolution, start_worker, tmp_path):
    import_ana(db, tmp_path, WITH_NINE)
    body = payloads.upsert(phone=WITHOUT_NINE, layout="v2_3_5")
    body["data"]["key"]["remoteJidAlt"] = f"{WITHOUT_NINE}:12@s.whatsapp.net"
    start_worker()
    post(api_client, body)
    wait_for(lambda: settled(db) and evolution.sent_texts())
    assert count_clientes(db) == 1
    assert [m["number"] for m in evolution.sent_texts()] == [WITHOUT_NINE]


# ---------------------------------------------------------------- proactive address (onWhatsApp)


def start_campaign(db, nome: str = "Plantões de dezembro") -> int:
    campaign = db.execute(
        "SELECT create_campaign(%s, 'Oi {primeiro_nome}! Temos plantões.', '{}'::jsonb, NULL, NULL) AS id", (nome,)
    ).fetchone()["id"]
    db.execute("SELECT start_campaign(%s)", (campaign,))
    return campaign


def proactive_settings(test_env):
    from app.core.config import load_settings

    return load_settings(
        "worker", {**test_env, "DIAS_SEMANA": "1,2,3,4,5,6,7", "HORARIO_INICIO": "00:00", "HORARIO_FIM": "23:59"}
    )


def run_dispatch(db, settings) -> int:
    # The policy is data: these tests' hours (all day, every day) go to the database.
    db.execute("SELECT set_send_policy(%s, 'test', 'manual', true)", (Jsonb(settings.send_policy()),))
    return len(db.execute("SELECT * FROM dispatch_outreach(NULL, NULL)").fetchall())


def test_first_proactive_send_asks_which_form_exists_and_remembers_it(db, evolution, test_env, tmp_path):
    from tests.conftest import WorkerThread

    import_ana(db, tmp_path, WITH_NINE)
    evolution.set_accounts(WITHOUT_NINE)  # an old account: WhatsApp knows the 12-digit JID only
    settings = proactive_settings(test_env)
    start_campaign(db)
    assert run_dispatch(db, settings) == 1
    worker = WorkerThread(settings).start()
    try:
        wait_for(lambda: settled(db) and evolution.sent_texts(), timeout=30)
        assert evolution.number_checks() == [[WITH_NINE]]
        assert [(m["number"], m["text"]) for m in evolution.sent_texts()] == [(WITHOUT_NINE, "Oi Ana! Temos plantões.")]
        assert db.execute("SELECT whatsapp_numero FROM clientes").fetchone()["whatsapp_numero"] == WITHOUT_NINE
        # The answer is remembered: the next proactive message asks nothing.
        db.execute("UPDATE outbox SET sent_at = now() - interval '10 days'")
        start_campaign(db, "Plantões de janeiro")
        run_dispatch(db, settings)  # the worker's own periodic dispatch may take it first
        wait_for(lambda: settled(db) and len(evolution.sent_texts()) == 2, timeout=30)
        assert evolution.number_checks() == [[WITH_NINE]]
        assert [m["number"] for m in evolution.sent_texts()] == [WITHOUT_NINE, WITHOUT_NINE]
    finally:
        worker.stop()


def test_a_number_not_on_whatsapp_is_marked_and_not_retried(db, evolution, test_env, tmp_path):
    from tests.conftest import WorkerThread

    import_ana(db, tmp_path, WITH_NINE)
    evolution.set_accounts()  # nobody
    settings = proactive_settings(test_env)
    start_campaign(db)
    run_dispatch(db, settings)
    worker = WorkerThread(settings).start()
    try:
        wait_for(lambda: settled(db) and db.execute("SELECT 1 FROM outbox WHERE state = 'failed'").fetchone())
    finally:
        worker.stop()
    assert evolution.sent_texts() == []
    assert evolution.number_checks() == [[WITH_NINE]]
    assert db.execute("SELECT refusal FROM outbox").fetchone()["refusal"] == "not_on_whatsapp"
    assert db.execute("SELECT sem_whatsapp_em IS NOT NULL AS marked FROM clientes").fetchone()["marked"]
    # No later campaign picks her up, so nothing asks WhatsApp again.
    assert (
        db.execute("SELECT count(*) AS n FROM campaign_audience(%s)", (start_campaign(db, "Outra"),)).fetchone()["n"]
        == 0
    )
    # A row queued anyway is refused at the gate without a check.
    row = db.execute(
        "INSERT INTO outbox (idempotency_key, kind, cliente_id, number, texto) "
        "SELECT 'manual', 'campaign', id, telefone, 'Oi' FROM clientes RETURNING id"
    ).fetchone()["id"]
    assert claim(db, row, WED_0900, ALWAYS)["reason"] == "not_on_whatsapp"


def test_a_doctor_who_wrote_gets_proactive_messages_at_the_form_she_writes_from(db, tmp_path):
    import_ana(db, tmp_path, WITH_NINE)
    msg_id, message = queued_message(db, payloads.upsert(phone=WITHOUT_NINE))
    db.execute("SELECT * FROM process_inbound(%s, %s)", (msg_id, Jsonb(message)))
    start_campaign(db)
    row = db.execute("SELECT id, number FROM outbox WHERE kind = 'campaign'").fetchone()
    result = claim(db, row["id"], WED_0900, ALWAYS)
    assert (result["claimed"], result["number"]) == (True, WITHOUT_NINE)


# ---------------------------------------------------------------- opt-out is about the person


def test_opt_out_from_one_form_blocks_campaigns_to_the_record_imported_in_the_other(
    api_client, db, evolution, claude, start_worker, tmp_path
):
    import_ana(db, tmp_path, WITH_NINE)
    start_worker()
    claude.queue_tool_use("registrar_opt_out", {"motivo": "pediu para parar"})
    claude.queue_reply("Entendido, não vou mais te enviar mensagens.")
    post(api_client, payloads.upsert(phone=WITHOUT_NINE, text="Não quero mais receber mensagens."))
    wait_for(lambda: settled(db) and evolution.sent_texts())

    assert count_clientes(db) == 1
    assert db.execute("SELECT telefone, opt_out FROM clientes").fetchone() == {"telefone": WITH_NINE, "opt_out": True}
    # No campaign picks the imported record up ...
    later = start_campaign(db, "Depois")
    assert db.execute("SELECT count(*) AS n FROM outbox WHERE campanha_id = %s", (later,)).fetchone()["n"] == 0
    # ... and a message queued for it before the opt-out is refused at the gate.
    queued = db.execute(
        "INSERT INTO outbox (idempotency_key, kind, cliente_id, number, texto, dispatched_at) "
        "SELECT 'queued-before', 'campaign', id, telefone, 'Oi', now() FROM clientes RETURNING id"
    ).fetchone()["id"]
    assert claim(db, queued, WED_0900, ALWAYS)["reason"] == "opted_out"
    assert db.execute("SELECT state FROM outbox WHERE id = %s", (queued,)).fetchone()["state"] == "failed"


def two_rows_of_ana(db) -> tuple[int, int]:
    """A database from before the identity rule: the imported row and the one her 12-digit JID created."""
    ids = db.execute(
        "INSERT INTO clientes (telefone, nome, whatsapp_numero) VALUES (%s, 'Ana Souza', %s), (%s, 'Aninha', %s) "
        "RETURNING id",
        (WITH_NINE, WITH_NINE, WITHOUT_NINE, WITHOUT_NINE),
    ).fetchall()
    return ids[0]["id"], ids[1]["id"]


def test_an_opt_out_on_a_duplicate_row_blocks_every_row_of_the_person_before_any_merge(db):
    imported, duplicate = two_rows_of_ana(db)
    conv = db.execute(
        "INSERT INTO conversations (cliente_id, reply_jid) VALUES (%s, %s) RETURNING id", (duplicate, WITHOUT_NINE)
    ).fetchone()["id"]
    first = start_campaign(db, "Antes")
    rows = db.execute("SELECT id, cliente_id FROM outbox WHERE campanha_id = %s ORDER BY id", (first,)).fetchall()
    assert [r["cliente_id"] for r in rows] == [imported]  # one message per person even before the merge

    result = db.execute("SELECT execute_tool(%s, 'registrar_opt_out', '{}'::jsonb) AS r", (conv,)).fetchone()["r"]
    assert result["ok"] is True
    assert [r["opt_out"] for r in db.execute("SELECT opt_out FROM clientes ORDER BY id")] == [True, True]
    assert claim(db, rows[0]["id"], WED_0900, ALWAYS)["reason"] == "opted_out"
    # Even when only the duplicate carries it (an opt-out stored before this rule).
    db.execute("UPDATE clientes SET opt_out = false WHERE id = %s", (imported,))
    direct = db.execute(
        "INSERT INTO outbox (idempotency_key, kind, cliente_id, number, texto) "
        "VALUES ('direct', 'campaign', %s, %s, 'Oi') RETURNING id",
        (imported, WITH_NINE),
    ).fetchone()["id"]
    assert claim(db, direct, WED_0900, ALWAYS)["reason"] == "opted_out"
    later = start_campaign(db, "Depois")
    assert db.execute("SELECT count(*) AS n FROM outbox WHERE campanha_id = %s", (later,)).fetchone()["n"] == 0


# ---------------------------------------------------------------- ops lookup

OPS_SECRET = "test-jwt-secret-with-enough-bytes-for-hs256"


@pytest.fixture
def ops_client(test_env):
    from starlette.testclient import TestClient

    from app.core.config import load_settings
    from app.http.app import create_app

    with TestClient(create_app(load_settings("api", {**test_env, "JWT_SECRET_KEY": OPS_SECRET}))) as client:
        yield client


def test_ops_finds_a_doctor_by_any_form_of_her_address(ops_client, db):
    from app.core.tokens import mint_ops_token

    imported, duplicate = two_rows_of_ana(db)
    db.execute("UPDATE clientes SET lid = '555@lid' WHERE id = %s", (imported,))
    headers = {"authorization": f"Bearer {mint_ops_token(OPS_SECRET, 'marina', 5)}"}
    for address in (WITH_NINE, WITHOUT_NINE, f"{WITHOUT_NINE}:4@s.whatsapp.net", "+55 31 98765-4321", "555@lid"):
        response = ops_client.get("/ops/doctor", params={"address": address}, headers=headers)
        assert response.status_code == 200, (address, response.text)
        found = response.json()
        assert (found["id"], found["telefone"], found["outras_linhas"]) == (imported, WITH_NINE, [duplicate])
    assert ops_client.get("/ops/doctor", params={"address": "551133334444"}, headers=headers).status_code == 404
    assert ops_client.get("/ops/doctor", headers=headers).status_code == 400
    assert ops_client.get("/ops/doctor", params={"address": WITH_NINE}).status_code == 401
