"""Databases built by earlier commits, upgraded by another commit's code (default: the one
before the schema ledger) and by this tree's: catalog differences against a fresh database
of the same code, and upgrade times.

    uv run python bench/migration_history.py [--before COMMIT] [COMMIT ...]

With no commits it uses the three of tests/migration/test_history.py. Needs the git
history (it runs `git archive`). Nothing external: one embedded PostgreSQL in a temp dir.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

# The repository root first, for tests.migration.catalog.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from benchkit import embedded_database, interrupt_once, print_table

from tests.migration.catalog import (
    REPO,
    build_with_commit,
    changed_objects,
    commit_tree,
    differences,
    snapshot,
    upgrade_with_tree,
)
from tests.migration.conftest import create_supabase_like
from tests.migration.test_history import HISTORY

BEFORE = HISTORY["previous-landing"]


def catalog_of(url: str) -> dict[str, set[str]]:
    with psycopg.connect(url) as conn:
        return snapshot(conn)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="*", default=list(HISTORY.values()))
    parser.add_argument("--before", default=BEFORE, help="the code that upgraded databases before (a commit)")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, interrupt_once)

    with embedded_database("postgres_admin", bootstrap=False) as bench_url:
        admin_url = bench_url.replace("/postgres_admin", "/postgres")

        from app.store import schema

        counter = iter(range(1000))

        def fresh(name: str) -> str:
            return create_supabase_like(admin_url, f"{name}_{next(counter)}")

        with commit_tree(args.before) as before_tree:
            fresh_before = fresh("fresh_before")
            upgrade_with_tree(before_tree, fresh_before)
            fresh_before_catalog = catalog_of(fresh_before)
            fresh_now = fresh("fresh_now")
            schema.upgrade(fresh_now)
            fresh_now_catalog = catalog_of(fresh_now)

            rows = []
            for commit in args.commits:
                label = next((k for k, v in HISTORY.items() if v == commit), commit[:7])
                # Before: the old code upgrades it.
                url = fresh(f"old_{commit[:7]}")
                build_with_commit(commit, url)
                started = time.perf_counter()
                try:
                    upgrade_with_tree(before_tree, url)
                    before_result = f"{changed_objects(catalog_of(url), fresh_before_catalog)} objects"
                except RuntimeError as exc:
                    before_result = "fails: " + str(exc).splitlines()[0].split("psycopg.errors.", 1)[-1][:80]
                before_s = time.perf_counter() - started
                # After: this tree upgrades it.
                url = fresh(f"new_{commit[:7]}")
                build_with_commit(commit, url)
                started = time.perf_counter()
                schema.upgrade(url)
                after_s = time.perf_counter() - started
                after_diff = differences(catalog_of(url), fresh_now_catalog)
                for line in after_diff[:10]:
                    print("  ", line[:160])
                rows.append(
                    [
                        f"{label} ({commit[:7]})",
                        before_result,
                        f"{before_s:.2f}",
                        f"{changed_objects(catalog_of(url), fresh_now_catalog)} objects",
                        f"{after_s:.2f}",
                    ]
                )
    print()
    print(f"before = code of {args.before[:7]}, after = this tree ({REPO.name}); differences vs a fresh database")
    print_table(["database built by", "before", "s", "after", "s"], rows)


if __name__ == "__main__":
    main()
