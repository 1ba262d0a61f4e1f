-- The reads of the ops API and of operators' lookups: Julia's state, queue
-- depths, recent conversations, open handoffs and one doctor's record.

------------------------------------------------------------
-- Ops API reads
------------------------------------------------------------

-- Jobs, queues and waiting work, by queue and state.
CREATE OR REPLACE FUNCTION public.ops_queue_depths()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT jsonb_build_object(
        'inbound', (SELECT jsonb_build_object('depth', m.queue_length, 'oldest_age_seconds', m.oldest_msg_age_sec)
                      FROM pgmq.metrics('inbound') AS m),
        'jobs', coalesce((SELECT jsonb_object_agg(q.queue_name, q.states)
                            FROM (SELECT s.queue_name, jsonb_object_agg(s.status, s.n) AS states
                                    FROM (SELECT j.queue_name, j.status::text AS status, count(*) AS n
                                            FROM public.procrastinate_jobs AS j
                                           WHERE j.status IN ('todo', 'doing', 'failed')
                                           GROUP BY j.queue_name, j.status) AS s
                                   GROUP BY s.queue_name) AS q), '{}'::jsonb),
        'outbox', coalesce((SELECT jsonb_object_agg(s.state, s.n)
                              FROM (SELECT o.state, count(*) AS n FROM public.outbox AS o
                                     WHERE o.state IN ('queued', 'claimed', 'deferred')
                                        OR (o.state = 'failed' AND o.updated_at > clock_timestamp() - interval '1 day')
                                     GROUP BY o.state) AS s), '{}'::jsonb),
        'chatwoot', jsonb_build_object(
            'mensagens_pendentes', (SELECT count(*) FROM public.chatwoot_messages AS m
                                     WHERE m.state IN ('pending', 'sending')),
            'eventos_pendentes', (SELECT count(*) FROM public.chatwoot_events AS e WHERE e.state = 'pending')),
        'notificacoes_pendentes', (SELECT count(*) FROM public.notifications AS n WHERE n.state = 'pending'));
$$;

-- Julia's state and the numbers an operator looks at first.
CREATE OR REPLACE FUNCTION public.ops_status()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT jsonb_build_object(
        'julia', (SELECT to_jsonb(s) FROM public.julia_state() AS s),
        'conversas_abertas', (SELECT count(*) FROM public.conversations AS c WHERE c.status = 'aberta'),
        'handoffs_abertos', (SELECT count(*) FROM public.conversations AS c WHERE c.handoff_ativo),
        'falhas_24h', (SELECT count(*) FROM public.job_failures AS f
                        WHERE f.created_at > clock_timestamp() - interval '1 day'),
        'filas', public.ops_queue_depths());
$$;

-- The most recently active conversations (at most 200).
CREATE OR REPLACE FUNCTION public.ops_recent_conversations(p_limit integer DEFAULT 20)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(r.item ORDER BY r.updated_at DESC, r.id DESC), '[]'::jsonb)
      FROM (SELECT c.id, c.updated_at, jsonb_build_object(
                       'conversation_id', c.id, 'status', c.status, 'handoff_ativo', c.handoff_ativo,
                       'handoff_motivo', c.handoff_motivo,
                       'medico', jsonb_build_object('id', cl.id, 'nome', cl.nome, 'telefone', cl.telefone),
                       'last_inbound_at', c.last_inbound_at, 'last_outbound_at', c.last_outbound_at,
                       'updated_at', c.updated_at,
                       'ultima_mensagem', (SELECT jsonb_build_object('autor', i.autor, 'texto', left(i.texto, 300),
                                                                     'at', i.message_at)
                                             FROM public.interacoes AS i WHERE i.conversation_id = c.id
                                            ORDER BY i.id DESC LIMIT 1),
                       'chatwoot_conversation_id', cc.chatwoot_conversation_id) AS item
              FROM public.conversations AS c
              JOIN public.clientes AS cl ON cl.id = c.cliente_id
              LEFT JOIN public.chatwoot_conversations AS cc ON cc.conversation_id = c.id
             ORDER BY c.updated_at DESC, c.id DESC
             LIMIT greatest(1, least(coalesce(p_limit, 20), 200))) AS r;
$$;

-- Conversations a human owns now, longest waiting first.
CREATE OR REPLACE FUNCTION public.ops_open_handoffs()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'conversation_id', c.id, 'motivo', c.handoff_motivo, 'desde', c.handoff_em,
               'minutos', floor(extract(epoch FROM clock_timestamp() - c.handoff_em) / 60)::integer,
               'medico', jsonb_build_object('id', cl.id, 'nome', cl.nome, 'telefone', cl.telefone),
               'chatwoot_conversation_id', cc.chatwoot_conversation_id) ORDER BY c.handoff_em, c.id), '[]'::jsonb)
      FROM public.conversations AS c
      JOIN public.clientes AS cl ON cl.id = c.cliente_id
      LEFT JOIN public.chatwoot_conversations AS cc ON cc.conversation_id = c.id
     WHERE c.handoff_ativo;
$$;

------------------------------------------------------------
-- Ops lookup
------------------------------------------------------------

-- The doctor an address names, in any form (13/12 digits, a JID, a LID),
-- for an operator: her record, the addresses WhatsApp knows, whether she
-- may get proactive messages and her open conversation; NULL if unknown.
CREATE OR REPLACE FUNCTION public.ops_doctor(p_address text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _id bigint := public.find_cliente(p_address, CASE WHEN p_address LIKE '%@lid' THEN p_address END);
BEGIN
    IF _id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (
        SELECT jsonb_build_object(
            'id', c.id, 'nome', c.nome, 'telefone', c.telefone, 'lid', c.lid,
            'whatsapp_numero', c.whatsapp_numero, 'whatsapp_verificado_em', c.whatsapp_verificado_em,
            'sem_whatsapp', c.sem_whatsapp_em IS NOT NULL, 'opt_out', public.person_opted_out(c.id),
            'bloqueado', c.bloqueado_em IS NOT NULL,
            'outras_linhas', (SELECT coalesce(jsonb_agg(o ORDER BY o), '[]'::jsonb)
                                FROM public.same_person_ids(c.id) AS o WHERE o <> c.id),
            'conversa_aberta', (SELECT v.id FROM public.conversations AS v
                                 WHERE v.cliente_id = c.id AND v.status = 'aberta'))
          FROM public.clientes AS c WHERE c.id = _id);
END;
$$;
