-- Safety nets and housekeeping, run by periodic jobs: jobs of dead workers
-- rescued, work held back (paused Julia, outages) re-deferred, touches
-- recounted, old history pruned, and one row per periodic run so operators
-- (and tests) see that each tick ran once, whatever the number of schedulers.

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
-- A worker never rescues its own jobs (p_except_worker, its procrastinate
-- worker id): they are running in it, however late its heartbeat is, and a
-- second run beside the first could send what the first is sending.
DROP FUNCTION IF EXISTS public.rescue_stalled_jobs(interval);
CREATE OR REPLACE FUNCTION public.rescue_stalled_jobs(p_since interval, p_except_worker bigint DEFAULT NULL)
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
        RAISE EXCEPTION 'rescue_stalled_jobs: the stalled-worker window must be a positive interval, got %', p_since
            USING ERRCODE = 'JU400';
    END IF;
    FOR _job IN
        SELECT j.id, j.task_name, j.queueing_lock
          FROM public.procrastinate_jobs AS j
         WHERE j.status = 'doing'
           AND j.id IN (SELECT s.id FROM public.stalled_jobs(p_since) AS s)
           AND (p_except_worker IS NULL OR j.worker_id IS DISTINCT FROM p_except_worker)
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

------------------------------------------------------------
-- Releasing held work
------------------------------------------------------------

