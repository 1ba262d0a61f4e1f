-- Permanent failures of reply and send jobs.

CREATE TABLE IF NOT EXISTS public.job_failures (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_name       text NOT NULL,
    job_id          bigint,
    conversation_id bigint REFERENCES public.conversations (id),
    outbox_id       bigint REFERENCES public.outbox (id),
    classification  text NOT NULL CHECK (classification IN ('transient', 'permanent')),
    error           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS job_failures_created_idx ON public.job_failures (created_at DESC);

