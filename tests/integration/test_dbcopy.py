"""`julia db copy` between two real databases on the embedded server: full
copy, re-run, partial target, the refusals (as real CLI subprocesses), and a
URL-encoded password."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from rich.console import Console

from app.ops import dbcopy
from app.ops.dbcopy.catalog import connect as copy_connect
from app.store.dburl import parse_database_url
from tests.conftest import PGDATA, database_url_for

JULIA_COPY = [sys.executable, "-m", "app.ops.cli", "db", "copy"]

SEED_SOURCE = """
INSERT INTO especialidades (nome) SELECT 'Especialidade ' || g FROM generate_series(1, 12) AS g;
INSERT INTO especialidades_alias (especialidade_id, alias) SELECT id, 'Espec. ' || id FROM especialidades;
INSERT INTO hospitais (nome, cidade, regiao, endereco)
    SELECT 'Hospital ' || g, 'São Paulo', 'Zona Sul SP', 'Av. Paulista, ' || g FROM generate_series(1, 8) AS g;
INSERT INTO hospitais_alias (hospital_id, alias) SELECT id, 'HSP ' || id FROM hospitais;
INSERT INTO setores (nome) VALUES ('UTI'), ('Pronto-socorro'), ('Enfermaria');
INSERT INTO periodos (nome, hora_inicio, hora_fim)
    VALUES ('Diurno 12h', '07:00', '19:00'), ('Noturno 12h', '19:00', '07:00');
INSERT INTO tipos_vaga (nome) VALUES ('Plantão'), ('Cobertura');
INSERT INTO formas_recebimento (nome) VALUES ('PJ'), ('RPA');
INSERT INTO clientes (telefone, nome, crm, especialidade_id, regiao, cidade, preferencias, tags)
    SELECT '55119' || lpad(g::text, 8, '0'), 'Dra. Médica ' || g, 'CRM-SP ' || (100000 + g),
           (SELECT min(id) FROM especialidades) + g % 12, 'Zona Sul SP', 'São Paulo',
           jsonb_build_object('turnos', jsonb_build_array('noite', 'fim de semana'), 'valor_minimo', 1000 + g,
                              'nota', 'diz "ação" às 19h'),
           ARRAY['tag' || g % 3, 'sp']
      FROM generate_series(1, 300) AS g;
INSERT INTO vagas (hospital_id, especialidade_id, setor_id, periodo_id, tipo_vaga_id, forma_recebimento_id,
                   data, valor, status, reservada_por, reservada_em, observacoes)
    SELECT (SELECT min(id) FROM hospitais) + g % 8, (SELECT min(id) FROM especialidades) + g % 12,
           (SELECT min(id) FROM setores), (SELECT min(id) FROM periodos), (SELECT min(id) FROM tipos_vaga),
           (SELECT min(id) FROM formas_recebimento), DATE '2026-12-01' + g % 30, 1500.50 + g,
           CASE WHEN g % 10 = 0 THEN 'reservada' ELSE 'aberta' END,
           CASE WHEN g % 10 = 0 THEN (SELECT min(id) FROM clientes) + g END,
           CASE WHEN g % 10 = 0 THEN TIMESTAMPTZ '2026-11-20 10:00-03' END, 'Plantão de 12h, levar carimbo.'
      FROM generate_series(1, 120) AS g;
INSERT INTO conhecimento_julia (fonte, titulo, conteudo, tags, embedding, embedding_model)
    SELECT 'manual', 'Tópico ' || g, repeat('Como funciona o pagamento? ', 20) || g, ARRAY['faq'],
           CASE WHEN g % 5 <> 0 THEN
               (SELECT array_agg(random()::real - 0.5)::real[] FROM generate_series(1, 1024) WHERE g > 0)
                   ::extensions.vector
           END,
           CASE WHEN g % 5 <> 0 THEN 'voyage-3.5-lite' END
      FROM generate_series(1, 15) AS g;
INSERT INTO diretrizes (titulo, texto, prioridade)
    SELECT 'Diretriz ' || g, 'Nunca prometa valores fora da tabela.', g FROM generate_series(1, 6) AS g;
