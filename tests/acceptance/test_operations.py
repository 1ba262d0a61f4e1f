"""Operating Julia from the command line: pause/resume/status, bootstrap,
scheduler replicas, and connection-string rules."""

from __future__ import annotations

import json

from tests.acceptance.conftest import run_julia
from tests.conftest import database_url_for, wait_for


def test_pause_resume_status_go_through_sql_with_manual_channel(test_env, db):
    paused = run_julia(["pause", "--reason", "manutenção programada"], test_env)
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["status"] == "pausado"
    status = json.loads(run_julia(["status"], test_env).stdout)
    assert (status["status"], status["motivo"], status["alterado_via"]) == (
        "pausado",
        "manutenção programada",
        "manual",
    )
    assert json.loads(run_julia(["resume", "--reason", "ok"], test_env).stdout)["status"] == "ativo"
    history = db.execute("SELECT status, alterado_via FROM julia_status ORDER BY id").fetchall()
    assert history[-2:] == [
        {"status": "pausado", "alterado_via": "manual"},
        {"status": "ativo", "alterado_via": "manual"},
    ]


def test_pause_without_reason_is_refused(test_env):
    result = run_julia(["pause"], test_env)
    assert result.returncode == 2
    assert "--reason" in result.stderr


def test_bootstrap_cli_is_idempotent_and_needs_force_to_change_a_marker(test_env, db):
    first = run_julia(["db", "bootstrap"], test_env)
    assert first.returncode == 0, first.stderr
    assert "environment: unchanged" in first.stdout
    changed = run_julia(["db", "bootstrap"], {**test_env, "APP_ENV": "staging"})
    assert changed.returncode == 1
    assert "use --force" in changed.stderr
    assert db.execute("SELECT value FROM app_settings WHERE key='environment'").fetchone()["value"] == "test"


def test_two_schedulers_run_each_periodic_tick_once(spawn, test_env, db):
    # The scheduler never sends: it runs without Evolution or Anthropic settings.
    env = {k: v for k, v in test_env.items() if not k.startswith(("EVOLUTION_API", "EVOLUTION_INSTANCE", "ANTHROPIC"))}
    schedulers = [spawn(["run"], {**env, "RUN_MODE": "scheduler"}) for _ in range(2)]
    wait_for(lambda: db.execute("SELECT 1 FROM periodic_runs").fetchone(), timeout=40)
    # Both schedulers are up and had the chance to run the same tick.
    wait_for(lambda: db.execute("SELECT count(*) AS n FROM procrastinate_workers").fetchone()["n"] >= 2, timeout=20)
    assert all(s.proc.poll() is None for s in schedulers)
    ticks = db.execute(
        "SELECT task_name, tick, count(*) AS runs FROM periodic_runs GROUP BY task_name, tick"
    ).fetchall()
    assert ticks and all(t["runs"] == 1 for t in ticks), ticks


def test_worker_refuses_a_transaction_pooler_url(test_env):
    url = "postgresql://postgres.abcdefghijklmnopqrst:p%40ss%21w0rd@aws-0-sa-east-1.pooler.example.com:6543/postgres"
    result = run_julia(["worker"], {**test_env, "DATABASE_URL": url})
    assert result.returncode == 1
    assert "transaction pooler" in result.stderr
    assert "p@ss!w0rd" not in result.stderr + result.stdout
    assert "p%40ss%21w0rd" not in result.stderr + result.stdout


def test_unreachable_database_fails_without_leaking_the_password(test_env):
    url = "postgresql://julia:s3cr%3Ft%40pw@127.0.0.1:1/julia?connect_timeout=2"
    result = run_julia(["status"], {**test_env, "DATABASE_URL": url})
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "s3cr" not in result.stderr + result.stdout


def test_a_malformed_database_url_is_a_message_not_a_traceback(test_env):
    result = run_julia(["status"], {**test_env, "DATABASE_URL": "not a url s3cr3t"})
    assert result.returncode == 1
    assert "DATABASE_URL is not a PostgreSQL URL" in result.stderr
    assert "Traceback" not in result.stderr and "s3cr3t" not in result.stderr + result.stdout


def test_a_database_without_julia_says_to_upgrade(test_env):
    result = run_julia(["status"], {**test_env, "DATABASE_URL": database_url_for("postgres")})
    assert result.returncode == 1
    assert "run `julia db upgrade` first" in result.stderr and "Traceback" not in result.stderr


def test_a_campaign_nobody_matches_is_created_with_a_warning(test_env):
    created = run_julia(
        ["campaign", "create", "--nome", "Ninguém", "--especialidade", "Pediatria", "--template", "Oi"], test_env
    )
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["audiencia"] == 0 and "nenhum médico" in body["aviso"]


def test_campaign_commands_create_preview_start_pause_status(test_env, db):
    esp = db.execute("INSERT INTO especialidades (nome) VALUES ('Pediatria') RETURNING id").fetchone()["id"]
    db.execute(
        "INSERT INTO clientes (telefone, nome, especialidade_id) "
        "SELECT '5511980000' || lpad(g::text, 3, '0'), 'Médica ' || g, %s FROM generate_series(1, 5) AS g",
        (esp,),
    )
    env = {
        **test_env,
        "DIAS_SEMANA": "1,2,3,4,5,6,7",
        "HORARIO_INICIO": "00:00",
        "HORARIO_FIM": "23:59",
        "MAX_MSGS_POR_HORA": "2",
    }
    # The env's limits become the database's policy at bootstrap (with EVOLUTION_INSTANCE as the number).
    assert run_julia(["db", "bootstrap"], env).returncode == 0
    created = run_julia(
        [
            "campaign",
            "create",
            "--nome",
            "Pedi dezembro",
            "--especialidade",
            "Pediatria",
            "--template",
            "Oi {primeiro_nome}! Temos plantões de {especialidade}.",
        ],
        env,
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"] == "rascunho"
    preview = json.loads(run_julia(["campaign", "preview", "Pedi dezembro"], env).stdout)
    assert (preview["audiencia"], preview["limite_hora_restante"]) == (5, 2)
    assert preview["exemplo"] == "Oi Médica! Temos plantões de Pediatria."
    assert [(n["instance"], n["hoje_restam"]) for n in preview["numeros"]] == [("julia-test", 100)]
    assert preview["dias_necessarios"] == 1
    started = json.loads(run_julia(["campaign", "start", "Pedi dezembro"], env).stdout)
    assert (started["queued"], started["dispatched_now"]) == (5, 2)  # the first wave fits the hour
    assert run_julia(["campaign", "pause", "Pedi dezembro"], env).returncode == 0
    (status,) = json.loads(run_julia(["campaign", "status", "Pedi dezembro"], env).stdout)
    assert (status["status"], status["total"], status["pendentes"]) == ("pausada", 5, 5)
    assert status["por_numero"] == [{"instance": "-", "enviadas": 0, "pendentes": 5, "falhas": 0}]  # none claimed yet
    bad = run_julia(["campaign", "create", "--nome", "x", "--template", "Oi {apelido}"], env)
    assert bad.returncode == 1
    assert "template variable {apelido} is unknown" in bad.stderr
    assert run_julia(["campaign", "start", "nao-existe"], env).returncode == 1
