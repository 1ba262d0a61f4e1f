-- Permanent failures of reply and send jobs, recorded with their reason so
-- an operator sees them (and nothing is ever said to the doctor about them).

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