INSERT INTO prompts (nome, versao, conteudo, ativo)
    SELECT 'julia_base', g, repeat('Você é a Júlia. ', 40), g = 3 FROM generate_series(1, 3) AS g;
"""
# The seed above fills every default table but campanhas.
COPIED = tuple(t for t in dbcopy.DEFAULT_TABLES if t != "campanhas")


def fingerprint(url: str, table: str) -> tuple[int, str]:
    """Row count and md5 of every row (generated columns too) in id order, independent of dbcopy."""
    query = sql.SQL("SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {} AS t").format(
        sql.Identifier("public", table)
    )
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()


def fingerprints(url: str) -> dict[str, tuple[int, str]]:
    return {table: fingerprint(url, table) for table in COPIED}


def execute(url: str, statement: str, params: object = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APP_ENV": "test", "COLUMNS": "200"}
    return subprocess.run(
        [*JULIA_COPY, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def copy_in_process(source: str, target: str, **kwargs: object) -> dbcopy.CopyReport:
    quiet = Console(file=io.StringIO(), width=200)
    return dbcopy.run_copy(source, target, assume_yes=True, out=quiet, err=quiet, **kwargs)


@pytest.fixture
def make_database(postgresql: psycopg.Connection, postgresql_proc) -> Iterator[Callable[[], str]]:
    """Create more databases from the migrated, bootstrapped template; dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"julia_copy_{uuid.uuid4().hex[:10]}"
        execute(
            database_url_for("postgres"),
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY = FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(postgresql_proc.template_dbname)
            ),
        )
        created.append(name)
        return database_url_for(name)

    yield make
    for name in created:
        execute(
            database_url_for("postgres"),
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        )


@pytest.fixture
def source(database_url: str) -> str:
    execute(database_url, SEED_SOURCE)
    return database_url


@pytest.fixture
def target(make_database: Callable[[], str]) -> str:
    return make_database()


# ------------------------------------------------------------
# Ordering
# ------------------------------------------------------------


def test_fk_order_puts_parents_first_and_keeps_the_given_order_otherwise() -> None:
    edges = [("vagas", "hospitais"), ("vagas", "clientes"), ("clientes", "especialidades"), ("vagas", "vagas")]
    assert dbcopy.fk_order(["vagas", "diretrizes", "clientes", "hospitais", "especialidades"], edges) == [
        "diretrizes",
        "hospitais",
        "especialidades",
        "clientes",
        "vagas",
    ]


def test_fk_order_reports_a_cycle() -> None:
    with pytest.raises(dbcopy.CopyRefused, match=r"cycle \(a → b → a\)"):
        dbcopy.fk_order(["a", "b", "c"], [("a", "b"), ("b", "a"), ("c", "a")])


# ------------------------------------------------------------
# Copies
# ------------------------------------------------------------


def test_full_copy_equals_source(source: str, target: str) -> None:
    result = run_cli("--from", source, "--to", target, "--yes")

    assert result.returncode == 0, result.stderr
    assert "verified: every source key of" in result.stdout
    assert fingerprints(target) == fingerprints(source)
    with psycopg.connect(target) as conn:
        # Sequences are past the copied ids: a new row gets a fresh id.
        new_id = conn.execute("INSERT INTO especialidades (nome) VALUES ('Nova') RETURNING id").fetchone()[0]
        assert new_id > conn.execute("SELECT max(id) FROM especialidades WHERE nome <> 'Nova'").fetchone()[0]


