-- Periodic jobs leave a trace: one row per run.

------------------------------------------------------------
-- Run log
------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.periodic_runs (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_name text NOT NULL,
    tick      bigint NOT NULL,
    result    jsonb,
    ran_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS periodic_runs_task_tick_idx ON public.periodic_runs (task_name, tick DESC);

