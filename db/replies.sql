-- What a reply job needs to know, decided in SQL: is there a doctor message
-- to answer, may Julia speak in this conversation now, and the context
-- (doctor profile, rules, active prompt, recent history) in one call.

------------------------------------------------------------
-- Is something owed?
------------------------------------------------------------

-- The newest doctor message of a conversation still waiting for an answer:
-- no reply was written for it (outbox.reply_to_id) and no human answered
-- after it. Julia's own messages are not compared by id: her answer to an
-- earlier message may be recorded after this one arrived.
CREATE OR REPLACE FUNCTION public.pending_inbound(p_conversation_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT last_in.id
      FROM (SELECT max(i.id) AS id FROM public.interacoes AS i
             WHERE i.conversation_id = p_conversation_id AND i.autor = 'medico') AS last_in
     WHERE last_in.id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.interacoes AS i
                        WHERE i.conversation_id = p_conversation_id AND i.autor = 'humano' AND i.id > last_in.id)
       AND NOT EXISTS (SELECT 1 FROM public.outbox AS o
                        WHERE o.conversation_id = p_conversation_id AND o.kind = 'reply'
                          AND o.reply_to_id >= last_in.id);
$$;

-- Why Julia must stay quiet in a conversation right now, or NULL:
-- paused (globally), handoff (a human owns it), takeover (a human typed on
-- the company phone recently).
CREATE OR REPLACE FUNCTION public.silence_reason(p_conversation_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT CASE
               WHEN public.julia_is_paused() THEN 'paused'
               WHEN c.handoff_ativo THEN 'handoff'
               WHEN c.julia_pausada_ate > clock_timestamp() THEN 'takeover'
           END
      FROM public.conversations AS c
     WHERE c.id = p_conversation_id;
$$;

------------------------------------------------------------
-- Context
------------------------------------------------------------

-- Everything a reply job needs, in one call.
CREATE OR REPLACE FUNCTION public.reply_context(p_conversation_id bigint, p_history_limit integer DEFAULT 30)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _conv public.conversations;
    _cliente public.clientes;
BEGIN
    SELECT * INTO _conv FROM public.conversations AS c WHERE c.id = p_conversation_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reply_context: conversation % not found', p_conversation_id;
    END IF;
    SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _conv.cliente_id;
    RETURN jsonb_build_object(
        'conversation_id', _conv.id,
        'silence', public.silence_reason(_conv.id),
        'paused', public.julia_is_paused(),
        'reply_to_id', public.pending_inbound(_conv.id),
        'reply_jid', _conv.reply_jid,
        'cliente', jsonb_strip_nulls(jsonb_build_object(
            'id', _cliente.id, 'nome', _cliente.nome, 'telefone', _cliente.telefone, 'crm', _cliente.crm,
            'especialidade', (SELECT e.nome FROM public.especialidades AS e WHERE e.id = _cliente.especialidade_id),
            'regiao', _cliente.regiao, 'cidade', _cliente.cidade,
            'preferencias', nullif(_cliente.preferencias, '{}'::jsonb),
            'opt_out', _cliente.opt_out)),
        'prompt', (SELECT p.conteudo FROM public.prompts AS p WHERE p.nome = 'julia_system' AND p.ativo),
        'diretrizes', coalesce((SELECT jsonb_agg(d.texto ORDER BY d.prioridade, d.id)
                                  FROM public.diretrizes AS d WHERE d.ativa), '[]'::jsonb),
        -- Julia's answers sit right after the message they answered, even when
        -- they were sent after the doctor wrote again: that is what she saw.
        -- Replies written but not sent yet (their send job waits, or died and
        -- waits for its rescue) are answers too: the next reply must not
        -- answer the same doctor messages again.
        'history', coalesce((
            SELECT jsonb_agg(jsonb_build_object('autor', h.autor, 'texto', h.texto, 'tipo', h.tipo,
                                                'at', h.message_at) ORDER BY h.position, h.part, h.id)
              FROM (SELECT r.* FROM (
                        SELECT i.id, i.autor, i.texto, i.tipo, i.message_at,
                               coalesce((SELECT o.reply_to_id + 0.5 FROM public.outbox AS o
                                          WHERE o.evolution_message_id = i.message_id AND o.kind = 'reply'),
                                        i.id) AS position,
                               0::bigint AS part
                          FROM public.interacoes AS i
                         WHERE i.conversation_id = _conv.id
                         ORDER BY i.id DESC
                         LIMIT p_history_limit) AS r
                    UNION ALL
                    SELECT o.id, 'julia', o.texto, 'texto', o.created_at, o.reply_to_id + 0.5, o.id
                      FROM public.outbox AS o
                     WHERE o.conversation_id = _conv.id AND o.kind = 'reply'
                       AND o.state IN ('queued', 'claimed', 'deferred')
                       AND o.reply_to_id IS NOT NULL) AS h), '[]'::jsonb));
END;
$$;

------------------------------------------------------------
-- Safety net
------------------------------------------------------------

-- Re-defer the reply of conversations whose doctor is still owed an answer
-- after p_older_than with no reply job waiting or running (jobs of workers
-- silent for p_older_than are rescued first) (its job failed
-- for a reason nobody recorded, or ran out of retries while Evolution or
-- Claude were down). A permanent failure recorded for the conversation since
-- that message stops it: nobody loops on a request the model rejects.
-- Returns how many were re-deferred. Run by a periodic job.
CREATE OR REPLACE FUNCTION public.sweep_owed_replies(p_older_than interval DEFAULT '3 minutes')
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
    PERFORM public.rescue_stalled_jobs(p_older_than);
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
