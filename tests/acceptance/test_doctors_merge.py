"""`julia doctors merge`: rows that are one doctor (a database from before the
identity rule holds her imported 13-digit record and the row her 12-digit JID
created) are listed with --dry-run and folded with --yes, losing no message;
an opt-out on either row wins; a second run finds nothing."""

from __future__ import annotations

from tests.acceptance.conftest import run_julia

WITH_NINE, WITHOUT_NINE = "5531987654321", "553187654321"


def insert(db, sql: str, *params) -> int:
    return db.execute(sql + " RETURNING id", params).fetchone()["id"]


def message(db, conversation_id: int, cliente_id: int, message_id: str, autor: str = "medico") -> None:
    db.execute(
        "INSERT INTO interacoes (conversation_id, cliente_id, message_id, direcao, autor, texto, message_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now() - interval '1 hour')",
        (conversation_id, cliente_id, message_id, "entrada" if autor == "medico" else "saida", autor, message_id),
    )


def database_with_duplicates(db) -> dict[str, int]:
    esp = insert(db, "INSERT INTO especialidades (nome) VALUES ('Pediatria')")
    ana = insert(
        db,
        "INSERT INTO clientes (telefone, nome, crm, especialidade_id, tags) VALUES (%s, 'Ana Souza', 'CRM-MG 1', %s, "
        "'{importada}')",
        WITH_NINE,
        esp,
    )
    aninha = insert(
        db,
        "INSERT INTO clientes (telefone, nome, lid, opt_out, opt_out_em, opt_out_motivo, tags) "
        "VALUES (%s, 'Aninha', '777@lid', true, now(), 'pediu para parar', '{whatsapp}')",
        WITHOUT_NINE,
    )
    bruno = insert(db, "INSERT INTO clientes (telefone, nome) VALUES ('5511981677736', 'Bruno')")
    bruno_old = insert(db, "INSERT INTO clientes (telefone) VALUES ('551181677736')")
    # A landline and a mobile that only look alike: two doctors.
    db.execute("INSERT INTO clientes (telefone, nome) VALUES ('551133334444', 'Clínica'), ('5511933334444', 'Carla')")

    closed = insert(
        db,
        "INSERT INTO conversations (cliente_id, reply_jid, status, last_inbound_at) "
        "VALUES (%s, %s, 'encerrada', now() - interval '30 days')",
        ana,
        WITH_NINE,
    )
    ana_open = insert(
        db,
        "INSERT INTO conversations (cliente_id, reply_jid, last_inbound_at) VALUES (%s, %s, now() - interval '5 days')",
        ana,
        WITH_NINE,
    )
    aninha_open = insert(
        db,
        "INSERT INTO conversations (cliente_id, reply_jid, last_inbound_at) VALUES (%s, %s, now() - interval '1 hour')",
        aninha,
        WITHOUT_NINE,
    )
    message(db, closed, ana, "m1")
    message(db, ana_open, ana, "m2")
    message(db, ana_open, ana, "m3", autor="julia")
    message(db, aninha_open, aninha, "m4")
    message(db, aninha_open, aninha, "m5", autor="julia")
    message(db, aninha_open, aninha, "m6")
    hospital = insert(db, "INSERT INTO hospitais (nome, cidade, regiao) VALUES ('Hospital BH', 'BH', 'Centro')")
    periodo = insert(db, "INSERT INTO periodos (nome) VALUES ('Noturno 12h')")
    vaga = insert(
        db,
        "INSERT INTO vagas (hospital_id, especialidade_id, periodo_id, data, valor, status, reservada_por, "
        "reservada_em) VALUES (%s, %s, %s, current_date + 3, 1500, 'reservada', %s, now())",
        hospital,
        esp,
        periodo,
        aninha,
    )
    campaign = db.execute("SELECT create_campaign('Dezembro', 'Oi!', '{}'::jsonb, NULL, NULL) AS id").fetchone()["id"]
    for cliente in (ana, aninha):
        db.execute(
            "INSERT INTO outbox (idempotency_key, kind, campanha_id, cliente_id, number, texto) "
            "SELECT format('campaign:%%s:%%s', %s::bigint, id), 'campaign', %s, id, telefone, 'Oi!' "
            "FROM clientes WHERE id = %s",
            (campaign, campaign, cliente),
        )
    return {"ana": ana, "aninha": aninha, "bruno": bruno, "bruno_old": bruno_old, "vaga": vaga,
            "ana_open": ana_open, "aninha_open": aninha_open, "campaign": campaign}  # fmt: skip


