-- Deferring procrastinate jobs from SQL, so a data change and the job that
-- follows it commit in one transaction.

------------------------------------------------------------
-- Job deferral
------------------------------------------------------------

-- Defer one procrastinate job; returns its id, or NULL when a job with the
-- same queueing lock is already waiting (the burst case: one job is enough).
CREATE OR REPLACE FUNCTION public.defer_job(
    p_task_name text,
    p_args jsonb,
    p_queue text DEFAULT 'default',
    p_lock text DEFAULT NULL,
    p_queueing_lock text DEFAULT NULL,
    p_scheduled_at timestamptz DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _ids bigint[];
BEGIN
    IF p_task_name IS NULL OR p_task_name = '' THEN
        RAISE EXCEPTION 'defer_job: task name is required';
    END IF;
    BEGIN
        _ids := public.procrastinate_defer_jobs_v1(ARRAY[
            ROW(p_queue, p_task_name, 0, p_lock, p_queueing_lock, p_args, p_scheduled_at)
                ::public.procrastinate_job_to_defer_v1
        ]);
    EXCEPTION WHEN unique_violation THEN
        -- Only the queueing-lock index can collide: a job is already waiting.
        RETURN NULL;
    END;
    RETURN _ids[1];
END;
$$;
