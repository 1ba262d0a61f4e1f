"""Stand-in for the Anthropic Messages API, good enough for the official SDK via `base_url=`.

Without a script it answers like a pt-BR recruiter, deterministically, from the last
user message. Tests queue replies, tool calls, thinking blocks and errors.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from typing import Any

from app.devkit.standins.server import RecordedRequest, Reply, StandinServer, json_reply

MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6", "claude-haiku-5-5", "claude-sonnet-5-5")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
DEFAULT_THINKING = "O médico escreveu; vou responder de forma cordial, curta e em português."

_GREETING = re.compile(r"\b(oi+|ola|opa|bom dia|boa tarde|boa noite|e ai|tudo bem)\b")
_JOBS = re.compile(r"\b(vagas?|plantao|plantoes|escalas?|oportunidades?|turnos?)\b")
_OPT_OUT = re.compile(r"\b(pare|parar|descadastr\w*|nao tenho interesse|me tir[ae]|stop)\b")
_GREETING_REPLY = (
    "Oi! Aqui é a Julia, recrutadora da equipe de escalas médicas. Tudo bem? "
    "Posso te contar sobre os plantões que temos disponíveis?"
)
_JOBS_REPLY = (
    "Temos sim! Estou com plantões abertos esta semana, diurnos e noturnos de 12h. "
    "Qual é a sua especialidade e quais dias e regiões ficam melhores pra você?"
)
_OPT_OUT_REPLY = (
    "Tudo bem, sem problemas! Não vou mais te mandar mensagens. Se mudar de ideia, é só me chamar por aqui."
)
_TOOL_REPLY = "Pronto, já conferi aqui no sistema. Quer que eu te passe os detalhes?"


def recruiter_reply(text: str, *, after_tool: bool = False) -> str:
    """Julia's canned pt-BR answer to `text`; the same input always gives the same output."""
    plain = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    if _OPT_OUT.search(plain):
        return _OPT_OUT_REPLY
    if _JOBS.search(plain):
        return ("Oi! Aqui é a Julia. " if _GREETING.search(plain) else "") + _JOBS_REPLY
    if _GREETING.search(plain):
        return _GREETING_REPLY
    if after_tool and not text.strip():
        return _TOOL_REPLY
    said = " ".join(text.split())
    if not said:
        return "Oi! Pode me contar um pouco mais? Estou por aqui pra ajudar."
    if len(said) > 60:
        said = said[:60].rsplit(" ", 1)[0] + "…"
    return f'Entendi, você disse: "{said}". Vou verificar e já te retorno, tá bom?'


def content_text(content: Any) -> str:
    """Text of a message `content`/`system`: a string or a list of text/tool_result blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "tool_result":
            texts.append(content_text(block.get("content")))
    return "\n".join(text for text in texts if text)


def anthropic_error(status: int, error_type: str, message: str, **headers: str) -> Reply:
    """Reply in Anthropic's error shape {"type": "error", "error": {type, message}}."""
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    body["request_id"] = "req_" + secrets.token_hex(12)
    return json_reply(status, body, {key.replace("_", "-"): v for key, v in headers.items()})


