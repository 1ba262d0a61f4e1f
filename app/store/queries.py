"""Named SQL queries, read from `app/store/queries.sql` (procrastinate's format).

Python never glues SQL together: it looks a query up by name,
`queries["claim_send_slot"]`, and passes parameters.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import LiteralString, cast

_HEADER = re.compile(r"^-- ([a-z_0-9]+) --$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a queries file into {name: sql}; the description line is dropped."""
    out: dict[str, LiteralString] = {}
    parts = _HEADER.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        if name in out:
            raise ValueError(f"query {name!r} is defined twice")
        out[name] = cast(LiteralString, "\n".join(lines).strip())
    return out


queries = parse_queries((Path(__file__).parent / "queries.sql").read_text(encoding="utf-8"))
