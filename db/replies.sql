-- What a reply job needs to know, decided in SQL: is there a doctor message
-- to answer, may Julia speak in this conversation now, and the context
-- (doctor profile, rules, active prompt, recent history) in one call; then
-- the reply's parts go to the outbox, each sent through the gate
-- (db/sendgate.sql).

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
    _conv := public._conversation_or_404('reply_context', p_conversation_id);
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
-- Writing the reply
------------------------------------------------------------

-- Write the parts of a reply to the outbox and defer their send jobs, once:
-- a retried reply job finds its rows by idempotency key and adds nothing.
CREATE OR REPLACE FUNCTION public.enqueue_reply(p_conversation_id bigint, p_reply_to_id bigint, p_parts text[])
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _conv public.conversations;
    _i integer;
    _id bigint;
BEGIN
    _conv := public._conversation_or_404('enqueue_reply', p_conversation_id);
    IF coalesce(array_length(p_parts, 1), 0) = 0 THEN
        RAISE EXCEPTION 'enqueue_reply: no text to send in conversation %', p_conversation_id USING ERRCODE = 'JU400';
    END IF;
    -- A human answered (or took over the phone) while the reply was being
    -- written: the reply is dropped. Julia's own handoff still lets her
    -- goodbye through (that sets handoff_ativo, not a takeover).
    IF _conv.julia_pausada_ate > clock_timestamp()
       OR EXISTS (SELECT 1 FROM public.interacoes AS i
                   WHERE i.conversation_id = p_conversation_id AND i.autor = 'humano' AND i.id > p_reply_to_id) THEN
        RETURN;
    END IF;
    FOR _i IN 1 .. array_length(p_parts, 1) LOOP
        INSERT INTO public.outbox (idempotency_key, kind, conversation_id, cliente_id, number, texto, reply_to_id)
        VALUES (format('reply:%s:%s', p_reply_to_id, _i), 'reply', _conv.id, _conv.cliente_id,
                _conv.reply_jid, p_parts[_i], p_reply_to_id)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id INTO _id;
        IF _id IS NOT NULL THEN
            PERFORM public.defer_send(_id);
            RETURN NEXT _id;
        END IF;
    END LOOP;
END;
$$;
