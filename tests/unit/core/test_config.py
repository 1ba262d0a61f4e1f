from __future__ import annotations

import logging

import pytest

from app.core.config import REQUIRED_BY_ROLE, SECRET_NAMES, ConfigError, load_settings

DATABASE_URL = "postgresql://julia:pw@db.example.com:5432/julia"
# Everything the api and the worker need outside dev.
FULL_ENV = {
    "APP_ENV": "production",
    "DATABASE_URL": DATABASE_URL,
    "EVOLUTION_API_URL": "https://evolution.example.com/",
    "EVOLUTION_API_KEY": "evo-key",
    "EVOLUTION_INSTANCE": "julia-prod",
    "EVOLUTION_WEBHOOK_SECRET": "webhook-secret",
    "ANTHROPIC_API_KEY": "sk-ant-test",
}


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in FULL_ENV.items() if k != name}


# --- defaults ------------------------------------------------------------------------


def test_defaults_with_an_empty_environment_in_dev():
    settings = load_settings("dev", {})
    assert settings.app_env == "dev"
    assert settings.is_dev
    assert settings.port == 8000
    assert settings.max_msgs_por_hora == 20
    assert settings.max_msgs_por_dia == 100
    assert settings.horario_inicio == "08:00"
    assert settings.horario_fim == "20:00"
    assert settings.llm_model == "claude-haiku-4-5"
    assert settings.llm_max_tokens == 1024
    assert settings.nome_empresa == "Revoluna"
    assert settings.log_level == "INFO"
    assert settings.cors_origins == ()
    assert settings.inbound_max_reads == 5
    assert settings.evolution_webhook_secret == ""


def test_blank_values_fall_back_to_defaults():
    settings = load_settings("dev", {"PORT": "  ", "MAX_MSGS_POR_HORA": "", "HORARIO_INICIO": " "})
    assert (settings.port, settings.max_msgs_por_hora, settings.horario_inicio) == (8000, 20, "08:00")


def test_values_are_read_and_normalised():
    settings = load_settings(
        "worker",
        {**FULL_ENV, "PORT": "9001", "MAX_MSGS_POR_HORA": "7", "HORARIO_INICIO": "7:5", "LOG_LEVEL": "debug"},
    )
    assert settings.port == 9001
    assert settings.max_msgs_por_hora == 7
    assert settings.horario_inicio == "07:05"
    assert settings.log_level == "DEBUG"
    assert settings.evolution_api_url == "https://evolution.example.com"
    assert not settings.is_dev


# --- required variables --------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "name"),
    [(role, name) for role in ("api", "worker") for name in REQUIRED_BY_ROLE[role]],
)
def test_each_required_variable_outside_dev_fails_naming_it(role, name):
    with pytest.raises(ConfigError, match=f"'{name}' is missing") as error:
        load_settings(role, without(name))
    assert role in str(error.value)


def test_required_variables_are_the_documented_ones():
    assert set(REQUIRED_BY_ROLE["api"]) == {"DATABASE_URL", "EVOLUTION_WEBHOOK_SECRET"}
    assert set(REQUIRED_BY_ROLE["worker"]) >= {
        "EVOLUTION_API_URL",
        "EVOLUTION_API_KEY",
        "EVOLUTION_INSTANCE",
        "ANTHROPIC_API_KEY",
    }


def test_blank_required_variable_counts_as_missing():
    with pytest.raises(ConfigError, match="EVOLUTION_WEBHOOK_SECRET"):
        load_settings("api", {**FULL_ENV, "EVOLUTION_WEBHOOK_SECRET": "   "})


def test_the_full_environment_satisfies_every_role():
    for role in REQUIRED_BY_ROLE:
        assert load_settings(role, FULL_ENV).app_env == "production"


