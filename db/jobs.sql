-- Every procrastinate job Julia defers from SQL, so a data change and the
-- job that follows it commit in one transaction. Each job's task, queue,
-- lock and queueing lock are written here, in one place: the rescue of
-- stalled jobs (db/upkeep.sql) relies on every queueing lock naming its
-- job's work (reply:<conversation>, send:<outbox row>,
-- chatwoot-sync:<conversation>, notify:<notification>).

------------------------------------------------------------
-- Deferring a job
------------------------------------------------------------

-- The signature before job priorities (p_priority): dropped so calls of six
-- arguments are not ambiguous; older code's calls resolve to the one below.
DROP FUNCTION IF EXISTS public.defer_job(text, jsonb, text, text, text, timestamptz);

-- Defer one procrastinate job; returns its id, or NULL when a job with the
-- same queueing lock is already waiting (the burst case: one job is enough).
-- A worker takes the highest priority first (then the oldest).
CREATE OR REPLACE FUNCTION public.defer_job(
    p_task_name text,
    p_args jsonb,
    p_queue text DEFAULT 'default',
    p_lock text DEFAULT NULL,
    p_queueing_lock text DEFAULT NULL,
    p_scheduled_at timestamptz DEFAULT NULL,
    p_priority integer DEFAULT 0
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _ids bigint[];
BEGIN
    IF p_task_name IS NULL OR p_task_name = '' THEN
        RAISE EXCEPTION 'defer_job: task name is required' USING ERRCODE = 'JU400';
    END IF;
    BEGIN
        _ids := public.procrastinate_defer_jobs_v1(ARRAY[
            ROW(p_queue, p_task_name, p_priority, p_lock, p_queueing_lock, p_args, p_scheduled_at)
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
-- Julia's jobs
------------------------------------------------------------

-- Under load a worker first finishes what a doctor already waits for: a
-- written reply's send before the next reply, a reply before a mirror or
-- periodic job (those default to 0).
CREATE OR REPLACE FUNCTION public.job_priority(p_task_name text)
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT CASE p_task_name WHEN 'send_outbox' THEN 2 WHEN 'reply_to_conversation' THEN 1 ELSE 0 END;
$$;

-- How long a reply waits for more messages of the same burst (doctors often
-- write in several short messages). app_settings 'reply_debounce_ms'.
CREATE OR REPLACE FUNCTION public.reply_debounce()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT make_interval(secs => public.setting_int('reply_debounce_ms', 2500) / 1000.0);
$$;

-- Defer the reply job of a conversation after the debounce; one waits at a
-- time (queueing lock), and replies of one conversation run one after the
-- other (lock).
CREATE OR REPLACE FUNCTION public.defer_reply(p_conversation_id bigint)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT public.defer_job(
        'reply_to_conversation',
        jsonb_build_object('conversation_id', p_conversation_id),
        'replies',
        'conversation:' || p_conversation_id,
        'reply:' || p_conversation_id,
        clock_timestamp() + public.reply_debounce(),
        public.job_priority('reply_to_conversation'));
$$;

-- Defer the send job of one outbox row (at most one waiting per row).
CREATE OR REPLACE FUNCTION public.defer_send(p_outbox_id bigint, p_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT public.defer_job(
        'send_outbox',
        jsonb_build_object('outbox_id', o.id),
        'sends',
        -- Parts of one reply go out in order (a lock apart from the reply
        -- job's, so a send never waits behind the job that wrote it).
        -- Proactive rows lock alone: one deferred for days must not hold
        -- up the conversation's replies.
        CASE WHEN o.kind IN ('reply', 'human') AND o.conversation_id IS NOT NULL
             THEN 'sends:conversation:' || o.conversation_id ELSE 'outbox:' || o.id END,
        'send:' || o.id,
        p_at,
        public.job_priority('send_outbox'))
      FROM public.outbox AS o
     WHERE o.id = p_outbox_id;
$$;

-- Defer the mirror job of a conversation: one waits at a time (queueing
-- lock); jobs of one conversation run in order, at most two run at once.
-- A job already waiting is held (row lock) until this transaction commits:
-- procrastinate's fetch skips locked jobs, so it cannot start, find nothing
-- new and finish before what this transaction wrote is visible, which
-- would leave that message for the sweep. One that started meanwhile is no
-- longer waiting, and a new one is deferred.
-- With the mirror off (no worker has Chatwoot configured,
-- db/chatwoot.sql's chatwoot_mirror_on) what waits is skipped at once, as
-- the job would have done, and no job is deferred (NULL).
CREATE OR REPLACE FUNCTION public.defer_chatwoot_sync(p_conversation_id bigint, p_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _lock text := 'chatwoot-sync:' || p_conversation_id;
    _id bigint;
BEGIN
    IF NOT public.chatwoot_mirror_on() THEN
        PERFORM public.skip_chatwoot_sync(p_conversation_id);
        RETURN NULL;
    END IF;
    FOR _attempt IN 1..3 LOOP
        PERFORM 1 FROM public.procrastinate_jobs AS j WHERE j.queueing_lock = _lock AND j.status = 'todo' FOR UPDATE;
        IF FOUND THEN
            RETURN NULL;
        END IF;
        _id := public.defer_job(
            'sync_chatwoot_conversation',
            jsonb_build_object('conversation_id', p_conversation_id),
            'humans',
            'chatwoot-sync:' || (p_conversation_id % 2),
            _lock,
            p_at);
        IF _id IS NOT NULL THEN
            RETURN _id;
        END IF;
        -- Another transaction deferred one between the two: hold that one.
    END LOOP;
    RETURN NULL;
END;
$$;

-- Defer the send job of one notification; they go out one at a time, in order.
CREATE OR REPLACE FUNCTION public.defer_notification(p_notification_id bigint, p_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT public.defer_job(
        'send_notification',
        jsonb_build_object('notification_id', p_notification_id),
        'humans',
        'slack-notifications',
        'notify:' || p_notification_id,
        p_at);
$$;

------------------------------------------------------------
-- Permanent failures
------------------------------------------------------------

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
