"""The house's floor plan, enforced: which room of app/ may import which
(docs/architecture.md). Read from the source with `ast`, imports inside
functions included, so a lazy import cannot slip past.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"

# Room -> the rooms it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "store": {"core"},
    "events": {"core"},
    "integrations": {"core", "events"},
    "conversation": {"core", "store", "integrations"},
    "http": {"core", "store", "events", "integrations"},
    "worker": {"core", "store", "events", "conversation", "integrations"},
    "ops": {"core", "store", "events", "integrations", "conversation", "http", "worker", "devkit"},
    "devkit": {"core", "store", "events", "integrations", "conversation", "http", "worker", "ops"},
}
# Pure rooms do no I/O: none of these may be imported there.
IO_MODULES = {"psycopg", "psycopg_pool", "httpx", "anthropic", "starlette", "procrastinate", "socket", "asyncio"}
PURE = {"core", "events"}


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str) -> frozenset[str]:
    """Every module a piece of source imports (absolute names), at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from app.http import ops` imports the module app.http.ops
            found |= {name for alias in node.names if _is_module(name := f"{node.module}.{alias.name}")}
    return frozenset(found)


@cache
def imports_of(module: str) -> frozenset[str]:
    path = APP.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return imports_in(path.read_text(encoding="utf-8"))


def crossings(here: str, imported: frozenset[str]) -> list[str]:
    """The imported modules that are in a room `here` may not import."""
    return sorted(n for n in imported if room(n) not in (None, here) and room(n) not in ALLOWED[here])


def _is_module(name: str) -> bool:
    base = APP.parent / Path(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "app" and len(parts) > 1 else None


MODULES = sorted(module_name(p) for p in APP.rglob("*.py"))


def test_every_module_lives_in_a_room():
    loose = [m for m in MODULES if m != "app" and room(m) not in ALLOWED]
    assert loose == [], f"modules outside the rooms of docs/architecture.md: {loose}"


@pytest.mark.parametrize("module", MODULES)
def test_a_room_imports_only_the_rooms_it_may(module):
    here = room(module)
    if here is None:
        return
    refused = crossings(here, imports_of(module))
    assert refused == [], f"{module} ({here}) may not import {refused}"


@pytest.mark.parametrize("module", [m for m in MODULES if room(m) in PURE])
def test_pure_rooms_do_no_io(module):
    io = sorted(name for name in imports_of(module) if name.split(".")[0] in IO_MODULES)
    assert io == [], f"{module} is pure (no I/O) but imports {io}"


def reachable(start: str) -> set[str]:
    """Every app module `start` pulls in, directly or not, plus the outside modules they import."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.startswith("app") and _is_module(current):
            todo.extend(imports_of(current))
    return seen


@pytest.mark.parametrize("module", [m for m in MODULES if room(m) == "http"])
def test_the_api_never_reaches_the_llm_client(module):
    pulled = reachable(module)
    assert "app.integrations.llm" not in pulled and "anthropic" not in pulled, (
        f"{module} pulls in the LLM client: the api never calls Claude"
    )


def test_the_checker_sees_a_forbidden_import():
    """The rules bite: lazy and `from app.x import module` imports are both seen."""
    source = "def f():\n    from app.http import ops\n    import app.conversation.agent\n"
    assert crossings("integrations", imports_in(source)) == ["app.conversation.agent", "app.http", "app.http.ops"]
    assert crossings("worker", imports_in(source)) == ["app.http", "app.http.ops"]
    assert "app.integrations.llm" in reachable("app.worker.process")  # the worker does reach Claude
