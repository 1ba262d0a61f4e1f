"""`julia db import`: db/importer.sql, app/ops/importer.py and the demo data in db/demo/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from app.core.errors import InvalidInput
from app.ops.dbcopy import DEFAULT_TABLES
from app.ops.importer import DEMO_DIR, ImportFailed, import_directory, load_directory
from app.store.errors import wrap_db_errors
from app.store.schema import ROOT

# What `julia db import` writes: the seed tables dbcopy carries, but campaigns.
TABLES = tuple(t for t in DEFAULT_TABLES if t != "campanhas")


def snapshot(db: psycopg.Connection) -> dict[str, str]:
    """Every imported table's rows, as one md5 per table."""
    return {
        table: db.execute(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) AS h FROM {table} AS t"
        ).fetchone()["h"]
        for table in TABLES
    }


def count(db: psycopg.Connection, table: str) -> int:
    return db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_loads_everything(db):
    counts = import_directory(db, DEMO_DIR)

    assert counts == {
        "especialidades.csv": 12,
        "hospitais.csv": 8,
        "setores.csv": 8,
        "periodos.csv": 5,
        "tipos_vaga.csv": 4,
        "formas_recebimento.csv": 4,
        "medicos.csv": 6,
        "vagas.csv": 52,
        "conhecimento.json": 32,
        "diretrizes.json": 11,
        "prompts.json": 1,
    }
    vagas = db.execute(
        """SELECT count(*) AS n, min(data) > (now() AT TIME ZONE 'America/Sao_Paulo')::date AS future,
                  count(*) FILTER (WHERE status = 'aberta') AS abertas,
                  count(*) FILTER (WHERE setor_id IS NULL OR tipo_vaga_id IS NULL
                                         OR forma_recebimento_id IS NULL) AS incomplete
             FROM vagas"""
    ).fetchone()
    assert vagas == {"n": 52, "future": True, "abertas": 47, "incomplete": 0}
    assert count(db, "conhecimento_julia") == 32
    assert db.execute("SELECT nome, versao FROM prompts WHERE ativo").fetchall() == [
        {"nome": "julia_system", "versao": 1}
    ]
    assert "{empresa}" in db.execute("SELECT conteudo FROM prompts WHERE ativo").fetchone()["conteudo"]
    assert count(db, "diretrizes") == 11
    noturno = db.execute("SELECT hora_inicio::text, hora_fim::text FROM periodos WHERE nome = 'Noturno 12h'")
    assert noturno.fetchone() == {"hora_inicio": "19:00:00", "hora_fim": "07:00:00"}


@pytest.mark.parametrize(
    ("alias", "especialidade"),
    [("go", "Ginecologia e Obstetrícia"), ("CLINICO GERAL", "Clínica Médica"), ("uti", "Medicina Intensiva")],
)
def test_demo_aliases_resolve(db, alias, especialidade):
    import_directory(db, DEMO_DIR)
    row = db.execute(
        """SELECT e.nome FROM especialidades_alias AS a JOIN especialidades AS e ON e.id = a.especialidade_id
            WHERE a.alias_norm = normalize_text(%s)""",
        (alias,),
    ).fetchone()
    assert row == {"nome": especialidade}
    hospital = db.execute(
        """SELECT h.nome FROM hospitais_alias AS a JOIN hospitais AS h ON h.id = a.hospital_id
            WHERE a.alias_norm = normalize_text('sao lucas')"""
    ).fetchone()
    assert hospital == {"nome": "Hospital São Lucas de Santo Amaro"}


def test_demo_doctors_are_linked_to_their_specialty(db):
    import_directory(db, DEMO_DIR)
    ana = db.execute(
        """SELECT c.nome, e.nome AS especialidade, c.regiao, c.tags, c.opt_out
             FROM clientes AS c JOIN especialidades AS e ON e.id = c.especialidade_id
            WHERE c.telefone = '5511999990001'"""
    ).fetchone()
    assert ana == {
        "nome": "Ana Souza",
        "especialidade": "Clínica Médica",
        "regiao": "Zona Sul SP",
        "tags": ["demo", "prefere_noturno"],
        "opt_out": False,
    }


def test_importing_twice_changes_nothing(db):
    import_directory(db, DEMO_DIR)
    before = snapshot(db)

    reports = load_directory(db, DEMO_DIR)

    assert snapshot(db) == before
    assert all(r.inserted == 0 and r.updated == 0 and r.skipped == r.rows for r in reports)
    assert sum(r.rows for r in reports) == 143


