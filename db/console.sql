-- The ops console (/ops, app/http/console.py): what its pages read that no
-- other function gives, and its actions (conversations, campaigns and
-- failures in db/console_pages.sql). Each action is one function that
-- does the change and records it in console_actions (who = the subject of
-- the operator's token) in the same transaction; refusals raise JU400 (bad
-- input), JU404 (no such thing) or JU409 (the state does not allow it).

------------------------------------------------------------
-- Audit
------------------------------------------------------------

-- Record one console action; returns its id.
CREATE OR REPLACE FUNCTION public._audit_console_action(
    p_operator text, p_action text, p_target text, p_motivo text, p_detail jsonb DEFAULT '{}'::jsonb
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF coalesce(trim(p_operator), '') = '' THEN
        RAISE EXCEPTION 'console action %: the operator is required', p_action USING ERRCODE = 'JU400';
    END IF;
    INSERT INTO public.console_actions (operator, action, target, motivo, detail)
    VALUES (left(trim(p_operator), 200), p_action, p_target, nullif(trim(p_motivo), ''),
            coalesce(p_detail, '{}'::jsonb))
    RETURNING id INTO _id;
    RETURN _id;
END;
$$;

-- Record that an operator signed in to the console (until p_expires_at).
CREATE OR REPLACE FUNCTION public.console_sign_in(p_operator text, p_expires_at timestamptz)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT public._audit_console_action(p_operator, 'signed_in', NULL, NULL,
                                        jsonb_build_object('expires_at', p_expires_at));
$$;

-- The newest console actions, newest first.
CREATE OR REPLACE FUNCTION public.console_recent_actions(p_limit integer DEFAULT 20)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', a.id, 'operator', a.operator, 'action', a.action, 'target', a.target,
               'motivo', a.motivo, 'detail', a.detail, 'at', a.created_at) ORDER BY a.id DESC), '[]'::jsonb)
      FROM (SELECT * FROM public.console_actions AS x
             ORDER BY x.id DESC LIMIT greatest(1, least(coalesce(p_limit, 20), 200))) AS a;
$$;

------------------------------------------------------------
-- Julia: pause and resume
------------------------------------------------------------

-- Check the reason given to p_verb (pause/resume) Julia, then take the lock
-- that puts console pauses and resumes one after the other.
CREATE OR REPLACE FUNCTION public._console_julia_lock(p_motivo text, p_verb text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF coalesce(trim(p_motivo), '') = '' THEN
        RAISE EXCEPTION 'a motivo (reason) is required to % Julia', p_verb USING ERRCODE = 'JU400';
    END IF;
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('julia.console_julia_state'));
END;
$$;

-- Pause Julia from the console (reason required); JU409 when already paused.
CREATE OR REPLACE FUNCTION public.console_pause_julia(p_operator text, p_motivo text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    PERFORM public._console_julia_lock(p_motivo, 'pause');
    IF public.julia_is_paused() THEN
        RAISE EXCEPTION 'Julia is already paused (since %)', (public.julia_state()).since USING ERRCODE = 'JU409';
    END IF;
    _id := public.pause_julia(trim(p_motivo), 'api');
    PERFORM public._audit_console_action(p_operator, 'julia_paused', 'julia', p_motivo,
                                         jsonb_build_object('julia_status_id', _id));
    RETURN _id;
END;
$$;

-- Resume Julia from the console (reason required); JU409 when already active.
CREATE OR REPLACE FUNCTION public.console_resume_julia(p_operator text, p_motivo text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    PERFORM public._console_julia_lock(p_motivo, 'resume');
    IF NOT public.julia_is_paused() THEN
        RAISE EXCEPTION 'Julia is already active' USING ERRCODE = 'JU409';
    END IF;
    _id := public.resume_julia(trim(p_motivo), 'api');
    PERFORM public._audit_console_action(p_operator, 'julia_resumed', 'julia', p_motivo,
                                         jsonb_build_object('julia_status_id', _id));
    RETURN _id;
END;
$$;

------------------------------------------------------------
-- Queues: stuck and failing jobs
------------------------------------------------------------

-- Jobs that need an operator's eye, newest first: failed, running on a
-- worker that stopped beating for p_stalled (parado), waiting to retry
-- after a failed attempt (tentando) or due for longer than p_overdue and
-- not taken (atrasado).
CREATE OR REPLACE FUNCTION public.console_problem_jobs(
    p_stalled interval DEFAULT '30 seconds', p_limit integer DEFAULT 50, p_overdue interval DEFAULT '5 minutes'
)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'id', j.id, 'queue', j.queue_name, 'task', j.task_name, 'status', j.status, 'problem', j.problem,
               'attempts', j.attempts, 'args', j.args, 'scheduled_at', j.scheduled_at,
               'last_event_at', (SELECT max(e.at) FROM public.procrastinate_events AS e WHERE e.job_id = j.id))
             ORDER BY j.id DESC), '[]'::jsonb)
      FROM (SELECT x.id, x.queue_name, x.task_name, x.status::text AS status, x.attempts, x.args, x.scheduled_at,
                   CASE WHEN x.status = 'failed' THEN 'falhou'
                        WHEN x.status = 'doing' THEN 'parado'
                        WHEN x.attempts > 0 THEN 'tentando'
                        ELSE 'atrasado' END AS problem
              FROM public.procrastinate_jobs AS x
             WHERE x.status = 'failed'
                OR x.id IN (SELECT s.id FROM public.stalled_jobs(p_stalled) AS s)
                OR (x.status = 'todo' AND x.attempts > 0)
                OR (x.status = 'todo'
                    AND coalesce(x.scheduled_at,
                                 (SELECT min(e.at) FROM public.procrastinate_events AS e
                                   WHERE e.job_id = x.id AND e.type = 'deferred'))
                        < clock_timestamp() - p_overdue)
             ORDER BY x.id DESC
             LIMIT greatest(1, least(coalesce(p_limit, 50), 500))) AS j;
