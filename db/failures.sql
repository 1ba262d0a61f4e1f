-- Permanent failures of reply and send jobs, recorded with their reason so
-- an operator sees them (and nothing is ever said to the doctor about them).

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

-- Record a job failure; returns its id.
CREATE OR REPLACE FUNCTION public.record_job_failure(
    p_task_name text, p_job_id bigint, p_conversation_id bigint, p_outbox_id bigint,
    p_classification text, p_error text
)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.job_failures (task_name, job_id, conversation_id, outbox_id, classification, error)
    VALUES (p_task_name, p_job_id, p_conversation_id, p_outbox_id, p_classification, left(p_error, 2000))
    RETURNING id;
$$;
