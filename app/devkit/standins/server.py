"""Base class of the stand-ins: a threaded stdlib HTTP server that records every request."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One request as a stand-in received it; `json` is None when the body is not JSON."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any
    at: float
    raw: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Reply:
    """What a stand-in answers: a JSON `body`, or `raw` bytes of `content_type`."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    """Build a JSON reply with optional extra headers."""
    return Reply(status=status, body=body, headers=dict(headers or {}))


class StandinServer:
    """A local fake HTTP service; subclasses override `handle()` and `reset()`.

    Use as a context manager (`with EvolutionStandin() as evo: evo.url`) or call
    `start()` / `stop()`. All recording is guarded by `self._lock`.
    """

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []

    @property
    def url(self) -> str:
        """Base URL such as "http://127.0.0.1:54321"; raises RuntimeError before start()."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Bind 127.0.0.1 (port 0 picks a free one), serve in a daemon thread, return the URL.

        Raises OSError when the given port is taken.
        """
        if self._server is not None:
            return self.url
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        logger.info("stand-in started", extra={"action": "standin_start", "url": self.url})
        return self.url

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> StandinServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def handle(self, request: RecordedRequest) -> Reply:
        """Answer one request; the base class knows no routes."""
        return json_reply(404, {"error": f"no route for {request.method} {request.path}"})

    def reset(self) -> None:
        """Forget recorded requests; subclasses also drop their scripted state."""
        with self._lock:
            self.requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandinServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle the body waited for the
    # client's delayed ACK, 40 ms on every answer of a "zero-latency" stand-in.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections give their thread back eventually
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stand-in request: " + format, *args)

    def _dispatch(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={key.lower(): value for key, value in self.headers.items()},
            json=body,
            at=time.time(),
            raw=raw,
        )
        standin = self.server.standin
        standin._record(request)
        try:
            reply = standin.handle(request)
        except Exception:
            logger.exception("stand-in handler failed", extra={"action": "standin_error"})
            reply = json_reply(500, {"error": "stand-in handler crashed"})
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else json.dumps(reply.body, ensure_ascii=False).encode()
        self.send_response(reply.status)
        self.send_header("content-type", f"{reply.content_type}; charset=utf-8")
        self.send_header("content-length", str(len(payload)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


class HangingStandin(StandinServer):
    """A stand-in that `hang()` makes hold every call open until `release()`."""

    def __init__(self, *, port: int = 0) -> None:
        super().__init__(port=port)
        self._hanging = False
        self._released = threading.Event()

    def hang(self) -> None:
        """Hold every API call open until `release()` (then answer 503)."""
        with self._lock:
            self._hanging = True
            self._released.clear()

    def release(self) -> None:
        """Stop hanging; held calls return 503, later ones work."""
        with self._lock:
            self._hanging = False
            self._released.set()

    def _held(self) -> bool:
        """If hanging, hold this call until released (60 s at most) and say so: the caller answers 503."""
        with self._lock:
            hanging = self._hanging
        if hanging:
            self._released.wait(timeout=60)
        return hanging