class AnthropicStandin(StandinServer):
    """Fake `POST /v1/messages` (plus count_tokens and `GET /v1/models`).

    Needs an `x-api-key` or `Authorization: Bearer` header (any value). Scripted items are consumed in order,
    then the default recruiter answer resumes. `"stream": true` is answered as SSE.
    """

    def __init__(self, *, port: int = 0, brain: Callable[[dict[str, Any]], Any] | None = None) -> None:
        super().__init__(port=port)
        self._script: deque[Reply | tuple[list[dict[str, Any]], str]] = deque()
        self._delay = 0.0
        # julia dev plugs in a tool-using "brain"; tests script answers instead.
        self._brain = brain

    # ------------------------------------------------------------------ scripting

    def queue_reply(self, text: str) -> None:
        """Next answer is one text block with stop_reason "end_turn"."""
        self._queue(([{"type": "text", "text": text}], "end_turn"))

    def queue_tool_use(self, name: str, input: dict[str, Any], text: str | None = None) -> dict:
        """Next answer calls tool `name` (optionally after `text`); returns the tool_use block."""
        block = {"type": "tool_use", "id": "toolu_01" + secrets.token_hex(11), "name": name}
        block["input"] = input
        blocks = ([{"type": "text", "text": text}] if text else []) + [block]
        self._queue((blocks, "tool_use"))
        return dict(block)

    def queue_thinking_then_text(self, text: str, thinking: str = DEFAULT_THINKING) -> None:
        """Next answer is a thinking block (signature "sig") followed by a text block."""
        blocks = [
            {"type": "thinking", "thinking": thinking, "signature": "sig"},
            {"type": "text", "text": text},
        ]
        self._queue((blocks, "end_turn"))

    def queue_error(self, status: int, error_type: str | None = None, retry_after_ms: int = 1) -> None:
        """Next answer is an error; the type defaults by status (529 overloaded, 429 rate limit).

        `retry-after-ms` / `retry-after` are set small so the SDK retries without sleeping.
        """
        kind = error_type or ERROR_TYPES.get(status, "api_error")
        message = {"overloaded_error": "Overloaded", "rate_limit_error": "Rate limited"}
        retry_after = str(max(1, math.ceil(retry_after_ms / 1000)))
        reply = anthropic_error(
            status,
            kind,
            message.get(kind, f"Stand-in {kind}"),
            retry_after_ms=str(retry_after_ms),
            retry_after=retry_after,
        )
        self._queue(reply)

    def set_delay(self, seconds: float) -> None:
        """Make every /v1/messages call wait `seconds` before answering."""
        with self._lock:
            self._delay = seconds

    def calls(self) -> list[dict[str, Any]]:
        """Bodies of the /v1/messages requests received, oldest first."""
        with self._lock:
            return [r.json for r in self.requests if r.path == "/v1/messages"]

    def reset(self) -> None:
        """Forget requests, the script and the delay."""
        with self._lock:
            super().reset()
            self._script.clear()
            self._delay = 0.0

    def _queue(self, item: Reply | tuple[list[dict[str, Any]], str]) -> None:
        with self._lock:
            self._script.append(item)

    # ------------------------------------------------------------------ routes

    def handle(self, request: RecordedRequest) -> Reply:
        """Answer like api.anthropic.com: auth, validation, then scripted or default reply."""
        route = (request.method, request.path)
        if route not in {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models")}:
            return anthropic_error(404, "not_found_error", f"Not found: {request.path}")
        # anthropic 2.x sends the api_key as "Authorization: Bearer"; older SDKs as x-api-key
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not (request.headers.get("x-api-key") or bearer):
            return anthropic_error(401, "authentication_error", "x-api-key header is required")
        if route[0] == "GET":
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"} for m in MODELS]
            return json_reply(200, {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})
        body = request.json if isinstance(request.json, dict) else {}
        required = ("model", "messages") if route[1].endswith("count_tokens") else ("model", "max_tokens", "messages")
        for name in required:
            if name not in body:
                return anthropic_error(400, "invalid_request_error", f"{name}: Field required")
        if not isinstance(body["messages"], list):
            return anthropic_error(400, "invalid_request_error", "messages: Input should be a list")
        input_tokens = max(1, len(json.dumps(body, ensure_ascii=False)) // 4)
        if route[1].endswith("count_tokens"):
            return json_reply(200, {"input_tokens": input_tokens})
        with self._lock:
            delay = self._delay
            scripted = self._script.popleft() if self._script else None
        if delay > 0:
            time.sleep(delay)
        if isinstance(scripted, Reply):
            return scripted
        unscripted = (self._brain(body) if self._brain else None) or (
            [{"type": "text", "text": _default(body)}],
            "end_turn",
        )
        blocks, stop_reason = scripted or unscripted
        message = {
            "id": "msg_01" + secrets.token_hex(11),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": max(1, len(json.dumps(blocks, ensure_ascii=False)) // 4),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        if body.get("stream"):
            return Reply(status=200, raw=_sse(message), content_type="text/event-stream")
        return json_reply(200, message, {"request-id": "req_" + secrets.token_hex(12)})


def _default(body: dict[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            blocks = content if isinstance(content, list) else []
            after_tool = any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks)
            if after_tool:
                texts = [b for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
                return recruiter_reply(content_text(texts), after_tool=True)
            return recruiter_reply(content_text(content))
    return recruiter_reply("")


def _sse(message: dict[str, Any]) -> bytes:
    """The same message as the SDK's streaming events (one delta per block)."""
    events: list[dict[str, Any]] = []
    start = dict(message, content=[], stop_reason=None)
    start["usage"] = dict(message["usage"], output_tokens=1)
    events.append({"type": "message_start", "message": start})
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            empty, deltas = {"type": "text", "text": ""}, [{"type": "text_delta", "text": block["text"]}]
        elif kind == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        else:
            empty = dict(block, input={})
            deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
        events.append({"type": "content_block_start", "index": index, "content_block": empty})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    lines = [f"event: {e['type']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n" for e in events]
    return "".join(lines).encode()
