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

------------------------------------------------------------
-- Rescue (jobs of dead workers)
------------------------------------------------------------

-- Running jobs whose worker is gone: its row was pruned, or its heartbeat is
-- older than p_since (procrastinate's own rule for a stalled worker).
CREATE OR REPLACE FUNCTION public.stalled_jobs(p_since interval)
RETURNS SETOF public.procrastinate_jobs
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT j.*
      FROM public.procrastinate_jobs AS j
      LEFT JOIN public.procrastinate_workers AS w ON w.id = j.worker_id
     WHERE j.status = 'doing'
       AND (w.id IS NULL OR w.last_heartbeat < clock_timestamp() - p_since);
$$;

-- Put the jobs of dead workers back to 'todo', at once; returns each job
-- rescued and the waiting job it replaced, if any.
-- The rule: procrastinate allows one 'todo' job per queueing lock, and every
-- queueing lock Julia uses names its job's work (reply:<conversation>,
-- send:<outbox row>, chatwoot-sync:<conversation>, notify:<notification>), so
-- a job waiting under the stalled job's queueing lock is the same work. The
-- stalled job takes its place, at the waiting job's time (a reply's debounce):
-- it may hold a claim (the outbox row it was sending) that only it can resume,
-- and neither job can then wait on the other forever.
CREATE OR REPLACE FUNCTION public.rescue_stalled_jobs(p_since interval)
RETURNS TABLE (job_id bigint, task_name text, replaced_job_id bigint)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _job record;
    _waiting_id bigint;
    _waiting_at timestamptz;
BEGIN
    IF p_since IS NULL OR p_since < interval '0' THEN
        RAISE EXCEPTION 'rescue_stalled_jobs: the stalled-worker window must be a positive interval, got %', p_since;
    END IF;
    FOR _job IN
        SELECT j.id, j.task_name, j.queueing_lock
          FROM public.procrastinate_jobs AS j
         WHERE j.status = 'doing'
           AND j.id IN (SELECT s.id FROM public.stalled_jobs(p_since) AS s)
         ORDER BY j.id
         FOR UPDATE SKIP LOCKED
    LOOP
        _waiting_id := NULL;
        _waiting_at := NULL;
        IF _job.queueing_lock IS NOT NULL THEN
            SELECT t.id, t.scheduled_at INTO _waiting_id, _waiting_at
              FROM public.procrastinate_jobs AS t
             WHERE t.queueing_lock = _job.queueing_lock AND t.status = 'todo'
             FOR UPDATE;
            IF _waiting_id IS NOT NULL THEN
                PERFORM public.procrastinate_cancel_job_v1(_waiting_id, false, false);
            END IF;
        END IF;
        PERFORM public.procrastinate_retry_job_v2(
            _job.id, greatest(coalesce(_waiting_at, clock_timestamp()), clock_timestamp()), NULL, NULL, NULL);
        job_id := _job.id;
        task_name := _job.task_name;
        replaced_job_id := _waiting_id;
        RETURN NEXT;
    END LOOP;
END;
$$;
