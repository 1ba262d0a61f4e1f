"""The worker process: procrastinate jobs and the inbound consumer
(`process`, `inbound`), one module per job family — replies, sends, periodic
upkeep, humans (Chatwoot mirror and notifications) — and the `runtime` that
holds the pool and the outside clients a job needs.

May import `core`, `store`, `events`, `conversation` and `integrations`.
Never imports `http`, `ops` or `devkit`.
"""
