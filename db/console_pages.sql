-- The ops console's conversations, campaigns and failures (the pages after
-- the state and queues of db/console.sql, whose audit helper they use).

------------------------------------------------------------
-- Conversations
------------------------------------------------------------

-- Who answers a conversation now: humano (handed off), assumida (an agent
-- wrote from Chatwoot and Julia keeps quiet until julia_pausada_ate) or julia.
CREATE OR REPLACE FUNCTION public.conversation_owner(p_handoff_ativo boolean, p_julia_pausada_ate timestamptz)
RETURNS text
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT CASE WHEN p_handoff_ativo THEN 'humano'
                WHEN p_julia_pausada_ate > clock_timestamp() THEN 'assumida'
                ELSE 'julia' END;
$$;

-- Conversations whose doctor's name, phone or LID matches p_query (all of
-- them when empty), most recently active first, with who owns each.
CREATE OR REPLACE FUNCTION public.console_conversations(p_query text DEFAULT NULL, p_limit integer DEFAULT 50)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH q AS (SELECT nullif(trim(coalesce(p_query, '')), '') AS text,
                      nullif(pg_catalog.regexp_replace(coalesce(p_query, ''), '[^0-9]', '', 'g'), '') AS digits)
    SELECT coalesce(jsonb_agg(r.item ORDER BY r.updated_at DESC, r.id DESC), '[]'::jsonb)
      FROM (SELECT c.id, c.updated_at, jsonb_build_object(
                       'conversation_id', c.id, 'status', c.status,
                       'owner', public.conversation_owner(c.handoff_ativo, c.julia_pausada_ate),
                       'handoff_motivo', c.handoff_motivo, 'handoff_em', c.handoff_em,
                       'julia_pausada_ate', c.julia_pausada_ate,
                       'medico', jsonb_build_object('id', cl.id, 'nome', cl.nome, 'telefone', cl.telefone,
                                                    'lid', cl.lid, 'opt_out', cl.opt_out),
                       'last_inbound_at', c.last_inbound_at, 'last_outbound_at', c.last_outbound_at,
                       'updated_at', c.updated_at,
                       'ultima_mensagem', (SELECT jsonb_build_object('autor', i.autor, 'texto', left(i.texto, 200),
                                                                     'at', i.message_at)
                                             FROM public.interacoes AS i WHERE i.conversation_id = c.id
                                            ORDER BY i.id DESC LIMIT 1)) AS item
              FROM public.conversations AS c
              JOIN public.clientes AS cl ON cl.id = c.cliente_id
              CROSS JOIN q
             WHERE q.text IS NULL
                OR cl.nome ILIKE '%' || replace(replace(replace(q.text, '\', '\\'), '%', '\%'), '_', '\_') || '%'
                OR (q.digits IS NOT NULL AND (cl.telefone LIKE '%' || q.digits || '%'
                                              OR cl.whatsapp_numero LIKE '%' || q.digits || '%'
                                              OR cl.lid LIKE q.digits || '%'))
             ORDER BY c.updated_at DESC, c.id DESC
             LIMIT greatest(1, least(coalesce(p_limit, 50), 200))) AS r;
$$;

-- One conversation for the console: the doctor, who owns it and the last
-- p_limit messages (oldest first). NULL when there is no such conversation.
CREATE OR REPLACE FUNCTION public.console_transcript(p_conversation_id bigint, p_limit integer DEFAULT 200)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT jsonb_build_object(
               'conversation_id', c.id, 'status', c.status,
               'owner', public.conversation_owner(c.handoff_ativo, c.julia_pausada_ate),
               'handoff_motivo', c.handoff_motivo, 'handoff_em', c.handoff_em,
               'julia_pausada_ate', c.julia_pausada_ate, 'created_at', c.created_at,
               'medico', jsonb_build_object('id', cl.id, 'nome', cl.nome, 'telefone', cl.telefone, 'lid', cl.lid,
                                            'crm', cl.crm, 'opt_out', cl.opt_out,
                                            'especialidade', (SELECT e.nome FROM public.especialidades AS e
                                                               WHERE e.id = cl.especialidade_id)),
               'mensagens', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                                 'id', m.id, 'autor', m.autor, 'direcao', m.direcao, 'tipo', m.tipo,
                                                 'texto', m.texto, 'at', m.message_at) ORDER BY m.id)
                                        FROM (SELECT i.* FROM public.interacoes AS i
                                               WHERE i.conversation_id = c.id
                                               ORDER BY i.id DESC
                                               LIMIT greatest(1, least(coalesce(p_limit, 200), 1000))) AS m),
                                     '[]'::jsonb),
               'pendentes', (SELECT count(*) FROM public.outbox AS o
                              WHERE o.conversation_id = c.id AND o.state IN ('queued', 'claimed', 'deferred')))
      FROM public.conversations AS c
      JOIN public.clientes AS cl ON cl.id = c.cliente_id
     WHERE c.id = p_conversation_id;
$$;

