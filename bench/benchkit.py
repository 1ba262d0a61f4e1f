"""What every benchmark here shares: an aligned text table and a Ctrl-C
that cannot cut the cleanup short."""

from __future__ import annotations

import signal
from collections.abc import Sequence


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """First column left-aligned, the rest right-aligned, two spaces apart."""
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    for line in [header, *rows]:
        cells = [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:], widths[1:], strict=True)]
        print("  ".join(cells))


def interrupt_once(signum: int, frame: object) -> None:
    """First Ctrl-C stops the run; later ones (`uv run` forwards it again) must not cut the cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt
