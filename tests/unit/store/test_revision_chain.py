"""The revision chain read from the files is the one alembic walks."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from app.core.errors import JuliaError
from app.store import revisions, schema


def test_the_chain_read_from_the_files_is_alembics():
    script = ScriptDirectory.from_config(schema.alembic_config())
    walked = tuple(reversed([rev.revision for rev in script.walk_revisions()]))
    assert schema.revision_chain() == walked
    assert schema.expected_head() == script.get_current_head()


def revision(directory: Path, name: str, rev: str, down: str | None) -> None:
    (directory / f"{name}.py").write_text(
        f'"""{name}."""\n\nrevision = "{rev}"\ndown_revision: str | None = {down!r}\n\n\ndef upgrade():\n    pass\n'
    )


def test_files_out_of_name_order_still_chain(tmp_path):
    revision(tmp_path, "b", "0001", None)
    revision(tmp_path, "a", "0002", "0001")
    revision(tmp_path, "c", "0003", "0002")
    assert revisions.read_revision_chain(tmp_path) == ("0001", "0002", "0003")


@pytest.mark.parametrize(
    "layout",
    [
        [("0001", None), ("0002", "0001"), ("0003", "0001")],  # a branch
        [("0001", None), ("0002", None)],  # two bases
        [("0001", None), ("0002", "0003"), ("0003", "0002")],  # a cycle beside the base
        [("0001", None), ("0003", "0002")],  # a revision whose parent is missing
    ],
)
def test_anything_but_one_line_is_refused(tmp_path, layout):
    for i, (rev, down) in enumerate(layout):
        revision(tmp_path, f"r{i}", rev, down)
    with pytest.raises(JuliaError, match="not one chain"):
        revisions.read_revision_chain(tmp_path)