def test_vectors_and_jsonb_are_copied_intact_in_binary(source: str, target: str) -> None:
    report = copy_in_process(source, target)

    assert report.ok
    formats = {t.name: t.binary for t in report.plan.tables}
    assert formats["conhecimento_julia"] and formats["clientes"]
    order = [t.name for t in report.plan.tables]
    assert order.index("especialidades") < order.index("clientes") < order.index("vagas")
    assert order.index("hospitais") < order.index("hospitais_alias")
    check = "SELECT id, embedding::text, content_hash, tsv::text FROM conhecimento_julia ORDER BY id"
    with psycopg.connect(source) as s, psycopg.connect(target) as t:
        assert s.execute(check).fetchall() == t.execute(check).fetchall()
        prefs = "SELECT id, preferencias, tags FROM clientes ORDER BY id"
        assert s.execute(prefs).fetchall() == t.execute(prefs).fetchall()
    assert {r.name: r.source_checksum == r.target_checksum for r in report.results} == dict.fromkeys(
        [t.name for t in report.plan.tables], True
    )


def test_rerun_copies_nothing_and_changes_nothing(source: str, target: str) -> None:
    assert copy_in_process(source, target).ok
    before = fingerprints(target)

    report = copy_in_process(source, target)

    assert report.ok
    assert [r.inserted for r in report.results] == [0] * len(report.results)
    assert fingerprints(target) == before


def test_partial_target_keeps_its_rows_and_adds_the_missing(source: str, target: str) -> None:
    assert copy_in_process(source, target, tables=["especialidades", "clientes"]).ok
    execute(target, "DELETE FROM clientes WHERE id IN (SELECT id FROM clientes ORDER BY id LIMIT 50)")
    execute(
        target,
        "UPDATE clientes SET nome = 'Nome da produção' WHERE id IN (SELECT id FROM clientes ORDER BY id DESC LIMIT 10)",
    )
    execute(target, "INSERT INTO clientes (telefone, nome) VALUES ('5511999990000', 'Só na produção')")

    report = copy_in_process(source, target)

    assert report.ok
    clientes = next(r for r in report.results if r.name == "clientes")
    assert (clientes.inserted, clientes.kept_differs, clientes.missing) == (50, 10, 0)
    assert clientes.target_after == clientes.source_rows + 1
    assert clientes.source_checksum != clientes.target_checksum
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM clientes WHERE nome = 'Nome da produção'").fetchone()[0] == 10
        assert conn.execute("SELECT count(*) FROM clientes WHERE nome = 'Só na produção'").fetchone()[0] == 1
    others = {
        r.name: (r.inserted, r.kept_differs) for r in report.results if r.name not in ("clientes", "especialidades")
    }
    assert all(kept == 0 for _, kept in others.values())
    assert fingerprint(target, "vagas") == fingerprint(source, "vagas")


