"""Slack slash commands, read without I/O: `/julia status | pause <motivo> |
resume <motivo> | limites [k=v ... <motivo>]`, Slack's v0 signature
(slack_sdk's SignatureVerifier: HMAC-SHA256 of "v0:{timestamp}:{body}",
5-minute window, constant-time compare), and the pt-BR texts of the answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

USAGE = (
    "Comandos: `status`, `pause <motivo>`, `resume <motivo>`, `limites`, `limites hour_limit=30 day_limit=80 <motivo>`."
)


@dataclass(frozen=True, kw_only=True)
class Command:
    name: str
    motivo: str


def parse_command(text: str) -> Command:
    """`pause Evolution instável` -> Command(name="pause", motivo="Evolution instável")."""
    name, _, rest = (text or "").strip().partition(" ")
    return Command(name=name.lower(), motivo=rest.strip())


def parse_limit_changes(text: str) -> tuple[dict[str, Any], str]:
    """`hour_limit=30 weekdays=1,2,3 campanha` -> ({"hour_limit": 30, "weekdays": [1, 2, 3]}, "campanha").

    Leading key=value words are changes (whole numbers become integers); the
    rest is the motivo. The database checks keys and values.
    """
    changes: dict[str, Any] = {}
    words = (text or "").split()
    while words and "=" in words[0]:
        key, _, raw = words.pop(0).partition("=")
        if key == "weekdays":
            changes[key] = [int(d) if d.isdecimal() else d for d in raw.split(",") if d]
        else:
            changes[key] = int(raw) if raw.isdecimal() else raw
    return changes, " ".join(words)


def signature_valid(secret: str, raw: bytes, timestamp: str | None, signature: str | None) -> bool:
    """Slack's v0 signature, within 5 minutes of now."""
    if not timestamp or not timestamp.strip().lstrip("-").isdecimal():
        return False
    try:
        # Imported here: slack_sdk's package import costs every process ~0.1 s, and only this uses it.
        from slack_sdk.signature import SignatureVerifier

        return SignatureVerifier(secret).is_valid(body=raw, timestamp=timestamp.strip(), signature=signature)
    except UnicodeDecodeError:
        return False


def format_status(status: dict[str, Any]) -> str:
    julia = status["julia"]
    state = "ativa" if julia["status"] == "ativo" else "*PAUSADA*"
    filas = status["filas"]
    return (
        f"Julia está {state} desde {julia['since'] or '-'} (motivo: {julia['motivo'] or '-'}, "
        f"via {julia['alterado_via'] or '-'}).\n"
        f"Handoffs abertos: {status['handoffs_abertos']} · conversas abertas: {status['conversas_abertas']} · "
        f"fila inbound: {filas['inbound']['depth']} · falhas em 24h: {status['falhas_24h']}"
    )


def format_limits(limits: dict[str, Any]) -> str:
    hour, day = limits["hour"], limits["day"]
    lines = [
        f"Limites de mensagens proativas ({limits['timezone']}, do banco de dados):",
        f"hora: {hour['sent']}/{hour['limit']} (restam {hour['remaining']}) · "
        f"dia: {day['sent']}/{day['limit']} (restam {day['remaining']})",
    ]
    for n in limits.get("numbers", []):
        state = "ok" if n["available"] else n["unavailable"]
        warmup = f" · aquecimento dia {n['warmup_day']}" if n.get("warmup_day") else ""
        lines.append(
            f"• {n['instance']} ({state}): hora {n['hour']['sent']}/{n['hour']['limit']} · "
            f"dia {n['day']['sent']}/{n['day']['limit']}{warmup}"
        )
    return "\n".join(lines)
