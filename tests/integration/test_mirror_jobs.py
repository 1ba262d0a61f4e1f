"""A conversation's waiting Chatwoot mirror job cannot start before the
transaction that relied on it commits (db/jobs.sql, defer_chatwoot_sync).

Without that, a message stored while the waiting job started would be looked
for before it was visible, and wait for the sweep: a handoff's reply went
missing from Chatwoot that way under load.
"""

from __future__ import annotations

import psycopg

CONVERSATION = 4242
FETCH = "SELECT id FROM procrastinate_fetch_job_v2(ARRAY['humans'], NULL)"
DEFER = "SELECT public.defer_chatwoot_sync(%s) AS id"


def test_a_waiting_mirror_job_is_held_until_the_transaction_relying_on_it_commits(db, database_url):
    waiting = db.execute(DEFER, (CONVERSATION,)).fetchone()["id"]
    assert waiting is not None
    with psycopg.connect(database_url) as relying, psycopg.connect(database_url, autocommit=True) as worker:
        # A second message of the conversation: the waiting job will take it, so none is deferred.
        assert relying.execute(DEFER, (CONVERSATION,)).fetchone()[0] is None
        assert worker.execute(FETCH).fetchone()[0] is None  # held: not before the commit
        relying.commit()
        assert worker.execute(FETCH).fetchone()[0] == waiting


def test_a_mirror_job_that_already_started_gets_a_new_one_behind_it(db, database_url):
    started = db.execute(DEFER, (CONVERSATION,)).fetchone()["id"]
    with psycopg.connect(database_url, autocommit=True) as worker:
        assert worker.execute(FETCH).fetchone()[0] == started
    again = db.execute(DEFER, (CONVERSATION,)).fetchone()["id"]
    assert again is not None and again != started