def test_unknown_hospital_aborts_its_file_and_names_file_line_and_hospital(db, tmp_path):
    import_directory(db, DEMO_DIR)
    before = snapshot(db)
    header = "hospital,especialidade,setor,periodo,tipo_vaga,forma_recebimento,dias_a_partir_de_hoje,valor,status\n"
    write(
        tmp_path,
        "vagas.csv",
        header
        + "Hospital Serra Verde,Cardiologia,Enfermaria,Manhã,Plantão avulso,PJ,30,1200,aberta\n"
        + "Hospital Fantasma,Cardiologia,Enfermaria,Manhã,Plantão avulso,PJ,31,1200,aberta\n",
    )

    with pytest.raises(ImportFailed) as failed:
        import_directory(db, tmp_path)

    assert str(failed.value) == "vagas.csv line 3: import_vaga: hospital 'Hospital Fantasma' not found"
    assert snapshot(db) == before  # the good row on line 2 was rolled back with its file


def test_bad_row_names_the_unknown_reference(db, tmp_path):
    import_directory(db, DEMO_DIR)
    header = "hospital,especialidade,setor,periodo,dias_a_partir_de_hoje,valor\n"
    cases = {
        "HSV,Dermatologia,Enfermaria,Manhã,3,100": "especialidade 'Dermatologia' not found",
        "HSV,Neuro,Cozinha,Manhã,3,100": "setor 'Cozinha' not found",
        "HSV,Neuro,,Madrugada,3,100": "periodo 'Madrugada' not found",
        "HSV,Neuro,,Manhã,3,mil reais": "valor 'mil reais' is not a number",
        "HSV,Neuro,,Manhã,,100": "data or dias_a_partir_de_hoje is required",
    }
    for row, reason in cases.items():
        write(tmp_path, "vagas.csv", header + row + "\n")
        with pytest.raises(ImportFailed, match=f"^vagas.csv line 2: import_vaga: {reason}$"):
            import_directory(db, tmp_path)


def test_spreadsheet_style_csv(db, tmp_path):
    """Semicolons, a BOM, aliases, Brazilian money and dates: what Excel in pt-BR saves."""
    import_directory(db, DEMO_DIR)
    text = (
        "\ufeffhospital;especialidade;setor;periodo;tipo_vaga;forma_recebimento;data;valor;status\n"
        "serra verde;gineco;Centro Obstétrico;diurno 12h;plantão avulso;pj;01/03/2099;R$ 1.234,50;Aberta\n"
    )
    write(tmp_path, "vagas.csv", text)

    assert import_directory(db, tmp_path) == {"vagas.csv": 1}

    vaga = db.execute(
        """SELECT h.nome AS hospital, e.nome AS especialidade, v.data::text, v.valor::text, v.status
             FROM vagas AS v JOIN hospitais AS h ON h.id = v.hospital_id
             JOIN especialidades AS e ON e.id = v.especialidade_id
            WHERE v.data = '2099-03-01'"""
    ).fetchone()
    assert vaga == {
        "hospital": "Hospital Serra Verde",
        "especialidade": "Ginecologia e Obstetrícia",
        "data": "2099-03-01",
        "valor": "1234.50",
        "status": "aberta",
    }


def test_json_errors_name_the_line_of_the_bad_item(db, tmp_path):
    items = [
        {"fonte": "FAQ", "titulo": "Um", "conteudo": "Primeiro."},
        {"fonte": "FAQ", "titulo": "Dois", "conteudo": "  "},
    ]
    write(tmp_path, "conhecimento.json", json.dumps(items, indent=2))  # item 2 starts on line 7

    with pytest.raises(ImportFailed, match=r"^conhecimento.json line 7: import_conhecimento: conteudo is required$"):
        import_directory(db, tmp_path)
    assert count(db, "conhecimento_julia") == 0


def test_changed_knowledge_is_updated_and_gets_a_new_hash(db, tmp_path):
    import_directory(db, DEMO_DIR)
    old = db.execute("SELECT id, content_hash FROM conhecimento_julia WHERE titulo = 'Prazo de pagamento'").fetchone()
    items = json.loads((DEMO_DIR / "conhecimento.json").read_text(encoding="utf-8"))
    for item in items:
        if item["titulo"] == "Prazo de pagamento":
            item["conteudo"] = "O pagamento é feito até o dia 15 do mês seguinte ao plantão."
    write(tmp_path, "conhecimento.json", json.dumps(items, ensure_ascii=False))

    [report] = load_directory(db, tmp_path)

    assert (report.inserted, report.updated, report.skipped) == (0, 1, 31)
    new = db.execute("SELECT id, content_hash FROM conhecimento_julia WHERE titulo = 'Prazo de pagamento'").fetchone()
    assert new["id"] == old["id"]
    assert new["content_hash"] != old["content_hash"]