$$;

-- The job p_job_id, locked for an operator's action; JU404 when there is none.
CREATE OR REPLACE FUNCTION public._console_lock_job(p_job_id bigint)
RETURNS public.procrastinate_jobs
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _job public.procrastinate_jobs;
BEGIN
    SELECT * INTO _job FROM public.procrastinate_jobs AS j WHERE j.id = p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job % not found', p_job_id USING ERRCODE = 'JU404';
    END IF;
    RETURN _job;
END;
$$;

-- Run a job again: a failed one (a failed send's outbox row goes back to
-- the gate, unless its campaign was cancelled), one stuck on a dead worker
-- (stalled for p_stalled), or a
-- waiting one now. JU409 when the same work already waits or the job runs
-- on a live worker.
CREATE OR REPLACE FUNCTION public.console_retry_job(
    p_operator text, p_job_id bigint, p_motivo text DEFAULT NULL, p_stalled interval DEFAULT '5 minutes'
)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _job public.procrastinate_jobs := public._console_lock_job(p_job_id);
    _outbox_id bigint;
BEGIN
    IF _job.status = 'doing' AND NOT EXISTS (SELECT 1 FROM public.stalled_jobs(p_stalled) AS s WHERE s.id = p_job_id) THEN
        RAISE EXCEPTION 'job % is running on a live worker', p_job_id USING ERRCODE = 'JU409';
    ELSIF _job.status IN ('failed', 'doing') THEN
        BEGIN
            PERFORM public.procrastinate_retry_job_v2(p_job_id, clock_timestamp(), NULL, NULL, NULL);
        EXCEPTION WHEN unique_violation THEN
            -- Only the queueing-lock index can collide: the same work already waits.
            RAISE EXCEPTION 'job %: a job for the same work is already waiting', p_job_id USING ERRCODE = 'JU409';
        END;
        IF _job.task_name = 'send_outbox' AND _job.status = 'failed' THEN
            _outbox_id := (_job.args ->> 'outbox_id')::bigint;
            UPDATE public.outbox SET state = 'queued', claimed_by_job = NULL, refusal = NULL, updated_at = now()
             WHERE id = _outbox_id AND state = 'failed' AND refusal IS DISTINCT FROM 'campaign_cancelled';
        END IF;
    ELSIF _job.status = 'todo' THEN
        UPDATE public.procrastinate_jobs SET scheduled_at = clock_timestamp() WHERE id = p_job_id;
    ELSE
        RAISE EXCEPTION 'job % is % and cannot be retried', p_job_id, _job.status USING ERRCODE = 'JU409';
    END IF;
    PERFORM public._audit_console_action(p_operator, 'job_retried', 'job:' || p_job_id, p_motivo,
                                         jsonb_build_object('task', _job.task_name, 'was', _job.status));
    RETURN _job.status;
END;
$$;

-- Dismiss a job: a failed one is marked cancelled (acknowledged, kept in
-- the history), a waiting one is cancelled. JU409 for any other state.
CREATE OR REPLACE FUNCTION public.console_dismiss_job(p_operator text, p_job_id bigint, p_motivo text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _job public.procrastinate_jobs := public._console_lock_job(p_job_id);
BEGIN
    IF _job.status = 'failed' THEN
        UPDATE public.procrastinate_jobs SET status = 'cancelled' WHERE id = p_job_id;
    ELSIF _job.status = 'todo' THEN
        PERFORM public.procrastinate_cancel_job_v1(p_job_id, false, false);
    ELSE
        RAISE EXCEPTION 'job % is % and cannot be dismissed', p_job_id, _job.status USING ERRCODE = 'JU409';
    END IF;
    PERFORM public._audit_console_action(p_operator, 'job_dismissed', 'job:' || p_job_id, p_motivo,
                                         jsonb_build_object('task', _job.task_name, 'was', _job.status));
    RETURN _job.status;
END;
$$;
