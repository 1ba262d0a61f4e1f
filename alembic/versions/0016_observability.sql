-- Observability: what the worker learns that no other table keeps (each
-- call to the model) and the monotonic counters /metrics exports, kept by
-- SQL so that any number of workers and api replicas agree.

------------------------------------------------------------
-- LLM calls
------------------------------------------------------------

-- One row per Messages API call of a reply job, ok or failed. A log, not a
-- domain row: no foreign keys, so it never blocks a merge or a cleanup.
CREATE TABLE IF NOT EXISTS public.llm_calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint,
    reply_to_id     bigint,
    job_id          bigint,
    model           text NOT NULL CHECK (length(model) BETWEEN 1 AND 100),
    outcome         text NOT NULL CHECK (outcome IN ('ok', 'error')),
    input_tokens    integer NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   integer NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    stop_reason     text,
    error           text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS llm_calls_reply_to_idx ON public.llm_calls (reply_to_id);
CREATE INDEX IF NOT EXISTS llm_calls_job_idx ON public.llm_calls (job_id);
CREATE INDEX IF NOT EXISTS llm_calls_finished_idx ON public.llm_calls (finished_at);

------------------------------------------------------------
-- Counters
------------------------------------------------------------

-- Monotonic counters (Prometheus counters and histogram buckets), one row
-- per metric and label set, bumped by triggers in db/observability.sql in
-- the transaction of the fact they count. Never pruned: a handful of rows.
CREATE TABLE IF NOT EXISTS public.metric_counters (
    metric     text NOT NULL CHECK (metric ~ '^julia_[a-z0-9_]+$'),
    labels     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(labels) = 'object'),
    value      double precision NOT NULL DEFAULT 0 CHECK (value >= 0),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (metric, labels)
);
