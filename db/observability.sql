-- Observability, decided in SQL: the counters /metrics exports (kept by
-- triggers in the transaction of the fact they count, so every worker and
-- api replica agrees), the one snapshot a scrape reads, the record of each
-- model call, and the path of one message for `julia trace`.
-- Tables: llm_calls and metric_counters (revision 0017).

------------------------------------------------------------
-- Counters
------------------------------------------------------------

-- Add p_by to counter p_metric{p_labels} (created at 0).
CREATE OR REPLACE FUNCTION public._count_metric(p_metric text, p_labels jsonb, p_by double precision DEFAULT 1)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.metric_counters AS m (metric, labels, value)
    VALUES (p_metric, coalesce(p_labels, '{}'::jsonb), p_by)
    ON CONFLICT (metric, labels) DO UPDATE SET value = m.value + EXCLUDED.value, updated_at = clock_timestamp();
$$;

-- Upper bounds (seconds) of the reply latency histogram; +Inf is implied.
CREATE OR REPLACE FUNCTION public.reply_latency_buckets()
RETURNS double precision[]
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT ARRAY[1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]::double precision[];
$$;

-- Count one observation of histogram p_metric: its own bucket (the export
-- makes them cumulative), _sum and _count.
CREATE OR REPLACE FUNCTION public._observe_metric(p_metric text, p_bounds double precision[], p_value double precision)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _le text := coalesce((SELECT min(b)::text FROM pg_catalog.unnest(p_bounds) AS b WHERE p_value <= b), '+Inf');
BEGIN
    PERFORM public._count_metric(p_metric || '_bucket', jsonb_build_object('le', _le), 1);
    PERFORM public._count_metric(p_metric || '_sum', '{}'::jsonb, greatest(p_value, 0));
    PERFORM public._count_metric(p_metric || '_count', '{}'::jsonb, 1);
END;
$$;

------------------------------------------------------------
-- What the counters count (triggers)
------------------------------------------------------------

-- An outbox row changed: count sends by outcome (sent, retry = an attempt
-- failed and will be retried, failed = never goes), refusals of the send
-- gate by reason (each time a refusal is written), and for the first sent
-- part of a reply its latency from the doctor's message being stored.
CREATE OR REPLACE FUNCTION public.count_outbox_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _stored_at timestamptz;
BEGIN
    IF NEW.state = 'sent' AND OLD.state <> 'sent' THEN
        PERFORM public._count_metric('julia_sends_total', jsonb_build_object('kind', NEW.kind, 'outcome', 'sent'));
        IF NEW.kind = 'reply' AND NEW.reply_to_id IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM public.outbox AS o
                WHERE o.reply_to_id = NEW.reply_to_id AND o.state = 'sent' AND o.id <> NEW.id) THEN
            SELECT i.created_at INTO _stored_at FROM public.interacoes AS i WHERE i.id = NEW.reply_to_id;
            IF _stored_at IS NOT NULL THEN
                PERFORM public._observe_metric('julia_reply_latency_seconds', public.reply_latency_buckets(),
                                               extract(epoch FROM coalesce(NEW.sent_at, clock_timestamp()) - _stored_at));
            END IF;
        END IF;
    ELSIF NEW.state = 'failed' AND OLD.state <> 'failed' THEN
        PERFORM public._count_metric('julia_sends_total', jsonb_build_object('kind', NEW.kind, 'outcome', 'failed'));
    ELSIF OLD.state = 'claimed' AND NEW.state = 'queued' AND NEW.last_error IS NOT NULL THEN
        PERFORM public._count_metric('julia_sends_total', jsonb_build_object('kind', NEW.kind, 'outcome', 'retry'));
    END IF;
    -- The gate writes a refusal (and updated_at) each time it refuses; a
    -- release back to 'queued' keeps the old reason and is not a refusal.
    IF NEW.refusal IS NOT NULL AND NEW.updated_at IS DISTINCT FROM OLD.updated_at
       AND (NEW.state IN ('deferred', 'failed') OR NEW.refusal IS DISTINCT FROM OLD.refusal) THEN
        PERFORM public._count_metric('julia_send_refusals_total',
                                     jsonb_build_object('kind', NEW.kind, 'reason', NEW.refusal));
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS outbox_count_in_metric_counters ON public.outbox;
CREATE TRIGGER outbox_count_in_metric_counters
    AFTER UPDATE ON public.outbox
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.refusal IS DISTINCT FROM NEW.refusal
          OR OLD.updated_at IS DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION public.count_outbox_change();

