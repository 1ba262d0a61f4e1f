"""Settings read from the environment, with the seed's variable names.

Required variables fail fast at start with a message naming the variable;
secrets are kept out of `repr` so they never reach a log line.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal
from zoneinfo import ZoneInfo

from app.core.errors import JuliaError

logger = logging.getLogger(__name__)

# Julia's business clock: sending hours, daily windows and every time shown to people.
SAO_PAULO = ZoneInfo("America/Sao_Paulo")

Role = Literal["api", "worker", "scheduler", "cli", "dev"]

SECRET_NAMES = frozenset(
    {
        "EVOLUTION_API_KEY",
        "EVOLUTION_WEBHOOK_SECRET",
        "ANTHROPIC_API_KEY",
        "VOYAGE_API_KEY",
        "SUPABASE_SERVICE_KEY",
        "JWT_SECRET_KEY",
        "CHATWOOT_API_KEY",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_WEBHOOK_URL",
        "CHATWOOT_WEBHOOK_SECRET",
        "CHATWOOT_BOT_TOKEN",
        "DATABASE_URL",
    }
)

# Which variables each process needs outside APP_ENV=dev.
REQUIRED_BY_ROLE: dict[str, tuple[str, ...]] = {
    "api": ("DATABASE_URL", "EVOLUTION_WEBHOOK_SECRET"),
    "worker": (
        "DATABASE_URL",
        "EVOLUTION_API_URL",
        "EVOLUTION_API_KEY",
        "EVOLUTION_INSTANCE",
        "ANTHROPIC_API_KEY",
    ),
    "scheduler": ("DATABASE_URL",),
    "cli": ("DATABASE_URL",),
    "dev": (),
}


class ConfigError(JuliaError):
    """Configuration is missing or invalid."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the processes read from the environment."""

    app_env: str = "dev"
    app_name: str = "Agente Julia"
    log_level: str = "INFO"
    port: int = 8000
    database_url: str = field(default="", repr=False)
    supabase_url: str = ""
    supabase_service_key: str = field(default="", repr=False)
    supabase_project_ref: str = ""
    evolution_api_url: str = ""
    evolution_api_key: str = field(default="", repr=False)
    evolution_instance: str = ""
    evolution_webhook_secret: str = field(default="", repr=False)
    anthropic_api_key: str = field(default="", repr=False)
    anthropic_base_url: str = ""
    llm_model: str = "claude-haiku-4-5"
    llm_model_complex: str = "claude-sonnet-4-6"
    llm_max_tokens: int = 1024
    voyage_api_key: str = field(default="", repr=False)
    voyage_model: str = "voyage-3.5-lite"
    nome_empresa: str = "Revoluna"
    gestor_whatsapp: str = ""
    max_msgs_por_hora: int = 20
    max_msgs_por_dia: int = 100
    horario_inicio: str = "08:00"
    horario_fim: str = "20:00"
    dias_semana: tuple[int, ...] = (1, 2, 3, 4, 5)  # ISO weekdays for proactive messages
    cooldown_horas: int = 72
    max_respostas_por_hora: int = 30
    follow_up_horas: int = 24
    jwt_secret_key: str = field(default="", repr=False)
    cors_origins: tuple[str, ...] = ()
    metrics_token: str = field(default="", repr=False)  # empty: /metrics answers without a token
    chatwoot_url: str = ""
    chatwoot_api_key: str = field(default="", repr=False)
    chatwoot_account_id: str = ""
    chatwoot_inbox_id: str = ""
    slack_webhook_url: str = field(default="", repr=False)
    slack_channel: str = ""
    slack_bot_token: str = field(default="", repr=False)
    slack_signing_secret: str = field(default="", repr=False)
    slack_allowed_users: tuple[str, ...] = ()  # who may pause/resume from Slack (ids or names); empty = anyone
    # Humans in the loop (issue 7): Chatwoot webhook signing, Slack API base
    # (a stand-in in tests), the external handoff system's endpoint.
    chatwoot_webhook_secret: str = field(default="", repr=False)
    # Issue 14: Julia posts as an agent bot; handoffs go to a team (or nobody);
    # an agent's webhook is retried this long when the database is down, then
    # rescued in the background this long.
    chatwoot_bot_token: str = field(default="", repr=False)
    chatwoot_handoff_team_id: int | None = None
    chatwoot_store_retry_seconds: float = 3.0
    chatwoot_rescue_seconds: float = 600.0
    slack_api_url: str = "https://slack.com/api"
    external_handoff_url: str = ""
    # Worker tuning (not in the seed; sane defaults).
    inbound_visibility_timeout: int = 30
    inbound_max_reads: int = 5
    worker_concurrency: int = 8
    stalled_worker_seconds: float = 30.0
    # Group commit of webhooks (app/http/ingest.py): how long the first one waits for others; 0 = off.
    ingest_batch_window_ms: float = 1.0

    @property
    def is_dev(self) -> bool:
        return self.app_env == "dev"

    def send_policy(self) -> dict[str, object]:
        """The outreach policy these env variables describe: what bootstrap writes
        to the database when it has none. The gate enforces the database's row."""
        return {
            "hour_limit": self.max_msgs_por_hora,
            "day_limit": self.max_msgs_por_dia,
            "start": self.horario_inicio,
            "end": self.horario_fim,
            "weekdays": list(self.dias_semana),
            "cooldown_hours": self.cooldown_horas,
            "reply_cap_per_hour": self.max_respostas_por_hora,
        }

    def describe(self) -> dict[str, object]:
        """Settings safe to print: secrets shown only as set/unset."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.upper() in SECRET_NAMES:
                out[f.name] = "<set>" if value else "<unset>"
            else:
                out[f.name] = value
        return out


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"Config '{name}' must be an integer, got {raw!r}.") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"Config '{name}' must be a number, got {raw!r}.") from None


def _window_ms(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if not 0 <= value <= 1000:
        raise ConfigError(f"Config '{name}' must be between 0 and 1000 milliseconds, got {value:g}.")
    return value


def _weekdays(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name, "").strip() or "1,2,3,4,5"
    try:
        days = tuple(sorted({int(part) for part in raw.replace(" ", "").split(",") if part}))
    except ValueError:
        raise ConfigError(f"Config '{name}' must list ISO weekdays (1=Monday … 7=Sunday), got {raw!r}.") from None
    if not days or any(d < 1 or d > 7 for d in days):
        raise ConfigError(f"Config '{name}' must list ISO weekdays (1=Monday … 7=Sunday), got {raw!r}.")
    return days


def _hhmm(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    hours, sep, minutes = raw.partition(":")
    valid = sep and re.fullmatch(r"[0-9]{1,2}", hours) and re.fullmatch(r"[0-9]{1,2}", minutes)
    if not (valid and int(hours) < 24 and int(minutes) < 60):
        raise ConfigError(f"Config '{name}' must look like HH:MM, got {raw!r}.")
    return f"{int(hours):02d}:{int(minutes):02d}"


def load_settings(role: Role = "cli", env: Mapping[str, str] | None = None) -> Settings:
    """Read settings for a process `role`; raise ConfigError naming a missing variable."""
    env = os.environ if env is None else env
    app_env = _check_environment(role, env)
    settings = _read(env, app_env)
    if role in ("api", "worker", "scheduler", "cli") and not settings.database_url:
        raise ConfigError("Config 'DATABASE_URL' is missing, and has no default.")
    return settings


def _check_environment(role: Role, env: Mapping[str, str]) -> str:
    """APP_ENV, checked, and every variable `role` requires outside dev."""

    def get(name: str, default: str = "") -> str:
        return env.get(name, "").strip() or default

    if role in ("api", "worker", "scheduler") and not get("APP_ENV"):
        # No silent default for a server: "dev" would switch authentication off.
        raise ConfigError(
            "Config 'APP_ENV' is missing, and has no default for the "
            f"{role} (set it, e.g. production; julia dev sets dev itself)."
        )
    app_env = get("APP_ENV", "dev")
    if not app_env.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"Config 'APP_ENV' has an invalid value {app_env!r}.")
    if app_env != "dev":
        for name in REQUIRED_BY_ROLE[role]:
            if not get(name):
                raise ConfigError(
                    f"Config '{name}' is missing, and has no default (required by the {role} when APP_ENV={app_env})."
                )
    if get("REDIS_URL"):
        logger.warning(
            "REDIS_URL is set but ignored: Julia keeps queues and counters in Postgres",
            extra={"action": "config_redis_ignored"},
        )
    return app_env


def _read(env: Mapping[str, str], app_env: str) -> Settings:
    """Every setting, from the environment or its default (one line each)."""

    def get(name: str, default: str = "") -> str:
        return env.get(name, "").strip() or default

    return Settings(
        app_env=app_env,
        app_name=get("APP_NAME", "Agente Julia"),
        log_level=get("LOG_LEVEL", "INFO").upper(),
        port=_int(env, "PORT", 8000),
        database_url=get("DATABASE_URL"),
        supabase_url=get("SUPABASE_URL"),
        supabase_service_key=get("SUPABASE_SERVICE_KEY"),
        supabase_project_ref=get("SUPABASE_PROJECT_REF"),
        evolution_api_url=get("EVOLUTION_API_URL").rstrip("/"),
        evolution_api_key=get("EVOLUTION_API_KEY"),
        evolution_instance=get("EVOLUTION_INSTANCE"),
        evolution_webhook_secret=get("EVOLUTION_WEBHOOK_SECRET"),
        anthropic_api_key=get("ANTHROPIC_API_KEY"),
        anthropic_base_url=get("ANTHROPIC_BASE_URL"),
        llm_model=get("LLM_MODEL", "claude-haiku-4-5"),
        llm_model_complex=get("LLM_MODEL_COMPLEX", "claude-sonnet-4-6"),
        llm_max_tokens=_int(env, "LLM_MAX_TOKENS", 1024),
        voyage_api_key=get("VOYAGE_API_KEY"),
        voyage_model=get("VOYAGE_MODEL", "voyage-3.5-lite"),
        nome_empresa=get("NOME_EMPRESA", "Revoluna"),
        gestor_whatsapp=get("GESTOR_WHATSAPP"),
        max_msgs_por_hora=_int(env, "MAX_MSGS_POR_HORA", 20),
        max_msgs_por_dia=_int(env, "MAX_MSGS_POR_DIA", 100),
        horario_inicio=_hhmm(env, "HORARIO_INICIO", "08:00"),
        horario_fim=_hhmm(env, "HORARIO_FIM", "20:00"),
        dias_semana=_weekdays(env, "DIAS_SEMANA"),
        cooldown_horas=_int(env, "COOLDOWN_HORAS", 72),
        max_respostas_por_hora=_int(env, "MAX_RESPOSTAS_POR_HORA", 30),
        follow_up_horas=_int(env, "FOLLOW_UP_HORAS", 24),
        jwt_secret_key=get("JWT_SECRET_KEY"),
        cors_origins=tuple(o.strip() for o in get("CORS_ORIGINS").split(",") if o.strip()),
        metrics_token=get("METRICS_TOKEN"),
        chatwoot_url=get("CHATWOOT_URL").rstrip("/"),
        chatwoot_api_key=get("CHATWOOT_API_KEY"),
        chatwoot_account_id=get("CHATWOOT_ACCOUNT_ID"),
        chatwoot_inbox_id=get("CHATWOOT_INBOX_ID"),
        slack_webhook_url=get("SLACK_WEBHOOK_URL"),
        slack_channel=get("SLACK_CHANNEL"),
        slack_bot_token=get("SLACK_BOT_TOKEN"),
        slack_signing_secret=get("SLACK_SIGNING_SECRET"),
        slack_allowed_users=tuple(u.strip() for u in get("SLACK_ALLOWED_USERS").split(",") if u.strip()),
        chatwoot_webhook_secret=get("CHATWOOT_WEBHOOK_SECRET"),
        chatwoot_bot_token=get("CHATWOOT_BOT_TOKEN"),
        chatwoot_handoff_team_id=_int(env, "CHATWOOT_HANDOFF_TEAM_ID", 0) or None,
        chatwoot_store_retry_seconds=_float(env, "CHATWOOT_STORE_RETRY_SECONDS", 3.0),
        chatwoot_rescue_seconds=_float(env, "CHATWOOT_RESCUE_SECONDS", 600.0),
        slack_api_url=get("SLACK_API_URL", "https://slack.com/api").rstrip("/"),
        external_handoff_url=get("EXTERNAL_HANDOFF_URL"),
        inbound_visibility_timeout=_int(env, "INBOUND_VISIBILITY_TIMEOUT", 30),
        inbound_max_reads=_int(env, "INBOUND_MAX_READS", 5),
        worker_concurrency=_int(env, "WORKER_CONCURRENCY", 8),
        stalled_worker_seconds=_float(env, "STALLED_WORKER_SECONDS", 30.0),
        ingest_batch_window_ms=_window_ms(env, "INGEST_BATCH_WINDOW_MS", 1.0),
    )
