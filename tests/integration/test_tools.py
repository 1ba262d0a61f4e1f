"""Julia's tools as SQL functions, through execute_tool(): the same entry
point the worker uses."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from app.core.errors import InvalidInput, NotFound
from app.store.errors import wrap_db_errors
from tests.factories import Domain


@pytest.fixture
def domain(db):
    return Domain(db)


def tool(db, conversation_id, name, **args):
    return db.execute("SELECT execute_tool(%s, %s, %s) AS r", (conversation_id, name, Jsonb(args))).fetchone()["r"]


@pytest.fixture
def go_setup(domain):
    go = domain.especialidade("Ginecologia e Obstetrícia", "GO", "Gineco")
    pedi = domain.especialidade("Pediatria", "Pedi")
    sul = domain.hospital("Hospital Santa Aurora", cidade="São Paulo", regiao="Zona Sul SP")
    abc = domain.hospital("Hospital do ABC", cidade="Santo André", regiao="ABC")
    vagas = {
        "go_sul": domain.vaga(hospital_id=sul, especialidade_id=go, dias=5, valor=1800),
        "go_abc": domain.vaga(hospital_id=abc, especialidade_id=go, dias=2, valor=1600, periodo="Diurno 12h"),
        "go_closed": domain.vaga(hospital_id=sul, especialidade_id=go, status="preenchida"),
        "go_past": domain.vaga(hospital_id=sul, especialidade_id=go, dias=-1),
        "pedi": domain.vaga(hospital_id=sul, especialidade_id=pedi),
    }
    medico = domain.medico(especialidade_id=go, regiao="ABC")
    return {"go": go, "vagas": vagas, "medico": medico, "conversation": domain.conversation(medico)}


@pytest.mark.parametrize("asked", ["GO", "go", "Gineco", "ginecologia e obstetricia", "Ginecologia e Obstetrícia"])
def test_vaga_search_understands_aliases_and_returns_only_open_future_shifts(db, go_setup, asked):
    result = tool(db, go_setup["conversation"], "buscar_vagas", especialidade=asked)
    assert result["especialidade"] == "Ginecologia e Obstetrícia"
    ids = [v["vaga_id"] for v in result["vagas"]]
    # The doctor's region (ABC) first, then by date.
    assert ids == [go_setup["vagas"]["go_abc"], go_setup["vagas"]["go_sul"]]


def test_vaga_search_defaults_to_the_doctors_specialty_and_filters(db, go_setup):
    conv = go_setup["conversation"]
    assert {v["especialidade"] for v in tool(db, conv, "buscar_vagas")["vagas"]} == {"Ginecologia e Obstetrícia"}
    assert [v["cidade"] for v in tool(db, conv, "buscar_vagas", regiao="santo andre")["vagas"]] == ["Santo André"]
    assert [v["periodo"] for v in tool(db, conv, "buscar_vagas", periodo="diurno")["vagas"]] == ["Diurno 12h"]
    soon = tool(db, conv, "buscar_vagas", data_fim=str(date.today() + timedelta(days=3)))
    assert [v["vaga_id"] for v in soon["vagas"]] == [go_setup["vagas"]["go_abc"]]


def test_unknown_specialty_comes_back_as_information_for_the_model(db, go_setup):
    result = tool(db, go_setup["conversation"], "buscar_vagas", especialidade="Astrologia")
    assert result["vagas"] == []
    assert "não encontrada" in result["erro"]
    assert "Pediatria" in result["especialidades_conhecidas"]


def test_ten_doctors_racing_for_one_vaga_exactly_one_wins(db, database_url, domain, go_setup):
    vaga = go_setup["vagas"]["go_sul"]
    conversations = [domain.conversation(domain.medico(nome=f"Médico {n}")) for n in range(10)]
    barrier = threading.Barrier(10)
    results: list[dict] = []
    lock = threading.Lock()

    def reserve(conv: int) -> None:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
            barrier.wait()
            r = tool(conn, conv, "reservar_vaga", vaga_id=vaga)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=reserve, args=(c,)) for c in conversations]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r["resultado"] for r in results) == ["indisponivel"] * 9 + ["reservada"]
    row = db.execute("SELECT status, reservada_por FROM vagas WHERE id = %s", (vaga,)).fetchone()
    racers = {
        r["cliente_id"]
        for r in db.execute("SELECT cliente_id FROM conversations WHERE id = ANY(%s)", (conversations,)).fetchall()
    }
    assert row["status"] == "reservada"
    assert row["reservada_por"] in racers


def test_reserving_again_is_idempotent_for_the_same_doctor(db, go_setup):
    conv, vaga = go_setup["conversation"], go_setup["vagas"]["go_abc"]
    assert tool(db, conv, "reservar_vaga", vaga_id=vaga)["resultado"] == "reservada"
    assert tool(db, conv, "reservar_vaga", vaga_id=vaga)["resultado"] == "ja_reservada_para_voce"
    assert tool(db, conv, "reservar_vaga", vaga_id=999999)["resultado"] == "nao_encontrada"
    # A reserved vaga no longer shows up in searches.
    assert vaga not in [v["vaga_id"] for v in tool(db, conv, "buscar_vagas")["vagas"]]


def test_preferences_fill_profile_columns_and_merge_the_rest(db, go_setup):
    conv = go_setup["conversation"]
    tool(db, conv, "salvar_preferencias", crm="123456-SP", especialidade="pedi", periodos=["Noturno 12h"])
    tool(db, conv, "salvar_preferencias", valor_minimo=1500)
    row = db.execute(
        "SELECT c.crm, e.nome AS esp, c.preferencias FROM clientes c "
        "JOIN especialidades e ON e.id = c.especialidade_id WHERE c.id = %s",
        (go_setup["medico"],),
    ).fetchone()
    assert row == {
        "crm": "123456-SP",
        "esp": "Pediatria",
        "preferencias": {"periodos": ["Noturno 12h"], "valor_minimo": 1500},
    }


def test_bad_tool_input_raises_a_message_for_the_model(db, go_setup):
    conv = go_setup["conversation"]
    with pytest.raises(InvalidInput, match="vaga_id is required"), wrap_db_errors():
        tool(db, conv, "reservar_vaga")
    with pytest.raises(NotFound, match="unknown tool"), wrap_db_errors():
        tool(db, conv, "apagar_tudo")
    with pytest.raises(NotFound, match="não encontrada"), wrap_db_errors():
        tool(db, conv, "salvar_preferencias", especialidade="Astrologia")


def test_handoff_silences_julia_and_is_counted_in_metrics(db, go_setup):
    conv = go_setup["conversation"]
    tool(db, conv, "transferir_para_humano", motivo="pediu para falar com alguém")
    assert db.execute("SELECT silence_reason(%s) AS s", (conv,)).fetchone()["s"] == "handoff"
    m = db.execute("SELECT houve_handoff, motivo_handoff FROM metricas_conversa WHERE conversation_id = %s", (conv,))
    assert m.fetchone() == {"houve_handoff": True, "motivo_handoff": "pediu para falar com alguém"}
    assert db.execute("SELECT devolver_para_julia(%s) AS ok", (conv,)).fetchone()["ok"] is True
    assert db.execute("SELECT silence_reason(%s) AS s", (conv,)).fetchone()["s"] is None


def test_opt_out_is_recorded_once_with_date_and_reason(db, go_setup):
    conv = go_setup["conversation"]
    first = tool(db, conv, "registrar_opt_out", motivo="não quer mais mensagens")
    second = tool(db, conv, "registrar_opt_out")
    assert (first["ja_registrado"], second["ja_registrado"]) == (False, True)
    row = db.execute("SELECT opt_out, opt_out_em, opt_out_motivo FROM clientes WHERE id = %s", (go_setup["medico"],))
    row = row.fetchone()
    assert row["opt_out"] is True
    assert row["opt_out_em"] is not None
    assert row["opt_out_motivo"] == "não quer mais mensagens"