-- Send deferred outbox rows that are due (not_before passed, or none: they
-- wait for a pause, a guard or a number) back to the gate, each with its
-- send job; p_now injects the clock (tests), NULL = clock_timestamp(). The
-- gate defers no job itself (db/sendgate.sql): this is how a row refused
-- until a window opens goes out, within a minute of it. Returns how many
-- jobs were deferred.
CREATE OR REPLACE FUNCTION public.release_due_sends(p_now timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer := 0;
    _row record;
BEGIN
    IF public.julia_is_paused() THEN
        RETURN 0;
    END IF;
    -- Locked and re-checked: a send job may be claiming the same row right now.
    FOR _row IN
        SELECT o.id FROM public.outbox AS o
         WHERE o.state = 'deferred' AND (o.not_before IS NULL OR o.not_before <= coalesce(p_now, clock_timestamp()))
         ORDER BY o.id
         FOR UPDATE SKIP LOCKED
    LOOP
        IF public._requeue_deferred_send(_row.id) THEN _n := _n + 1; END IF;
    END LOOP;
    RETURN _n;
END;
$$;

-- Re-defer what waits on Julia: send jobs of deferred outbox rows that are
-- due and, with p_replies (on resume), reply jobs of conversations with an
-- unanswered doctor message. Returns how many jobs were deferred.
CREATE OR REPLACE FUNCTION public.release_held_work(p_replies boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer := 0;
    _conv record;
BEGIN
    IF public.julia_is_paused() THEN
        RETURN 0;
    END IF;
    FOR _conv IN
        SELECT c.id FROM public.conversations AS c
         WHERE p_replies AND c.status = 'aberta'
           AND public.pending_inbound(c.id) IS NOT NULL
    LOOP
        IF public.defer_reply(_conv.id) IS NOT NULL THEN _n := _n + 1; END IF;
    END LOOP;
    RETURN _n + public.release_due_sends();
END;
$$;

-- Re-defer the reply of conversations whose doctor is still owed an answer
-- after p_older_than with no reply job waiting or running (jobs of workers
-- silent for p_older_than are rescued first) (its job failed
-- for a reason nobody recorded, or ran out of retries while Evolution or
-- Claude were down). A permanent failure recorded for the conversation since
-- that message stops it: nobody loops on a request the model rejects.
-- Returns how many were re-deferred. Run by a periodic job, which names its
-- own worker (p_except_worker): its jobs are not rescued (rescue_stalled_jobs).
DROP FUNCTION IF EXISTS public.sweep_owed_replies(interval);
CREATE OR REPLACE FUNCTION public.sweep_owed_replies(
    p_older_than interval DEFAULT '3 minutes', p_except_worker bigint DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _conv record;
    _n integer := 0;
BEGIN
    IF public.julia_is_paused() THEN
        RETURN 0;
    END IF;
    -- A reply job left running by a dead worker is not "a job waiting": put
    -- it back to work first (the worker's own rescue normally did already).
    PERFORM public.rescue_stalled_jobs(p_older_than, p_except_worker);
    FOR _conv IN
        SELECT c.id, owed.id AS message_id, i.message_at
          FROM public.conversations AS c
          CROSS JOIN LATERAL (SELECT public.pending_inbound(c.id) AS id) AS owed
          JOIN public.interacoes AS i ON i.id = owed.id
         WHERE c.status = 'aberta' AND owed.id IS NOT NULL
           AND c.last_inbound_at > clock_timestamp() - interval '2 days'
           AND i.created_at < clock_timestamp() - p_older_than
           AND public.silence_reason(c.id) IS NULL
           AND NOT EXISTS (SELECT 1 FROM public.procrastinate_jobs AS j
                            WHERE j.queue_name = 'replies' AND j.status IN ('todo', 'doing')
                              AND j.lock = 'conversation:' || c.id)
           AND NOT EXISTS (SELECT 1 FROM public.job_failures AS f
                            WHERE f.conversation_id = c.id AND f.created_at > i.created_at)
    LOOP
        IF public.defer_reply(_conv.id) IS NOT NULL THEN _n := _n + 1; END IF;
    END LOOP;
    RETURN _n;
END;
$$;

-- Re-defer mirror and notification jobs for work left waiting (a job that
-- ran out of retries during an outage). Returns how many jobs were deferred.
CREATE OR REPLACE FUNCTION public.redefer_humans_work(p_older_than interval DEFAULT '2 minutes')
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer := 0;
    _id bigint;
BEGIN
    FOR _id IN
        SELECT DISTINCT w.conversation_id FROM (
            SELECT m.conversation_id FROM public.chatwoot_messages AS m
             WHERE m.state IN ('pending', 'sending') AND m.created_at < clock_timestamp() - p_older_than
            UNION
            SELECT e.conversation_id FROM public.chatwoot_events AS e
             WHERE e.state = 'pending' AND e.created_at < clock_timestamp() - p_older_than) AS w
    LOOP
        IF public.defer_chatwoot_sync(_id) IS NOT NULL THEN _n := _n + 1; END IF;
    END LOOP;
    FOR _id IN
        SELECT n.id FROM public.notifications AS n
         WHERE n.state = 'pending' AND n.created_at < clock_timestamp() - p_older_than
         ORDER BY n.id
    LOOP
        IF public.defer_notification(_id) IS NOT NULL THEN _n := _n + 1; END IF;
    END LOOP;
    PERFORM public.prune_slack_requests();
    RETURN _n;
END;
$$;

------------------------------------------------------------
-- Touches
------------------------------------------------------------

-- Recompute each doctor's last touch (last proactive message sent or last
-- message exchanged) from the outbox and the history. Returns rows changed.
CREATE OR REPLACE FUNCTION public.reconcile_touches()
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer;
BEGIN
    WITH touch AS (
        SELECT cl.id, greatest(
                   (SELECT max(o.sent_at) FROM public.outbox AS o WHERE o.cliente_id = cl.id AND o.state = 'sent'),
                   (SELECT max(i.message_at) FROM public.interacoes AS i WHERE i.cliente_id = cl.id)) AS at
          FROM public.clientes AS cl
    )
    UPDATE public.clientes AS cl SET ultimo_contato_em = touch.at
      FROM touch
     WHERE cl.id = touch.id AND cl.ultimo_contato_em IS DISTINCT FROM touch.at;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

------------------------------------------------------------
-- Pruning and periodic runs
------------------------------------------------------------

-- Forget what is no longer useful: archived pgmq messages and old counters.
CREATE OR REPLACE FUNCTION public.prune_history(p_keep interval DEFAULT '30 days')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _archived integer;
    _counters integer;
    _n integer;
    _runs integer;
BEGIN
    DELETE FROM pgmq.a_inbound WHERE archived_at < clock_timestamp() - p_keep;
    GET DIAGNOSTICS _archived = ROW_COUNT;
    DELETE FROM public.send_counters WHERE window_start < (clock_timestamp() - p_keep) AT TIME ZONE 'America/Sao_Paulo';
    GET DIAGNOSTICS _counters = ROW_COUNT;
    DELETE FROM public.number_send_counters WHERE window_start < (clock_timestamp() - p_keep) AT TIME ZONE 'America/Sao_Paulo';
    GET DIAGNOSTICS _n = ROW_COUNT;
    _counters := _counters + _n;
    DELETE FROM public.number_health_events WHERE created_at < clock_timestamp() - p_keep;
    _runs := public.prune_periodic_runs(p_keep);
    RETURN jsonb_build_object('pgmq_archived', _archived, 'send_counters', _counters, 'periodic_runs', _runs);
END;
$$;

-- Record that a periodic task ran for a tick (unix seconds of the schedule).
CREATE OR REPLACE FUNCTION public.record_periodic_run(p_task_name text, p_tick bigint, p_result jsonb)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.periodic_runs (task_name, tick, result) VALUES (p_task_name, p_tick, p_result);
$$;

-- Forget runs older than p_keep (the log stays small).
CREATE OR REPLACE FUNCTION public.prune_periodic_runs(p_keep interval DEFAULT '14 days')
RETURNS integer
LANGUAGE sql
SET search_path = ''
AS $$
    WITH gone AS (
        DELETE FROM public.periodic_runs WHERE ran_at < clock_timestamp() - p_keep RETURNING 1
    )
    SELECT count(*)::integer FROM gone;
$$;
