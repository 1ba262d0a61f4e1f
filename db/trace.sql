-- The path of one message for `julia trace`, from what SQL kept.
-- Tables: llm_calls (revision 0016) and those it reads across the schema.

------------------------------------------------------------
-- The path of one message (julia trace)
------------------------------------------------------------

-- The doctor message an id names: an interacao id or an Evolution message id
-- (of the doctor's message, or of Julia's answer: then the message it answered).
CREATE OR REPLACE FUNCTION public._trace_root(p_id text)
RETURNS public.interacoes
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _i public.interacoes;
    _root bigint;
BEGIN
    IF p_id ~ '^[0-9]{1,18}$' THEN
        SELECT * INTO _i FROM public.interacoes AS i WHERE i.id = p_id::bigint;
    END IF;
    IF _i.id IS NULL THEN
        SELECT * INTO _i FROM public.interacoes AS i WHERE i.message_id = p_id;
    END IF;
    IF _i.id IS NOT NULL AND _i.direcao = 'saida' THEN
        SELECT o.reply_to_id INTO _root FROM public.outbox AS o
         WHERE o.evolution_message_id = _i.message_id AND o.reply_to_id IS NOT NULL
         LIMIT 1;
        IF _root IS NOT NULL THEN
            SELECT * INTO _i FROM public.interacoes AS i WHERE i.id = _root;
        END IF;
    END IF;
    RETURN _i;
END;
$$;

-- A message not stored (yet): still in the inbound queue, or set aside as poison.
CREATE OR REPLACE FUNCTION public._trace_unstored(p_id text)
RETURNS TABLE (at timestamptz, rank integer, step text, detail jsonb)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT q.enqueued_at, 1, 'webhook_queued',
           jsonb_build_object('msg_id', q.msg_id, 'read_ct', q.read_ct, 'stored', false)
      FROM pgmq.q_inbound AS q
     WHERE q.message -> 'message' ->> 'message_id' = p_id
    UNION ALL
    SELECT f.created_at, 1, 'inbound_poison',
           jsonb_build_object('msg_id', f.msg_id, 'read_ct', f.read_ct, 'error', left(f.error, 200))
      FROM public.inbound_failures AS f
     WHERE f.message -> 'message' ->> 'message_id' = p_id;
$$;

-- Up to the model: the webhook deliveries, the stored interacao, the reply
-- job's events and its model calls. p_answer: the doctor message whose reply
-- covered this one; p_until: when that reply was written.
CREATE OR REPLACE FUNCTION public._trace_until_reply(p_i public.interacoes, p_answer bigint, p_until timestamptz)
RETURNS TABLE (at timestamptz, rank integer, step text, detail jsonb)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH reply_jobs AS (
        SELECT j.id, j.attempts, j.status
          FROM public.procrastinate_jobs AS j
         WHERE j.queue_name = 'replies' AND j.task_name = 'reply_to_conversation'
           AND j.args ->> 'conversation_id' = p_i.conversation_id::text
           AND (j.id IN (SELECT c.job_id FROM public.llm_calls AS c WHERE c.reply_to_id IN (p_i.id, p_answer))
                OR EXISTS (SELECT 1 FROM public.procrastinate_events AS e
                            WHERE e.job_id = j.id AND e.type = 'deferred'
                              AND e.at >= p_i.created_at AND e.at <= p_until))
    )
    SELECT a.enqueued_at, 1, CASE WHEN row_number() OVER (ORDER BY a.msg_id) = 1
                                  THEN 'webhook_queued' ELSE 'webhook_duplicate' END,
           jsonb_build_object('msg_id', a.msg_id, 'read_ct', a.read_ct, 'archived_at', a.archived_at)
      FROM pgmq.a_inbound AS a
     WHERE a.archived_at BETWEEN p_i.created_at - interval '5 minutes' AND p_i.created_at + interval '5 minutes'
       AND a.message -> 'message' ->> 'message_id' = p_i.message_id
    UNION ALL
    SELECT p_i.created_at, 2, 'interacao_stored',
           jsonb_build_object('interacao_id', p_i.id, 'message_id', p_i.message_id,
                              'conversation_id', p_i.conversation_id, 'cliente_id', p_i.cliente_id,
                              'autor', p_i.autor, 'answered_with', CASE WHEN p_answer <> p_i.id THEN p_answer END)
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
     WHERE c.reply_to_id IN (p_i.id, p_answer) OR c.job_id IN (SELECT rj.id FROM reply_jobs AS rj);
$$;

-- From the outbox on: the reply's rows, their send jobs, claims, sends,
-- failures or deferrals, and delivery statuses.
CREATE OR REPLACE FUNCTION public._trace_outbox(p_answer bigint)
RETURNS TABLE (at timestamptz, rank integer, step text, detail jsonb)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH rows AS (
        SELECT o.*, n.instance
          FROM public.outbox AS o LEFT JOIN public.whatsapp_numbers AS n ON n.id = o.number_id
         WHERE o.reply_to_id = p_answer
    ),
    send_jobs AS (
        SELECT j.id, (j.args ->> 'outbox_id')::bigint AS outbox_id
          FROM public.procrastinate_jobs AS j
         WHERE j.queue_name = 'sends' AND j.task_name = 'send_outbox'
           AND (j.args ->> 'outbox_id')::bigint IN (SELECT r.id FROM rows AS r)
    )
    SELECT r.created_at, 5, 'outbox_queued',
           jsonb_build_object('outbox_id', r.id, 'kind', r.kind, 'texto', left(r.texto, 80))
      FROM rows AS r
    UNION ALL
    SELECT e.at, 6, 'send_job_' || e.type::text, jsonb_build_object('job_id', e.job_id, 'outbox_id', sj.outbox_id)
      FROM send_jobs AS sj JOIN public.procrastinate_events AS e ON e.job_id = sj.id
    UNION ALL
    SELECT r.claimed_at, 7, 'outbox_claimed',
           jsonb_build_object('outbox_id', r.id, 'number', r.number, 'instance', r.instance,
                              'attempts', r.attempts, 'job_id', r.claimed_by_job)
      FROM rows AS r
     WHERE r.claimed_at IS NOT NULL
    UNION ALL
    SELECT r.sent_at, 8, 'outbox_sent',
           jsonb_build_object('outbox_id', r.id, 'number', r.number, 'instance', r.instance,
                              'evolution_message_id', r.evolution_message_id)
      FROM rows AS r
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
      FROM rows AS r JOIN public.delivery_events AS d ON d.evolution_message_id = r.evolution_message_id;
$$;

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
    _answer bigint;
    _until timestamptz;
BEGIN
    IF trim(coalesce(p_id, '')) = '' THEN
        RAISE EXCEPTION 'message_trace: a message id is required' USING ERRCODE = 'JU400';
    END IF;
    _i := public._trace_root(p_id);
    IF _i.id IS NULL THEN
        RETURN QUERY SELECT u.at, u.step, u.detail FROM public._trace_unstored(p_id) AS u ORDER BY u.at;
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
    SELECT s.at, s.step, jsonb_strip_nulls(s.detail)
      FROM (SELECT * FROM public._trace_until_reply(_i, _answer, _until)
            UNION ALL
            SELECT * FROM public._trace_outbox(_answer) WHERE _answer IS NOT NULL) AS s
     ORDER BY s.at, s.rank, s.step;
END;
$$;
