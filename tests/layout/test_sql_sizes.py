"""db/ in small files, one area each, and short SQL functions: no file over
~400 lines and no function body over ~60, so each reads in one sitting
(docs/schema.md lists the files)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.store.schema import DB_DIR, read_manifest

MAX_FILE_LINES = 400
MAX_BODY_LINES = 60
FUNCTION = re.compile(r"CREATE OR REPLACE FUNCTION public\.(\w+).*?AS \$\$\n(.*?)\n\$\$;", re.S)


def files() -> list[Path]:
    return sorted(DB_DIR.glob("*.sql"))


@pytest.mark.parametrize("path", files(), ids=lambda p: p.name)
def test_sql_files_and_functions_are_short(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_FILE_LINES, f"db/{path.name} is over {MAX_FILE_LINES} lines"
    long = [(m.group(1), m.group(2).count("\n") + 1) for m in FUNCTION.finditer(text)]
    assert [(name, n) for name, n in long if n > MAX_BODY_LINES] == []


def test_every_sql_file_is_in_the_manifest():
    assert sorted(f.name for f in read_manifest()) == [p.name for p in files()]