def test_partial_target_is_reported_as_kept(source: str, target: str) -> None:
    execute(target, "INSERT INTO setores (id, nome) OVERRIDING SYSTEM VALUE VALUES (1, 'UTI adulto')")

    result = run_cli("--from", source, "--to", target, "--tables", "setores", "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "kept (differs)" in result.stdout
    assert "1 rows the target already had with other content were kept" in result.stdout


def test_a_source_key_lost_to_another_unique_key_fails_verification(source: str, target: str) -> None:
    # The target already has 'Especialidade 1' under another id: the source's row cannot go in.
    execute(target, "INSERT INTO especialidades (id, nome) OVERRIDING SYSTEM VALUE VALUES (900, 'Especialidade 1')")

    result = run_cli("--from", source, "--to", target, "--tables", "especialidades", "--yes")

    assert result.returncode == 1
    assert "FAIL: 1 missing" in result.stdout
    assert "verification FAILED for especialidades" in result.stdout


def test_a_doctor_the_target_has_in_another_form_is_not_copied_as_a_second_record(source: str, target: str) -> None:
    # DEV has her with the ninth digit; PROD already has her 12-digit form under another id.
    execute(source, "UPDATE clientes SET telefone = '5531987654321' WHERE id = (SELECT min(id) FROM clientes)")
    execute(
        target, "INSERT INTO clientes (id, telefone, nome) OVERRIDING SYSTEM VALUE VALUES (9000, '553187654321', 'Ana')"
    )

    result = run_cli("--from", source, "--to", target, "--tables", "especialidades", "clientes", "--yes")

    assert result.returncode == 1
    assert "1 doctors were left out" in " ".join(result.stdout.split())
    with psycopg.connect(target) as conn:
        rows = conn.execute("SELECT id FROM clientes WHERE phone_key(telefone) = '5531987654321'").fetchall()
        assert rows == [(9000,)]
        assert conn.execute("SELECT count(*) FROM clientes").fetchone()[0] == 300  # 299 copied + hers


def test_arrays_of_types_whose_oids_differ_go_as_text(source: str, target: str) -> None:
    # Binary arrays carry their element type's oid, which differs between databases for a user type.
    for url in (source, target):
        execute(url, "CREATE TYPE public.turno AS ENUM ('dia', 'noite')")
        execute(url, "CREATE TABLE public.copy_probe (id int PRIMARY KEY, turnos public.turno[], info jsonb)")
    execute(source, "INSERT INTO public.copy_probe VALUES (1, '{dia,noite}', '{\"a\": [1, 2]}'), (2, '{}', 'null')")

    report = copy_in_process(source, target, tables=["copy_probe"])

    assert report.ok
    assert [t.binary for t in report.plan.tables] == [False]
    assert report.results[0].inserted == 2
    check = "SELECT id, turnos::text, info FROM copy_probe ORDER BY id"
    with psycopg.connect(source) as s, psycopg.connect(target) as t:
        assert s.execute(check).fetchall() == t.execute(check).fetchall()


def test_confirmation_decides(source: str, target: str) -> None:
    quiet = Console(file=io.StringIO(), width=200)
    asked: list[str] = []

    def say_no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(dbcopy.CopyRefused, match="copy cancelled; nothing was written"):
        dbcopy.run_copy(source, target, tables=["setores"], confirm=say_no, out=quiet, err=quiet)
    assert asked and "Copy up to 3 rows in 1 tables" in asked[0]
    assert fingerprint(target, "setores")[0] == 0

    report = dbcopy.run_copy(source, target, tables=["setores"], confirm=lambda q: True, out=quiet, err=quiet)
    assert report.ok and report.plan.tables[0].new_rows == 3
    assert fingerprint(target, "setores") == fingerprint(source, "setores")


def test_dry_run_prints_the_plan_and_writes_nothing(source: str, target: str) -> None:
    before = fingerprints(target)

    result = run_cli("--from", source, "--to", target, "--dry-run")

    assert result.returncode == 0, result.stderr
    assert "dry run: nothing was written" in result.stdout
    lines = result.stdout.splitlines()
    position = {t: next(i for i, line in enumerate(lines) if f" {t} " in line) for t in ("especialidades", "vagas")}
    assert position["especialidades"] < position["vagas"]
    assert "300" in next(line for line in lines if " clientes " in line)
    assert fingerprints(target) == before


def test_a_failing_table_rolls_back_and_says_so(source: str, target: str) -> None:
    # vagas without its parents: the foreign keys fail, nothing of vagas is written.
    result = run_cli("--from", source, "--to", target, "--tables", "vagas", "--yes")

    assert result.returncode == 1
    assert "vagas: insert or update on table" in result.stderr
    assert "Nothing of vagas was written" in result.stderr
    assert fingerprint(target, "vagas")[0] == 0


# ------------------------------------------------------------
# Refusals (the real CLI)
# ------------------------------------------------------------


def test_refuses_production_into_development(source: str, target: str) -> None:
    execute(source, "UPDATE app_settings SET value = 'production' WHERE key = 'environment'")
    execute(target, "UPDATE app_settings SET value = 'development' WHERE key = 'environment'")

    result = run_cli("--from", source, "--to", target, "--yes")

    assert result.returncode == 1
    assert "refusing to copy from a production database into a development one" in result.stderr
    assert fingerprint(target, "clientes")[0] == 0


def test_development_into_production_is_allowed(source: str, target: str) -> None:
    execute(source, "UPDATE app_settings SET value = 'development' WHERE key = 'environment'")
    execute(target, "UPDATE app_settings SET value = 'production' WHERE key = 'environment'")

    result = run_cli("--from", source, "--to", target, "--tables", "especialidades", "--yes")

    assert result.returncode == 0, result.stderr


def test_refuses_a_target_without_environment_marker(source: str, target: str) -> None:
    execute(target, "DELETE FROM app_settings WHERE key = 'environment'")

    result = run_cli("--from", source, "--to", target, "--yes")

    assert result.returncode == 1
    assert "has no environment marker" in result.stderr


def test_refuses_the_same_database_however_spelled(source: str, tmp_path: Path) -> None:
    same = run_cli("--from", source, "--to", source, "--yes")
    # Another path to the same socket directory: only the server can tell.
    alias = tmp_path / "sock"
    alias.symlink_to(PGDATA)
    dbname = parse_database_url(source).dbname
    spelled = run_cli("--from", source, "--to", f"postgresql://postgres@/{dbname}?host={alias}&port=5432", "--yes")

    for result in (same, spelled):
        assert result.returncode == 1
        assert "source and target are the same database" in result.stderr


def test_refuses_different_schema_versions(source: str, target: str) -> None:
    execute(target, "UPDATE alembic_version SET version_num = '0007'")

    result = run_cli("--from", source, "--to", target, "--yes")

    assert result.returncode == 1
    assert "schema versions differ" in result.stderr
    assert "target at 0007" in result.stderr


def test_refuses_a_transaction_pooler_url(source: str) -> None:
    pooler = "postgresql://postgres.example:secret@pooler.example.com:6543/postgres?sslmode=require"

    result = run_cli("--from", source, "--to", pooler, "--yes")

    assert result.returncode == 1
    assert "transaction pooler" in result.stderr
    assert "session pooler (port 5432)" in result.stderr
    assert "secret" not in result.stderr


def test_refuses_without_confirmation_when_not_a_terminal(source: str, target: str) -> None:
    result = run_cli("--from", source, "--to", target)

    assert result.returncode == 1
    assert "pass --yes" in result.stderr
    assert fingerprint(target, "clientes")[0] == 0


def test_refuses_per_database_state_tables(source: str, target: str) -> None:
    result = run_cli("--from", source, "--to", target, "--tables", "app_settings", "--yes")

    assert result.returncode == 1
    assert "app_settings is never copied" in result.stderr


# ------------------------------------------------------------
# Passwords
# ------------------------------------------------------------


@pytest.fixture
def copier_role(postgresql: psycopg.Connection) -> Iterator[tuple[str, str]]:
    role, password = f"copier_{uuid.uuid4().hex[:8]}", "p@ss:w/rd#50%x!"
    execute(
        database_url_for("postgres"),
        sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)),
    )
    yield role, password
    execute(database_url_for("postgres"), sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_password_with_special_characters_works(source: str, target: str, copier_role: tuple[str, str]) -> None:
    role, password = copier_role
    dbname = parse_database_url(source).dbname
    url = f"postgresql://{role}:{quote(password, safe='')}@/{dbname}?host={PGDATA}&port=5432&sslmode=disable"
    # libpq decodes it back (the embedded server trusts its socket, so it cannot check the password itself).
    assert conninfo_to_dict(url)["password"] == password
    assert parse_database_url(url).user == role
    with psycopg.connect(url) as conn:
        assert conn.info.password == password
        assert conn.execute("SELECT current_user").fetchone()[0] == role

    result = run_cli("--from", url, "--to", target, "--tables", "especialidades", "--yes")

    assert result.returncode == 0, result.stderr
    assert password not in result.stdout + result.stderr
    assert quote(password, safe="") not in result.stdout + result.stderr
    assert "sslmode disable" in result.stdout
    assert fingerprint(target, "especialidades") == fingerprint(source, "especialidades")


# ------------------------------------------------------------
# Empty tables: COPY straight in, GIN and HNSW indexes built after the rows
# ------------------------------------------------------------

INDEXES = """
SELECT c.relname AS table_name, i.relname AS index_name, pg_catalog.pg_get_indexdef(x.indexrelid) AS definition,
       x.indisvalid AND x.indisready AND x.indislive AS usable,
       pg_catalog.obj_description(i.oid, 'pg_class') AS comment
  FROM pg_catalog.pg_index AS x
  JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
  JOIN pg_catalog.pg_class AS c ON c.oid = x.indrelid
 WHERE c.relnamespace = 'public'::regnamespace
 ORDER BY 1, 2
"""
# Both indexes answer, with sequential scans off, what the rows hold.
BY_INDEX = """
SELECT (SELECT count(*) FROM conhecimento_julia WHERE tsv @@ to_tsquery('public.portuguese_unaccent', 'pagamento')),
       (SELECT count(*) FROM (SELECT id FROM conhecimento_julia
                               ORDER BY embedding OPERATOR(extensions.<=>) (SELECT embedding FROM conhecimento_julia
                                                        WHERE embedding IS NOT NULL ORDER BY id LIMIT 1)
                               LIMIT 5) AS n)
"""


@contextlib.contextmanager
def dbcopy_connections(source: str, target: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    with copy_connect(source) as s, copy_connect(target) as t:
        yield s, t


def indexes(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path = ''")  # definitions with every name qualified, whatever the session's path
        return conn.execute(INDEXES).fetchall()


def test_a_copy_into_empty_tables_leaves_every_index_as_the_revisions_made_it(source: str, target: str) -> None:
    before = indexes(target)
    assert ("conhecimento_julia", "conhecimento_embedding_idx") in [row[:2] for row in before]

    report = copy_in_process(source, target)

    assert report.ok
    assert {r.name: r.inserted for r in report.results} == {r.name: r.source_rows for r in report.results}
    assert indexes(target) == before == indexes(source)
    assert fingerprints(target) == fingerprints(source)
    with psycopg.connect(target) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + BY_INDEX))
        assert "conhecimento_tsv_idx" in plan and "conhecimento_embedding_idx" in plan
        assert conn.execute(BY_INDEX).fetchone() == (15, 5)


def test_an_empty_table_whose_copy_fails_keeps_its_indexes(source: str, target: str) -> None:
    # A rule only the target has: the load fails after its indexes were dropped.
    execute(target, "ALTER TABLE conhecimento_julia ADD CONSTRAINT only_here CHECK (fonte <> 'manual')")
    before = indexes(target)

    result = run_cli("--from", source, "--to", target, "--tables", "conhecimento_julia", "--yes")

    assert result.returncode == 1
    assert "Nothing of conhecimento_julia was written" in result.stderr
    assert fingerprint(target, "conhecimento_julia")[0] == 0
    assert indexes(target) == before


def test_an_index_with_a_comment_is_not_dropped(source: str, target: str) -> None:
    # A drop would lose what pg_get_indexdef does not give back: such an index is kept up row by row.
    execute(target, "COMMENT ON INDEX conhecimento_tsv_idx IS 'kept by hand'")
    before = indexes(target)

    assert copy_in_process(source, target, tables=["conhecimento_julia"]).ok

    assert indexes(target) == before
    assert "kept by hand" in [row[4] for row in before]
    assert fingerprint(target, "conhecimento_julia") == fingerprint(source, "conhecimento_julia")


def test_rows_that_came_in_after_the_plan_are_kept(source: str, target: str) -> None:
    # The plan saw an empty table; a row arrives before the copy: the copy inserts only what is missing.
    with psycopg.connect(source, row_factory=dict_row) as s, psycopg.connect(target, row_factory=dict_row) as t:
        (plan,) = dbcopy.plan_tables(s, t, ["setores"])
    assert plan.target_rows == 0
    execute(target, "INSERT INTO setores (id, nome) OVERRIDING SYSTEM VALUE VALUES (1, 'Só na produção')")

    with dbcopy_connections(source, target) as (s, t):
        inserted, _, _ = dbcopy.copy_table(s, t, plan, lambda rows, size: None)

    assert inserted == 2
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT nome FROM setores WHERE id = 1").fetchone() == ("Só na produção",)
        assert conn.execute("SELECT count(*) FROM setores").fetchone() == (3,)
