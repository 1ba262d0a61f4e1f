"""Databases built by earlier landed commits, upgraded by today's code, end
with exactly the schema of a fresh database (docs/schema.md)."""

from __future__ import annotations

import time

import psycopg
import pytest

from app.store import schema
from tests.migration.catalog import build_with_commit, differences, snapshot

# Landed commits of main that built databases with their own migrations.
HISTORY = {
    # (a) the first commit with alembic/ (walking skeleton: revisions 0001-0002)
    "first-alembic": "644dd627b30d821cc10a76783e33f578a74aa822",
    # (b) the commit at which the head first became 0010 (outreach)
    "head-first-0010": "2283c699a15e2b40a214bfa88b13c97fc33d16f6",
    # (c) the last landing before the schema ledger
    "previous-landing": "74ac206949404dfab6d4bbc61f2af2c8f76c6ff3",
    # (d) the last landing before db/ was re-cut into one area a file (functions
    # moved between files, long ones split into helpers)
    "before-db-recut": "0dd691ef356ca4f8237d75c811a5611a32d1946f",
    # (e) the landing (head 0019) before metric shards, refusals without jobs,
    # the batched inbound and the mirror switch replaced functions and triggers
    "landing-0019": "b88ccac6c29975cddc6e72b7b89005abaa562f30",
    # (f) the last landing (head 0021), the release running when this code deploys
    "last-landing": "42f1bc28e1c4de1093b2901545840b093e6ef44f",
}


@pytest.fixture(scope="module")
def fresh_snapshot(new_database) -> dict[str, set[str]]:
    url = new_database()
    schema.upgrade(url)
    with psycopg.connect(url) as conn:
        return snapshot(conn)


@pytest.mark.parametrize("commit", list(HISTORY.values()), ids=list(HISTORY))
def test_database_built_by_an_earlier_commit_upgrades_to_the_fresh_schema(commit, new_database, fresh_snapshot):
    url = new_database()
    build_with_commit(commit, url)
    with psycopg.connect(url) as conn:
        assert differences(snapshot(conn), fresh_snapshot), "the old build should differ from today's schema"

    started = time.perf_counter()
    schema.upgrade(url)
    elapsed = time.perf_counter() - started

    with psycopg.connect(url) as conn:
        assert differences(snapshot(conn), fresh_snapshot) == []
        assert schema.schema_status(conn).ok
    print(f"upgrade of a {commit[:7]} database: {elapsed:.2f}s")

    # ... and upgrading again changes nothing.
    schema.upgrade(url)
    with psycopg.connect(url) as conn:
        assert differences(snapshot(conn), fresh_snapshot) == []