def snapshot(db) -> list[dict]:
    return db.execute("SELECT id, telefone, nome, opt_out FROM clientes ORDER BY id").fetchall()


def test_dry_run_lists_the_duplicates_and_changes_nothing(test_env, db):
    ids = database_with_duplicates(db)
    before = snapshot(db)
    result = run_julia(["doctors", "merge", "--dry-run"], test_env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"would merge #{ids['aninha']} {WITHOUT_NINE} (Aninha) into #{ids['ana']} {WITH_NINE}")
    assert "1 conversations, 3 messages, opted out" in lines[0]
    assert lines[1].startswith(f"would merge #{ids['bruno_old']} 551181677736 (sem nome) into #{ids['bruno']}")
    assert lines[2] == "dry run: 2 duplicate rows would be merged; run with --yes to merge them"
    assert len(lines) == 3  # the landline and the mobile lookalike are not listed
    assert snapshot(db) == before


def test_yes_merges_losing_no_message_and_the_opt_out_wins(test_env, db):
    ids = database_with_duplicates(db)
    messages_before = db.execute("SELECT message_id, texto FROM interacoes ORDER BY message_id").fetchall()

    result = run_julia(["doctors", "merge", "--yes"], test_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "merged 2 duplicate rows; the removed rows are kept in clientes_fusoes"

    ana = db.execute("SELECT * FROM clientes WHERE id = %s", (ids["ana"],)).fetchone()
    assert (ana["telefone"], ana["nome"], ana["crm"], ana["lid"]) == (WITH_NINE, "Ana Souza", "CRM-MG 1", "777@lid")
    assert (ana["opt_out"], ana["opt_out_motivo"]) == (True, "pediu para parar")
    assert sorted(ana["tags"]) == ["importada", "whatsapp"]
    assert db.execute("SELECT count(*) AS n FROM clientes").fetchone()["n"] == 4
    # Every message is still there, all hers.
    assert db.execute("SELECT message_id, texto FROM interacoes ORDER BY message_id").fetchall() == messages_before
    owners = db.execute("SELECT DISTINCT cliente_id FROM interacoes").fetchall()
    assert owners == [{"cliente_id": ids["ana"]}]
    # One open conversation: the one she wrote in most recently.
    convs = db.execute("SELECT id, status FROM conversations WHERE cliente_id = %s ORDER BY id", (ids["ana"],))
    assert [(c["id"], c["status"]) for c in convs.fetchall()][1:] == [
        (ids["ana_open"], "encerrada"),
        (ids["aninha_open"], "aberta"),
    ]
    assert db.execute("SELECT reservada_por FROM vagas WHERE id = %s", (ids["vaga"],)).fetchone() == {
        "reservada_por": ids["ana"]
    }
    # The campaign goes once to her, and not at all while she is opted out.
    sends = db.execute("SELECT cliente_id, state, refusal FROM outbox ORDER BY id").fetchall()
    assert sends == [
        {"cliente_id": ids["ana"], "state": "queued", "refusal": None},
        {"cliente_id": ids["ana"], "state": "failed", "refusal": "duplicate_person"},
    ]
    fusions = db.execute("SELECT mantido_id, removido_id, removido ->> 'nome' AS nome FROM clientes_fusoes ORDER BY id")
    assert fusions.fetchall() == [
        {"mantido_id": ids["ana"], "removido_id": ids["aninha"], "nome": "Aninha"},
        {"mantido_id": ids["bruno"], "removido_id": ids["bruno_old"], "nome": None},
    ]

    again = run_julia(["doctors", "merge", "--yes"], test_env)
    assert (again.returncode, again.stdout) == (0, "no duplicate doctors\n")


def test_merge_needs_dry_run_or_yes(test_env):
    result = run_julia(["doctors", "merge"], test_env)
    assert result.returncode == 2
    assert "--dry-run" in result.stderr