def test_dev_does_not_require_the_secret_or_the_worker_variables():
    env = {"APP_ENV": "dev", "DATABASE_URL": DATABASE_URL}
    assert load_settings("api", env).evolution_webhook_secret == ""
    assert load_settings("worker", env).anthropic_api_key == ""


@pytest.mark.parametrize("role", ["api", "worker", "scheduler"])
def test_servers_need_an_explicit_app_env(role):
    # A missing APP_ENV must not silently mean "dev" (no webhook authentication).
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_settings(role, {"DATABASE_URL": DATABASE_URL, "EVOLUTION_WEBHOOK_SECRET": "x"})


@pytest.mark.parametrize("role", ["api", "worker", "scheduler", "cli"])
def test_processes_that_use_the_database_need_it_even_in_dev(role):
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings(role, {"APP_ENV": "dev"})


def test_invalid_app_env_is_refused():
    with pytest.raises(ConfigError, match="APP_ENV"):
        load_settings("dev", {"APP_ENV": "prod; rm -rf /"})


# --- bad values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw"),
    [("PORT", "80a"), ("MAX_MSGS_POR_HORA", "vinte"), ("MAX_MSGS_POR_DIA", "1e3"), ("LLM_MAX_TOKENS", "1.5")],
)
def test_bad_integer_fails_naming_the_variable(name, raw):
    with pytest.raises(ConfigError, match=f"'{name}' must be an integer"):
        load_settings("dev", {name: raw})


@pytest.mark.parametrize("name", ["HORARIO_INICIO", "HORARIO_FIM"])
@pytest.mark.parametrize("raw", ["8h", "0800", "24:00", "08:60", "-1:00", "08:", ":30", "ab:cd"])
def test_bad_hhmm_fails_naming_the_variable(name, raw):
    with pytest.raises(ConfigError, match=f"'{name}' must look like HH:MM"):
        load_settings("dev", {name: raw})


# --- REDIS_URL ----------------------------------------------------------------------------


def test_redis_url_logs_a_warning_and_is_otherwise_ignored(caplog):
    redis_url = "redis://:redis-password-4f1c@redis.example.com:6379/0"
    with caplog.at_level(logging.WARNING, logger="app.core.config"):
        settings = load_settings("dev", {"REDIS_URL": redis_url})
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.action == "config_redis_ignored"
    assert "REDIS_URL" in record.getMessage()
    assert "redis-password-4f1c" not in caplog.text
    assert settings == load_settings("dev", {})
    assert not any("redis" in key for key in settings.describe())


def test_no_warning_without_redis_url(caplog):
    with caplog.at_level(logging.WARNING, logger="app.core.config"):
        load_settings("dev", {})
    assert caplog.records == []


# --- secrets stay out of repr and describe ---------------------------------------------


def test_secrets_never_appear_in_repr_or_describe():
    secret_env = {name: f"distinctive-{name.lower()}-9c1e" for name in SECRET_NAMES}
    settings = load_settings("worker", {**FULL_ENV, **secret_env})
    described = settings.describe()
    for name, value in secret_env.items():
        assert getattr(settings, name.lower()) == value  # the value was loaded...
        assert value not in repr(settings), name  # ...but is never printed
        assert value not in str(described), name
        assert described[name.lower()] == "<set>"
    assert described["evolution_instance"] == "julia-prod"


def test_unset_secrets_are_described_as_unset():
    described = load_settings("dev", {}).describe()
    assert described["anthropic_api_key"] == "<unset>"
    assert described["database_url"] == "<unset>"


# --- CORS_ORIGINS -------------------------------------------------------------------------


def test_cors_origins_split_on_commas():
    settings = load_settings("dev", {"CORS_ORIGINS": "https://a.example.com, https://b.example.com ,,"})
    assert settings.cors_origins == ("https://a.example.com", "https://b.example.com")


def test_single_cors_origin():
    assert load_settings("dev", {"CORS_ORIGINS": "https://a.example.com"}).cors_origins == ("https://a.example.com",)
