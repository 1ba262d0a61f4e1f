"""The alembic revision chain this code carries, read without alembic."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from app.core.errors import JuliaError

VERSIONS = Path(__file__).resolve().parents[2] / "alembic" / "versions"


@cache
def revision_chain() -> tuple[str, ...]:
    """Revisions from base to head, in order.

    Read from the revision files' `revision = "…"` / `down_revision = "…"` lines
    rather than through alembic: importing alembic (and SQLAlchemy) costs every
    api, worker and CLI start about half a second of CPU just to learn this.
    tests/unit/store/test_revision_chain.py checks it against alembic's own walk.
    """
    return read_revision_chain(VERSIONS)


def read_revision_chain(versions: Path) -> tuple[str, ...]:
    """The chain of the revision files in `versions`; JuliaError unless it is one line."""
    parents: dict[str, str | None] = {}
    for path in sorted(versions.glob("*.py")):
        ids = _revision_ids(path)
        if "revision" in ids:
            parents[str(ids["revision"])] = ids.get("down_revision")
    children = {parent: rev for rev, parent in parents.items()}
    roots = [rev for rev, parent in parents.items() if parent is None]
    chain = roots[:1]
    while chain and chain[-1] in children and len(chain) <= len(parents):
        chain.append(children[chain[-1]])
    if len(roots) != 1 or sorted(chain) != sorted(parents):
        # Two bases, a branch (two revisions on one parent) or a cycle.
        raise JuliaError(f"alembic/versions is not one chain of revisions: {sorted(parents.items(), key=str)}")
    return tuple(chain)


def _revision_ids(path: Path) -> dict[str, str | None]:
    """The module-level `revision` and `down_revision` string (or None) assignments of a file."""
    found: dict[str, str | None] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        value = getattr(node, "value", None)
        named = isinstance(target, ast.Name) and target.id in ("revision", "down_revision")
        if named and isinstance(value, ast.Constant) and (value.value is None or isinstance(value.value, str)):
            found[target.id] = value.value
    return found


def expected_head() -> str:
    """The alembic head this code needs."""
    return revision_chain()[-1]