-- A model call was recorded: calls by model and outcome, tokens by model and kind.
CREATE OR REPLACE FUNCTION public.count_llm_call()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM public._count_metric('julia_llm_calls_total', jsonb_build_object('model', NEW.model, 'outcome', NEW.outcome));
    PERFORM public._count_metric('julia_llm_tokens_total', jsonb_build_object('model', NEW.model, 'kind', 'input'),
                                 NEW.input_tokens);
    PERFORM public._count_metric('julia_llm_tokens_total', jsonb_build_object('model', NEW.model, 'kind', 'output'),
                                 NEW.output_tokens);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS llm_calls_count_in_metric_counters ON public.llm_calls;
CREATE TRIGGER llm_calls_count_in_metric_counters
    AFTER INSERT ON public.llm_calls
    FOR EACH ROW EXECUTE FUNCTION public.count_llm_call();

-- A job stopped for good (job_failures): failures by task and classification.
CREATE OR REPLACE FUNCTION public.count_job_failure()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM public._count_metric('julia_job_failures_total',
                                 jsonb_build_object('task', NEW.task_name, 'classification', NEW.classification));
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS job_failures_count_in_metric_counters ON public.job_failures;
CREATE TRIGGER job_failures_count_in_metric_counters
    AFTER INSERT ON public.job_failures
    FOR EACH ROW EXECUTE FUNCTION public.count_job_failure();

-- An inbound message was set aside as poison (inbound_failures).
CREATE OR REPLACE FUNCTION public.count_inbound_poison()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM public._count_metric('julia_inbound_poison_total', '{}'::jsonb);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS inbound_failures_count_in_metric_counters ON public.inbound_failures;
CREATE TRIGGER inbound_failures_count_in_metric_counters
    AFTER INSERT ON public.inbound_failures
    FOR EACH ROW EXECUTE FUNCTION public.count_inbound_poison();

------------------------------------------------------------
-- Model calls (worker)
------------------------------------------------------------

