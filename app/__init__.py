"""Julia."""

import sys
import types

# `import httpx` also imports httpx's command-line client (`httpx._main`: click, rich and
# pygments, about 40 % of httpx's import time) whenever those are installed, as rich is
# here. Julia never runs that client, and every api, worker and CLI process imports httpx:
# an empty `httpx._main` makes httpx fall back to its stub `main` (ImportError) instead.
sys.modules.setdefault("httpx._main", types.ModuleType("httpx._main"))
