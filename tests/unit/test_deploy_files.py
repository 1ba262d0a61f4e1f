"""The deploy files keep the promises of docs/deploy.md.

The workflows are validated against GitHub's workflow schema (the copy
vendored by check-jsonschema) and, where the binary is installed, by
actionlint; their structure is then checked job by job. railway.json, the
Dockerfile (including its HEALTHCHECK command, run for real) and
.dockerignore are checked for what the deploy relies on, and docs/deploy.md
must name every variable the processes read and every secret CI uses.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = ROOT / ".github" / "workflows"
CI = WORKFLOW_DIR / "ci.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
RAILWAY = ROOT / "railway.json"
DOCS = ROOT / "docs" / "deploy.md"

MAIN_PUSH = "github.event_name == 'push' && github.ref == 'refs/heads/main'"

# Every variable the processes read in production (app/core/config.py, app/ops/cli.py, app/ops/db_commands.py).
ENV_VARS = (
    "RUN_MODE",
    "PORT",
    "DATABASE_URL",
    "APP_ENV",
    "SUPABASE_PROJECT_REF",
    "EVOLUTION_WEBHOOK_SECRET",
    "EVOLUTION_API_URL",
    "EVOLUTION_API_KEY",
    "EVOLUTION_INSTANCE",
    "ANTHROPIC_API_KEY",
    "LLM_MODEL",
    "LLM_MODEL_COMPLEX",
    "VOYAGE_API_KEY",
    "VOYAGE_MODEL",
    "CHATWOOT_URL",
    "CHATWOOT_API_KEY",
    "CHATWOOT_ACCOUNT_ID",
    "CHATWOOT_INBOX_ID",
    "SLACK_WEBHOOK_URL",
    "SLACK_CHANNEL",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "MAX_MSGS_POR_HORA",
    "MAX_MSGS_POR_DIA",
    "HORARIO_INICIO",
    "HORARIO_FIM",
    "NOME_EMPRESA",
    "GESTOR_WHATSAPP",
    "JWT_SECRET_KEY",
    "CORS_ORIGINS",
    "LOG_LEVEL",
    "REDIS_URL",
)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOW_DIR.glob("*.yml"), *WORKFLOW_DIR.glob("*.yaml")])


def load_workflow(path: Path = CI) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def job(name: str) -> dict:
    return load_workflow()["jobs"][name]


def needs(job_def: dict) -> list[str]:
    value = job_def.get("needs", [])
    return [value] if isinstance(value, str) else list(value)


def step_index(steps: list[dict], fragment: str) -> int:
    """Index of the first step whose `run` contains `fragment`."""
    for i, step in enumerate(steps):
        if fragment in step.get("run", ""):
            return i
    raise AssertionError(f"no step runs {fragment!r}")


def named_step(steps: list[dict], name: str) -> dict:
    matches = [s for s in steps if s.get("name") == name]
    assert len(matches) == 1, f"expected one step named {name!r}"
    return matches[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def instructions(keyword: str, *, stage: int | None = None) -> list[str]:
    """Arguments of every `keyword` instruction, in the whole file or one stage (-1: the last)."""
    stages: list[list[tuple[str, str]]] = []
    for kw, args in dockerfile_instructions():
        if kw == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((kw, args))
    chosen = [pair for st in stages for pair in st] if stage is None else stages[stage]
    return [args for kw, args in chosen if kw == keyword]


def healthcheck_command() -> list[str]:
    (args,) = instructions("HEALTHCHECK")
    _, _, command = args.partition("CMD ")
    return json.loads(command)


# ---------------------------------------------------------------------------
# the workflow is valid
# ---------------------------------------------------------------------------


def test_there_is_a_ci_workflow():
    assert CI in workflow_files()


def test_workflows_match_githubs_workflow_schema():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *workflow_files()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_does_reject_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    steps:\n      - run: true\n    stepz: []\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", broken],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0


@pytest.mark.skipif(shutil.which("actionlint") is None, reason="actionlint is not installed here")
def test_workflows_pass_actionlint():
    result = subprocess.run(
        ["actionlint", "-no-color", *workflow_files()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_action_is_pinned_to_a_version():
    for path in workflow_files():
        for ref in re.findall(r"uses:\s*([^\s#]+)", path.read_text(encoding="utf-8")):
            name, _, version = ref.partition("@")
            assert version, f"{path.name}: {name} has no version"
            assert version not in ("main", "master", "latest", "HEAD"), f"{path.name}: {ref} floats"


# ---------------------------------------------------------------------------
# the workflow does what docs/deploy.md says
# ---------------------------------------------------------------------------


def test_triggers_are_pushes_to_main_and_develop_and_pull_requests():
    on = load_workflow()["on"]
    assert set(on["push"]["branches"]) == {"main", "develop"}
    assert "pull_request" in on


def test_jobs_run_lint_then_test_then_docker_then_deploy():
    jobs = load_workflow()["jobs"]
    assert {"lint", "test", "docker", "deploy"} <= set(jobs)
    assert needs(jobs["lint"]) == []
    assert needs(jobs["test"]) == ["lint"]
    assert needs(jobs["docker"]) == ["test"]
    assert needs(jobs["deploy"]) == ["docker"]


def test_lint_job_runs_ruff_through_uv_with_a_pinned_setup_uv():
    steps = job("lint")["steps"]
    setup = [s["uses"] for s in steps if s.get("uses", "").startswith("astral-sh/setup-uv@")]
    assert len(setup) == 1
    assert re.fullmatch(r"astral-sh/setup-uv@v\d+", setup[0])
    runs = [s.get("run", "") for s in steps]
    assert (
        runs.index("uv sync --frozen") < runs.index("uv run ruff check .") < runs.index("uv run ruff format --check .")
    )


def test_test_job_uses_no_services_and_no_secrets():
    test = job("test")
    assert "services" not in test
    assert "secrets." not in json.dumps(test)
    assert "uv run pytest" in [s.get("run", "") for s in test["steps"]]


def test_docker_job_builds_with_build_push_action_and_pushes_only_from_main():
    steps = job("docker")["steps"]
    builds = [s for s in steps if s.get("uses", "").startswith("docker/build-push-action@")]
    assert builds, "the image is built with docker/build-push-action"
    for step in builds:
        if step["with"].get("push") is True or step["with"].get("push") == "true":
            assert step.get("if") == MAIN_PUSH, f"{step.get('name')} pushes outside main"
        else:
            assert step["with"].get("push") is False
    assert any(s["with"].get("push") is True for s in builds)
    logins = [s for s in steps if s.get("uses", "").startswith("docker/login-action@")]
    assert [s.get("if") for s in logins] == [MAIN_PUSH]


def test_docker_job_smoke_tests_the_image_before_pushing_it():
    steps = job("docker")["steps"]
    smoke = step_index(steps, '--entrypoint julia "$img" db upgrade')
    push = next(i for i, s in enumerate(steps) if s.get("with", {}).get("push") is True)
    assert smoke < push
    script = steps[smoke]["run"]
    for fragment in ("RUN_MODE is not set", "10001", "RUN_MODE=api", "RUN_MODE=worker", "RUN_MODE=scheduler"):
        assert fragment in script
    assert ".deploy_safe == true" in script


def test_deploy_runs_only_on_pushes_to_main_in_the_production_environment():
    deploy = job("deploy")
    assert deploy["if"] == MAIN_PUSH
    assert deploy["environment"] == "production"
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_deploy_applies_migrations_before_any_railway_up():
    steps = job("deploy")["steps"]
    migrate = step_index(steps, "julia db upgrade")
    assert steps[migrate]["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"
    assert "julia db current" in steps[migrate]["run"]
    assert migrate < step_index(steps, "railway up")


def test_deploy_pushes_each_service_with_the_railway_cli():
    deploy = job("deploy")
    assert deploy["env"]["RAILWAY_TOKEN"] == "${{ secrets.RAILWAY_TOKEN }}"
    for kind in ("API", "WORKER", "SCHEDULER"):
        assert f"vars.RAILWAY_SERVICE_{kind}" in deploy["env"][f"{kind}_SERVICE"]
    steps = deploy["steps"]
    assert "npm install --global @railway/cli" in steps[step_index(steps, "@railway/cli")]["run"]
    up = steps[step_index(steps, "railway up")]["run"]
    assert 'railway up --service "$service" --detach' in up
    for kind in ("API", "WORKER", "SCHEDULER"):
        assert f"${kind}_SERVICE" in up


def test_deploy_waits_for_deep_health_with_deploy_safe_and_bounded_retries():
    steps = job("deploy")["steps"]
    check = steps[step_index(steps, "/health/deep")]
    assert check["env"]["APP_URL"] == "${{ secrets.RAILWAY_APP_URL }}"
    script = check["run"]
    assert "jq -r '.deploy_safe == true'" in script
    assert '[ "$code" = 200 ]' in script
    assert "$(seq 1 20)" in script
    assert "sleep 15" in script
    assert script.rstrip().endswith("exit 1"), "running out of attempts fails the job"


def test_slack_is_notified_always_and_skipped_without_a_webhook():
    steps = job("deploy")["steps"]
    slack = named_step(steps, "Notify Slack")
    assert steps[-1] is slack
    assert slack["if"] == "always()"
    assert slack["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    assert slack["env"]["JOB_STATUS"] == "${{ job.status }}"
    assert 'if [ -z "$SLACK_WEBHOOK_URL" ]' in slack["run"]


# ---------------------------------------------------------------------------
# railway.json
# ---------------------------------------------------------------------------


def test_railway_json_builds_the_dockerfile_and_checks_the_api_health():
    config = json.loads(RAILWAY.read_text(encoding="utf-8"))
    assert config["build"]["builder"] == "DOCKERFILE"
    assert config["build"]["dockerfilePath"] == "Dockerfile"
    deploy = config["deploy"]
    assert deploy["healthcheckPath"] == "/health"
    assert isinstance(deploy["healthcheckTimeout"], int)
    assert deploy["restartPolicyType"] == "ON_FAILURE"
    assert isinstance(deploy["restartPolicyMaxRetries"], int)


def test_railway_json_leaves_the_entrypoint_and_migrations_alone():
    deploy = json.loads(RAILWAY.read_text(encoding="utf-8"))["deploy"]
    # A start command would replace the image's ENTRYPOINT (julia run).
    assert "startCommand" not in deploy
    # Migrations run once, from CI, before any service deploys (docs/deploy.md).
    assert "preDeployCommand" not in deploy


# ---------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ---------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_from_pinned_images():
    froms = instructions("FROM")
    assert len(froms) >= 2
    for args in froms:
        image = args.split()[0]
        assert ":" in image.rsplit("/", 1)[-1], f"{image} has no tag"
        assert not image.endswith(":latest"), f"{image} floats"
    assert "ghcr.io/astral-sh/uv:" in " ".join(froms)


def test_dockerfile_installs_locked_dependencies_before_the_source():
    runs = instructions("RUN")
    deps = next(i for i, r in enumerate(runs) if "uv sync --frozen --no-dev --no-install-project" in r)
    project = next(i for i, r in enumerate(runs) if re.search(r"uv sync --frozen --no-dev(?! --no-install-project)", r))
    assert deps < project
    order = [args for kw, args in dockerfile_instructions() if kw in ("RUN", "COPY")]
    first_source_copy = next(i for i, a in enumerate(order) if a.startswith("app/"))
    assert next(i for i, a in enumerate(order) if "--no-install-project" in a) < first_source_copy


def test_runtime_image_holds_the_venv_and_the_code_and_sql():
    copied = [args.split()[-1] for args in instructions("COPY", stage=-1)]
    assert sorted(copied) == ["/app/.venv", "/app/alembic", "/app/alembic.ini", "/app/app", "/app/db"]
    assert all(args.startswith("--from=builder ") for args in instructions("COPY", stage=-1))
    envs = " ".join(instructions("ENV", stage=-1))
    assert "PATH=/app/.venv/bin:$PATH" in envs
    assert "PYTHONUNBUFFERED=1" in envs
    assert instructions("EXPOSE", stage=-1) == ["8000"]


def test_dockerfile_runs_as_a_non_root_user():
    users = instructions("USER", stage=-1)
    assert users, "no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert "10001" in users[-1]


def test_entrypoint_is_julia_run_in_json_form():
    (entrypoint,) = instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["julia", "run"]
    assert not instructions("CMD")


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _run_healthcheck(env: dict[str, str]) -> int:
    # `python` in the command must be the one the image would have on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(healthcheck_command(), env={"PATH": path, **env}, timeout=30, check=False).returncode


def test_healthcheck_command_probes_the_api_health_endpoint(health_server):
    assert healthcheck_command()[:2] == ["/bin/sh", "-c"]
    assert _run_healthcheck({"RUN_MODE": "api", "PORT": str(health_server)}) == 0


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthcheck_fails_when_the_api_does_not_answer(closed_port):
    assert _run_healthcheck({"RUN_MODE": "api", "PORT": str(closed_port)}) == 1


@pytest.mark.parametrize("mode", ["worker", "scheduler", ""])
def test_healthcheck_passes_trivially_for_processes_without_http(mode, closed_port):
    assert _run_healthcheck({"RUN_MODE": mode, "PORT": str(closed_port)}) == 0


def test_dockerignore_keeps_local_state_out_and_the_build_inputs_in():
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".julia", ".pytest_cache", ".ruff_cache", "tests", "bench"} <= patterns
    for needed in ("app", "db", "alembic", "alembic.ini", "pyproject.toml", "uv.lock", "README.md"):
        assert needed not in patterns


# ---------------------------------------------------------------------------
# docs/deploy.md
# ---------------------------------------------------------------------------


def test_deploy_docs_name_every_variable_the_processes_read():
    docs = DOCS.read_text(encoding="utf-8")
    missing = [name for name in ENV_VARS if name not in docs]
    assert not missing


def test_deploy_docs_name_every_secret_and_variable_the_workflows_use():
    docs = DOCS.read_text(encoding="utf-8")
    text = "\n".join(p.read_text(encoding="utf-8") for p in workflow_files())
    used = set(re.findall(r"\b(?:secrets|vars)\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert {"RAILWAY_TOKEN", "RAILWAY_APP_URL", "SLACK_WEBHOOK_URL", "DATABASE_URL"} <= used
    missing = sorted(name for name in used if f"`{name}`" not in docs)
    assert not missing


def test_deploy_docs_cover_the_runbook_essentials():
    docs = DOCS.read_text(encoding="utf-8")
    for fragment in (
        "julia-api",
        "julia-worker",
        "julia-scheduler",
        "julia db upgrade",
        "/health/schema",
        "deploy_safe",
        "julia db bootstrap",
        "julia resume --reason",
        "sslmode=require",
        "6543",
        "hadolint",
        "Rollback",
    ):
        assert fragment in docs, fragment
    for char, encoded in (("@", "%40"), ("!", "%21"), ("?", "%3F"), ("#", "%23"), ("/", "%2F"), (":", "%3A")):
        assert f"| `{char}` | `{encoded}` |" in docs
    assert "| `%` | `%25` |" in docs
