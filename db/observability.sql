-- Observability, decided in SQL: the counters /metrics exports (kept by
-- triggers in the transaction of the fact they count, so every worker and
-- api replica agrees), the one snapshot a scrape reads, the record of each
-- model call. The path of one message (`julia trace`) is in db/trace.sql.
-- Tables: llm_calls and metric_counters (revisions 0016, 0020).

------------------------------------------------------------
-- Counters
------------------------------------------------------------

-- How many rows one counter is spread over (revision 0020). A counter row
-- stays locked until its transaction's commit is durable: transactions of
-- different backends bump different shards (one per backend, by process
-- id), so concurrent counting never queues on one row. A scrape sums them.
CREATE OR REPLACE FUNCTION public.metric_shards()
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT 32;
$$;

-- Add p_by to counter p_metric{p_labels} (its shard created at 0).
CREATE OR REPLACE FUNCTION public._count_metric(p_metric text, p_labels jsonb, p_by double precision DEFAULT 1)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.metric_counters AS m (metric, labels, shard, value)
    VALUES (p_metric, coalesce(p_labels, '{}'::jsonb), pg_catalog.pg_backend_pid() % public.metric_shards(), p_by)
    ON CONFLICT (metric, labels, shard) DO UPDATE SET value = m.value + EXCLUDED.value, updated_at = clock_timestamp();
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

-- Jobs waiting and running per queue (every known queue, zero when empty),
-- read through the partial index on waiting and running jobs.
CREATE OR REPLACE FUNCTION public._job_gauges()
RETURNS TABLE (metric text, labels jsonb, value double precision)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH pending AS (
        SELECT j.queue_name::text AS queue, j.status::text AS status, count(*) AS n
          FROM public.procrastinate_jobs AS j
         WHERE j.status IN ('todo', 'doing')
         GROUP BY j.queue_name, j.status
    )
    SELECT 'julia_jobs', jsonb_build_object('queue', k.queue, 'status', k.status), coalesce(p.n, 0)::double precision
      FROM (SELECT q.queue, s.status
              FROM (VALUES ('replies'), ('sends'), ('humans'), ('periodic')
                    UNION SELECT p2.queue FROM pending AS p2) AS q (queue)
             CROSS JOIN (VALUES ('todo'), ('doing')) AS s (status)) AS k
      LEFT JOIN pending AS p ON p.queue = k.queue AND p.status = k.status
     ORDER BY k.queue, k.status;
$$;

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
        SELECT m.metric, m.labels, sum(m.value) FROM public.metric_counters AS m
         WHERE m.metric NOT LIKE '%\_bucket'
         GROUP BY m.metric, m.labels
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

    RETURN QUERY SELECT * FROM public._job_gauges();

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