def test_import_never_clears_opt_out(db, tmp_path):
    import_directory(db, DEMO_DIR)
    db.execute("UPDATE clientes SET opt_out = true, opt_out_em = now() WHERE telefone = '5511999990001'")
    write(tmp_path, "medicos.csv", "telefone,nome,tags,opt_out\n+55 (11) 99999-0001,Ana Souza Lima,vip,não\n")

    [report] = load_directory(db, tmp_path)

    assert report.updated == 1
    ana = db.execute("SELECT nome, opt_out, tags FROM clientes WHERE telefone = '5511999990001'").fetchone()
    assert ana == {"nome": "Ana Souza Lima", "opt_out": True, "tags": ["demo", "prefere_noturno", "vip"]}


def test_activating_a_new_prompt_version_deactivates_the_previous(db, tmp_path):
    import_directory(db, DEMO_DIR)
    v2 = {"nome": "julia_system", "versao": 2, "ativo": True, "conteudo": "Você é a Julia, da {empresa}. (v2)"}
    write(tmp_path, "prompts.json", json.dumps([v2]))

    assert load_directory(db, tmp_path)[0].inserted == 1

    rows = db.execute("SELECT versao, ativo FROM prompts WHERE nome = 'julia_system' ORDER BY versao").fetchall()
    assert rows == [{"versao": 1, "ativo": False}, {"versao": 2, "ativo": True}]
    assert load_directory(db, tmp_path)[0].skipped == 1

    # Re-activating version 1 from the demo file switches back; versions are immutable.
    assert load_directory(db, DEMO_DIR)[-1].file == "prompts.json"
    assert db.execute("SELECT versao FROM prompts WHERE ativo").fetchall() == [{"versao": 1}]
    write(tmp_path, "prompts.json", json.dumps([{**v2, "conteudo": "outro texto"}]))
    with pytest.raises(ImportFailed, match="prompt 'julia_system' versao 2 already exists with other conteudo"):
        import_directory(db, tmp_path)


def test_dry_run_checks_everything_and_writes_nothing(db):
    before = snapshot(db)

    reports = load_directory(db, DEMO_DIR, dry_run=True)

    assert {r.file: r.inserted for r in reports}["vagas.csv"] == 52  # vagas saw the hospitals of the dry run
    assert snapshot(db) == before


def test_lookup_only_accepts_lookup_tables(db):
    with pytest.raises(InvalidInput, match="'clientes' is not a lookup table"), wrap_db_errors():
        db.execute("SELECT import_lookup('clientes', 'x')")
    assert db.execute("SELECT import_lookup('setores', 'Hemodinâmica') AS a").fetchone() == {"a": "inserted"}
    assert db.execute("SELECT import_lookup('setores', 'Hemodinâmica') AS a").fetchone() == {"a": "skipped"}


def test_directory_without_known_files_is_an_error(db, tmp_path):
    write(tmp_path, "hospital.csv", "nome\nX\n")
    with pytest.raises(ImportFailed, match="has none of the files the importer knows"):
        import_directory(db, tmp_path)


def run_cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.ops.cli", "db", "import", *args],
        env={**os.environ, "APP_ENV": "test", "DATABASE_URL": database_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_imports_the_demo_and_prints_counts(db, database_url):
    result = run_cli(database_url, "db/demo")

    assert result.returncode == 0, result.stderr
    assert "vagas.csv: 52 rows, 52 inserted, 0 updated, 0 skipped" in result.stdout.splitlines()
    assert "conhecimento.json: 32 rows, 32 inserted, 0 updated, 0 skipped" in result.stdout.splitlines()
    assert count(db, "vagas") == 52


def test_cli_reports_a_bad_row_and_exits_1(db, database_url, tmp_path):
    shutil.copy(DEMO_DIR / "especialidades.csv", tmp_path)
    write(tmp_path, "hospitais.csv", "nome,regiao\nHospital Um,Zona Sul SP\n")

    result = run_cli(database_url, str(tmp_path))

    assert result.returncode == 1
    assert "julia: error: hospitais.csv line 2: import_hospital: cidade is required" in result.stderr
    assert count(db, "especialidades") == 12  # the file before the bad one stays imported
    assert count(db, "hospitais") == 0