-- Give a conversation back to Julia from the console (devolver_para_julia;
-- the hand-back says "console" in Chatwoot and Slack). JU404 for an unknown
-- conversation, JU409 when no human has it.
CREATE OR REPLACE FUNCTION public.console_hand_back(p_operator text, p_conversation_id bigint, p_motivo text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _was text;
BEGIN
    SELECT public.conversation_owner(c.handoff_ativo, c.julia_pausada_ate) INTO _was
      FROM public.conversations AS c WHERE c.id = p_conversation_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'conversation % not found', p_conversation_id USING ERRCODE = 'JU404';
    END IF;
    PERFORM pg_catalog.set_config('julia.handback_via', 'console', true);
    IF NOT coalesce(public.devolver_para_julia(p_conversation_id), false) THEN
        RAISE EXCEPTION 'conversation % is already with Julia', p_conversation_id USING ERRCODE = 'JU409';
    END IF;
    PERFORM pg_catalog.set_config('julia.handback_via', '', true);
    RETURN public._audit_console_action(p_operator, 'conversation_handed_back', 'conversation:' || p_conversation_id,
                                        p_motivo, jsonb_build_object('was', _was));
END;
$$;

------------------------------------------------------------
-- Campaigns
------------------------------------------------------------

-- Cancel a campaign for good: nothing more goes; its rows still waiting
-- (queued or deferred) are settled as failed with refusal
-- 'campaign_cancelled' (a row already claimed finishes its send). Returns
-- how many rows were settled. JU404 unknown, JU409 finished or cancelled.
CREATE OR REPLACE FUNCTION public.cancel_campaign(p_campanha_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _status text;
    _n integer;
BEGIN
    SELECT k.status INTO _status FROM public.campanhas AS k WHERE k.id = p_campanha_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'campaign % not found', p_campanha_id USING ERRCODE = 'JU404';
    ELSIF _status IN ('concluida', 'cancelada') THEN
        RAISE EXCEPTION 'campaign % is already %', p_campanha_id, _status USING ERRCODE = 'JU409';
    END IF;
    UPDATE public.campanhas SET status = 'cancelada', updated_at = now() WHERE id = p_campanha_id;
    UPDATE public.outbox
       SET state = 'failed', refusal = 'campaign_cancelled', last_error = 'campanha cancelada', updated_at = now()
     WHERE campanha_id = p_campanha_id AND state IN ('queued', 'deferred');
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

-- Every campaign, newest first: its metrics (campaign_metrics), audience
-- filter and template, and why the rows not sent were held back (refusal).
CREATE OR REPLACE FUNCTION public.console_campaigns(p_limit integer DEFAULT 50)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(to_jsonb(m) || jsonb_build_object(
               'filtro', k.filtro, 'template', k.template, 'inicio', k.inicio, 'fim', k.fim,
               'created_at', k.created_at, 'updated_at', k.updated_at,
               'recusas', coalesce((SELECT jsonb_object_agg(r.refusal, r.n)
                                      FROM (SELECT o.refusal, count(*) AS n FROM public.outbox AS o
                                             WHERE o.campanha_id = k.id AND o.refusal IS NOT NULL
                                               AND o.state <> 'sent'
                                             GROUP BY o.refusal) AS r), '{}'::jsonb))
             ORDER BY k.id DESC), '[]'::jsonb)
      FROM (SELECT * FROM public.campanhas AS x ORDER BY x.id DESC
             LIMIT greatest(1, least(coalesce(p_limit, 50), 200))) AS k
      JOIN public.campaign_metrics AS m ON m.campanha_id = k.id;
$$;

-- Pause a campaign from the console (pause_campaign), audited.
CREATE OR REPLACE FUNCTION public.console_pause_campaign(p_operator text, p_campanha_id bigint, p_motivo text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.campanhas AS k WHERE k.id = p_campanha_id) THEN
        RAISE EXCEPTION 'campaign % not found', p_campanha_id USING ERRCODE = 'JU404';
    END IF;
    BEGIN
        PERFORM public.pause_campaign(p_campanha_id);
    EXCEPTION WHEN raise_exception THEN
        RAISE EXCEPTION 'campaign % is not active', p_campanha_id USING ERRCODE = 'JU409';
    END;
    RETURN public._audit_console_action(p_operator, 'campaign_paused', 'campaign:' || p_campanha_id, p_motivo);
END;
$$;

-- Cancel a campaign from the console (cancel_campaign), audited.
CREATE OR REPLACE FUNCTION public.console_cancel_campaign(p_operator text, p_campanha_id bigint, p_motivo text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer := public.cancel_campaign(p_campanha_id);
BEGIN
    PERFORM public._audit_console_action(p_operator, 'campaign_cancelled', 'campaign:' || p_campanha_id, p_motivo,
                                         jsonb_build_object('settled_rows', _n));
    RETURN _n;
END;
$$;

------------------------------------------------------------
-- Failures
------------------------------------------------------------

-- The newest failures: reply/send jobs that failed for good (job_failures)
-- and poison inbound messages archived from pgmq (inbound_failures).
CREATE OR REPLACE FUNCTION public.console_failures(p_limit integer DEFAULT 50)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT jsonb_build_object(
        'jobs', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                     'id', f.id, 'task', f.task_name, 'job_id', f.job_id,
                                     'job_status', (SELECT j.status::text FROM public.procrastinate_jobs AS j
                                                     WHERE j.id = f.job_id),
                                     'conversation_id', f.conversation_id, 'outbox_id', f.outbox_id,
                                     'classification', f.classification, 'error', left(f.error, 500),
                                     'at', f.created_at) ORDER BY f.id DESC)
                            FROM (SELECT * FROM public.job_failures AS x ORDER BY x.id DESC
                                   LIMIT greatest(1, least(coalesce(p_limit, 50), 500))) AS f), '[]'::jsonb),
        'inbound', coalesce((SELECT jsonb_agg(jsonb_build_object(
                                        'msg_id', p.msg_id, 'read_ct', p.read_ct, 'error', left(p.error, 500),
                                        'message', left(p.message::text, 300), 'at', p.created_at)
                                    ORDER BY p.created_at DESC, p.msg_id DESC)
                               FROM (SELECT * FROM public.inbound_failures AS x ORDER BY x.created_at DESC, x.msg_id DESC
                                      LIMIT greatest(1, least(coalesce(p_limit, 50), 500))) AS p), '[]'::jsonb));
$$;