-- Record one Messages API call of a reply job; returns its id.
CREATE OR REPLACE FUNCTION public.record_llm_call(
    p_conversation_id bigint, p_reply_to_id bigint, p_job_id bigint, p_model text, p_outcome text,
    p_input_tokens integer, p_output_tokens integer, p_stop_reason text, p_error text, p_started_at timestamptz
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF p_outcome IS NULL OR p_outcome NOT IN ('ok', 'error') THEN
        RAISE EXCEPTION 'record_llm_call: outcome must be ok or error, not % (conversation %)',
            p_outcome, p_conversation_id USING ERRCODE = 'JU400';
    END IF;
    INSERT INTO public.llm_calls
        (conversation_id, reply_to_id, job_id, model, outcome, input_tokens, output_tokens, stop_reason, error,
         started_at)
    VALUES (p_conversation_id, p_reply_to_id, p_job_id, left(coalesce(nullif(p_model, ''), 'unknown'), 100),
            p_outcome, coalesce(p_input_tokens, 0), coalesce(p_output_tokens, 0), p_stop_reason,
            left(p_error, 1000), coalesce(p_started_at, clock_timestamp()))
    RETURNING id INTO _id;
    RETURN _id;
END;
$$;

-- Forget model calls older than p_keep (the counters keep their totals).
CREATE OR REPLACE FUNCTION public.prune_llm_calls(p_keep interval DEFAULT '30 days')
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer;
BEGIN
    DELETE FROM public.llm_calls WHERE finished_at < clock_timestamp() - p_keep;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

------------------------------------------------------------
-- The scrape
------------------------------------------------------------

-- Everything /metrics reads from the database, in one call: the counters
-- (histogram buckets made cumulative) and gauges of the moment — inbound
-- queue, jobs waiting and running, outbox rows pending and held, pause,
-- the environment guard for the caller's APP_ENV / project ref, numbers.
-- Each part reads a bounded set: counter rows, pending rows (partial
-- indexes), the live queue, the numbers.
CREATE OR REPLACE FUNCTION public.metrics_snapshot(p_app_env text, p_project_ref text)
RETURNS TABLE (metric text, labels jsonb, value double precision)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _q record;
BEGIN
    RETURN QUERY
        SELECT m.metric, m.labels, m.value FROM public.metric_counters AS m
         WHERE m.metric NOT LIKE '%\_bucket'
         ORDER BY m.metric, m.labels::text;
    RETURN QUERY
        SELECT 'julia_reply_latency_seconds_bucket', jsonb_build_object('le', b.le),
               coalesce((SELECT sum(m.value) FROM public.metric_counters AS m
                          WHERE m.metric = 'julia_reply_latency_seconds_bucket'
                            AND (m.labels ->> 'le')::double precision <= b.bound), 0)::double precision
          FROM (SELECT x::text AS le, x AS bound FROM pg_catalog.unnest(public.reply_latency_buckets()) AS x
                UNION ALL SELECT '+Inf', 'Infinity'::double precision) AS b
         ORDER BY b.bound;

    SELECT * INTO _q FROM pgmq.metrics('inbound');
    RETURN QUERY VALUES
        ('julia_inbound_queue_depth', '{}'::jsonb, _q.queue_length::double precision),
        ('julia_inbound_oldest_age_seconds', '{}'::jsonb, coalesce(_q.oldest_msg_age_sec, 0)::double precision),
        ('julia_inbound_queued_total', '{}'::jsonb, _q.total_messages::double precision);

    RETURN QUERY
        WITH pending AS (
            -- Only waiting and running jobs: a partial index, never the finished history.
            SELECT j.queue_name::text AS queue, j.status::text AS status, count(*) AS n
              FROM public.procrastinate_jobs AS j
             WHERE j.status IN ('todo', 'doing')
             GROUP BY j.queue_name, j.status
        )
        SELECT 'julia_jobs', jsonb_build_object('queue', k.queue, 'status', k.status),
               coalesce(p.n, 0)::double precision
          FROM (SELECT q.queue, s.status
                  FROM (VALUES ('replies'), ('sends'), ('humans'), ('periodic')
                        UNION SELECT p2.queue FROM pending AS p2) AS q (queue)
                 CROSS JOIN (VALUES ('todo'), ('doing')) AS s (status)) AS k
          LEFT JOIN pending AS p ON p.queue = k.queue AND p.status = k.status
         ORDER BY k.queue, k.status;

    RETURN QUERY
        SELECT 'julia_outbox_pending', jsonb_build_object('kind', o.kind, 'state', o.state), count(*)::double precision
          FROM public.outbox AS o
         WHERE o.state IN ('queued', 'deferred', 'claimed')
         GROUP BY o.kind, o.state
         ORDER BY o.kind, o.state;
    RETURN QUERY
        SELECT 'julia_outbox_deferred', jsonb_build_object('reason', coalesce(o.refusal, 'none')),
               count(*)::double precision
          FROM public.outbox AS o
         WHERE o.state = 'deferred'
         GROUP BY o.refusal
         ORDER BY o.refusal;

    RETURN QUERY VALUES
        ('julia_paused', '{}'::jsonb, public.julia_is_paused()::integer::double precision),
        ('julia_environment_guard_ok', '{}'::jsonb,
         coalesce(public.environment_guard_ok(p_app_env, p_project_ref), false)::integer::double precision);
    RETURN QUERY
        SELECT 'julia_number_available', jsonb_build_object('instance', n.instance, 'state', n.state),
               (public.number_unavailable(n) IS NULL)::integer::double precision
          FROM public.whatsapp_numbers AS n
         ORDER BY n.instance;
END;
$$;

------------------------------------------------------------
-- The path of one message (julia trace)
------------------------------------------------------------

-- The steps of one doctor message, oldest first, from what SQL kept:
-- webhook queued (pgmq), stored (interacao), the reply job's events, model
-- calls, the reply's outbox rows with their send jobs and claims, delivery
-- statuses. p_id is the interacao id or the Evolution message id (of the
-- doctor's message, or of Julia's answer: then the message it answered).
-- A message answered together with later ones of its burst shows the reply
-- that covered it (answered_with). Raises JU404 for an unknown id.
CREATE OR REPLACE FUNCTION public.message_trace(p_id text)
RETURNS TABLE (at timestamptz, step text, detail jsonb)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _i public.interacoes;
    _root bigint;
    _answer bigint;
    _until timestamptz;
BEGIN
    IF trim(coalesce(p_id, '')) = '' THEN
        RAISE EXCEPTION 'message_trace: a message id is required' USING ERRCODE = 'JU400';
    END IF;
    IF p_id ~ '^[0-9]{1,18}$' THEN
        SELECT * INTO _i FROM public.interacoes AS i WHERE i.id = p_id::bigint;
    END IF;
    IF _i.id IS NULL THEN
        SELECT * INTO _i FROM public.interacoes AS i WHERE i.message_id = p_id;
    END IF;
    IF _i.id IS NOT NULL AND _i.direcao = 'saida' THEN
        -- Julia's answer: trace the doctor message it answered.
        SELECT o.reply_to_id INTO _root FROM public.outbox AS o
         WHERE o.evolution_message_id = _i.message_id AND o.reply_to_id IS NOT NULL
         LIMIT 1;
        IF _root IS NOT NULL THEN
            SELECT * INTO _i FROM public.interacoes AS i WHERE i.id = _root;
        END IF;
    END IF;

    IF _i.id IS NULL THEN
        -- Not stored (yet): still in the queue, or set aside as poison.
        RETURN QUERY
            SELECT q.enqueued_at, 'webhook_queued',
                   jsonb_build_object('msg_id', q.msg_id, 'read_ct', q.read_ct, 'stored', false)
              FROM pgmq.q_inbound AS q
             WHERE q.message -> 'message' ->> 'message_id' = p_id
            UNION ALL
            SELECT f.created_at, 'inbound_poison',
                   jsonb_build_object('msg_id', f.msg_id, 'read_ct', f.read_ct, 'error', left(f.error, 200))
              FROM public.inbound_failures AS f
             WHERE f.message -> 'message' ->> 'message_id' = p_id
             ORDER BY 1;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'message_trace: no message with id % (neither an interacao id nor an Evolution message id)',
                p_id USING ERRCODE = 'JU404';
        END IF;
        RETURN;
    END IF;

    -- The reply that covered this message: its own, or a later one of its burst.
    SELECT o.reply_to_id INTO _answer FROM public.outbox AS o
     WHERE o.conversation_id = _i.conversation_id AND o.kind = 'reply' AND o.reply_to_id >= _i.id
     ORDER BY o.reply_to_id
     LIMIT 1;
    _until := coalesce((SELECT max(o.created_at) FROM public.outbox AS o WHERE o.reply_to_id = _answer),
                       clock_timestamp());

    RETURN QUERY
    WITH reply_jobs AS (
        SELECT j.id, j.attempts, j.status
          FROM public.procrastinate_jobs AS j
         WHERE j.queue_name = 'replies' AND j.task_name = 'reply_to_conversation'
           AND j.args ->> 'conversation_id' = _i.conversation_id::text
           AND (j.id IN (SELECT c.job_id FROM public.llm_calls AS c WHERE c.reply_to_id IN (_i.id, _answer))
                OR EXISTS (SELECT 1 FROM public.procrastinate_events AS e
                            WHERE e.job_id = j.id AND e.type = 'deferred'
                              AND e.at >= _i.created_at AND e.at <= _until))
    ),
    rows AS (
        SELECT o.* FROM public.outbox AS o WHERE o.reply_to_id = _answer AND _answer IS NOT NULL
    ),
    send_jobs AS (
        SELECT j.id, (j.args ->> 'outbox_id')::bigint AS outbox_id
          FROM public.procrastinate_jobs AS j
         WHERE j.queue_name = 'sends' AND j.task_name = 'send_outbox'
           AND (j.args ->> 'outbox_id')::bigint IN (SELECT r.id FROM rows AS r)
    ),
    steps (at, rank, step, detail) AS (
        SELECT a.enqueued_at, 1, CASE WHEN row_number() OVER (ORDER BY a.msg_id) = 1
                                      THEN 'webhook_queued' ELSE 'webhook_duplicate' END,
               jsonb_build_object('msg_id', a.msg_id, 'read_ct', a.read_ct, 'archived_at', a.archived_at)
          FROM pgmq.a_inbound AS a
         WHERE a.archived_at BETWEEN _i.created_at - interval '5 minutes' AND _i.created_at + interval '5 minutes'
           AND a.message -> 'message' ->> 'message_id' = _i.message_id
        UNION ALL
        SELECT _i.created_at, 2, 'interacao_stored',
               jsonb_build_object('interacao_id', _i.id, 'message_id', _i.message_id,
                                  'conversation_id', _i.conversation_id, 'cliente_id', _i.cliente_id,
                                  'autor', _i.autor, 'answered_with', CASE WHEN _answer <> _i.id THEN _answer END)
        UNION ALL
        SELECT e.at, 3, 'reply_job_' || e.type::text,
               jsonb_build_object('job_id', e.job_id, 'job_status', rj.status, 'attempts', rj.attempts)
          FROM reply_jobs AS rj JOIN public.procrastinate_events AS e ON e.job_id = rj.id
        UNION ALL
        SELECT c.started_at, 4, 'llm_call',
               jsonb_build_object('llm_call_id', c.id, 'job_id', c.job_id, 'model', c.model, 'outcome', c.outcome,
                                  'input_tokens', c.input_tokens, 'output_tokens', c.output_tokens,
                                  'ms', round(extract(epoch FROM c.finished_at - c.started_at) * 1000),
                                  'stop_reason', c.stop_reason, 'error', c.error)
          FROM public.llm_calls AS c
         WHERE c.reply_to_id IN (_i.id, _answer) OR c.job_id IN (SELECT rj.id FROM reply_jobs AS rj)
        UNION ALL
        SELECT r.created_at, 5, 'outbox_queued',
               jsonb_build_object('outbox_id', r.id, 'kind', r.kind, 'texto', left(r.texto, 80))
          FROM rows AS r
        UNION ALL
        SELECT e.at, 6, 'send_job_' || e.type::text, jsonb_build_object('job_id', e.job_id, 'outbox_id', sj.outbox_id)
          FROM send_jobs AS sj JOIN public.procrastinate_events AS e ON e.job_id = sj.id
        UNION ALL
        SELECT r.claimed_at, 7, 'outbox_claimed',
               jsonb_build_object('outbox_id', r.id, 'number', r.number, 'instance', n.instance,
                                  'attempts', r.attempts, 'job_id', r.claimed_by_job)
          FROM rows AS r LEFT JOIN public.whatsapp_numbers AS n ON n.id = r.number_id
         WHERE r.claimed_at IS NOT NULL
        UNION ALL
        SELECT r.sent_at, 8, 'outbox_sent',
               jsonb_build_object('outbox_id', r.id, 'number', r.number, 'instance', n.instance,
                                  'evolution_message_id', r.evolution_message_id)
          FROM rows AS r LEFT JOIN public.whatsapp_numbers AS n ON n.id = r.number_id
         WHERE r.state = 'sent'
        UNION ALL
        SELECT r.updated_at, 8, 'outbox_' || r.state,
               jsonb_build_object('outbox_id', r.id, 'refusal', r.refusal, 'not_before', r.not_before,
                                  'error', left(r.last_error, 200))
          FROM rows AS r
         WHERE r.state IN ('failed', 'deferred')
        UNION ALL
        SELECT d.received_at, 9, 'delivery_status',
               jsonb_build_object('outbox_id', r.id, 'status', d.status, 'error_code', d.error_code)
          FROM rows AS r JOIN public.delivery_events AS d ON d.evolution_message_id = r.evolution_message_id
    )
    SELECT s.at, s.step, jsonb_strip_nulls(s.detail) FROM steps AS s ORDER BY s.at, s.rank, s.step;
END;
$$;
