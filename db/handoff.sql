-- Humans in the loop: handoff to a human and hand-back to Julia (Chatwoot
-- gets a note, operators a notification), agents' Chatwoot messages relayed
-- to the doctor, and what an external system sees through a handoff link.

------------------------------------------------------------
-- Handoff and hand-back
------------------------------------------------------------

-- The private note a human reads on handoff: who, why, and the last words.
CREATE OR REPLACE FUNCTION public.handoff_note(p_conversation_id bigint, p_motivo text)
RETURNS text
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT concat_ws(E'\n',
        'Handoff da Julia: a conversa precisa de uma pessoa.',
        'Motivo: ' || coalesce(nullif(trim(p_motivo), ''), 'não informado'),
        'Médico: ' || concat_ws(' · ', coalesce(cl.nome, 'sem nome'), cl.telefone,
                                 (SELECT e.nome FROM public.especialidades AS e WHERE e.id = cl.especialidade_id),
                                 'CRM ' || cl.crm),
        'Últimas mensagens:',
        coalesce((SELECT string_agg('- ' || h.autor || ': ' || left(coalesce(h.texto, '[' || h.tipo || ']'), 200),
                                    E'\n' ORDER BY h.id)
                    FROM (SELECT i.id, i.autor, i.texto, i.tipo FROM public.interacoes AS i
                           WHERE i.conversation_id = c.id ORDER BY i.id DESC LIMIT 5) AS h), '(nenhuma)'))
      FROM public.conversations AS c
      JOIN public.clientes AS cl ON cl.id = c.cliente_id
     WHERE c.id = p_conversation_id;
$$;

-- Trigger: a conversation was handed to a human or back to Julia. Chatwoot
-- gets a note (and status), operators a notification.
CREATE OR REPLACE FUNCTION public.on_handoff_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cliente public.clientes;
    _kind text := CASE WHEN NEW.handoff_ativo THEN 'handoff' ELSE 'handback' END;
    _detail jsonb := CASE WHEN NEW.handoff_ativo THEN jsonb_build_object('motivo', NEW.handoff_motivo)
                          ELSE jsonb_build_object(
                              'via', coalesce(nullif(current_setting('julia.handback_via', true), ''), 'julia')) END;
BEGIN
    SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = NEW.cliente_id;
    INSERT INTO public.chatwoot_events (conversation_id, kind, payload)
    VALUES (NEW.id, _kind, _detail || CASE WHEN NEW.handoff_ativo
                                           THEN jsonb_build_object('nota', public.handoff_note(NEW.id, NEW.handoff_motivo))
                                           ELSE '{}'::jsonb END);
    PERFORM public.notify_humans(_kind, _detail || jsonb_build_object(
        'conversation_id', NEW.id, 'nome', _cliente.nome, 'telefone', coalesce(_cliente.telefone, _cliente.lid)));
    PERFORM public.defer_chatwoot_sync(NEW.id);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS conversations_handoff_humans ON public.conversations;
CREATE TRIGGER conversations_handoff_humans
    AFTER UPDATE OF handoff_ativo ON public.conversations
    FOR EACH ROW WHEN (OLD.handoff_ativo IS DISTINCT FROM NEW.handoff_ativo)
    EXECUTE FUNCTION public.on_handoff_change();

-- The Chatwoot conversation was resolved: hand the conversation back to Julia.
-- status: handed_back, not_handed_off, unknown_conversation.
CREATE OR REPLACE FUNCTION public.resolve_chatwoot_conversation(
    p_chatwoot_conversation_id bigint, OUT status text, OUT conversation_id bigint
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    SELECT cc.conversation_id INTO conversation_id FROM public.chatwoot_conversations AS cc
     WHERE cc.chatwoot_conversation_id = p_chatwoot_conversation_id;
    IF NOT FOUND THEN
        status := 'unknown_conversation'; RETURN;
    END IF;
    -- The hand-back trigger must not resolve the Chatwoot conversation again.
    PERFORM pg_catalog.set_config('julia.handback_via', 'chatwoot', true);
    status := CASE WHEN coalesce(public.devolver_para_julia(conversation_id), false)
                   THEN 'handed_back' ELSE 'not_handed_off' END;
    PERFORM pg_catalog.set_config('julia.handback_via', '', true);
END;
$$;

-- What an external system sees through a signed handoff link.
CREATE OR REPLACE FUNCTION public.handoff_context(p_conversation_id bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _conv public.conversations;
    _cliente public.clientes;
BEGIN
    _conv := public._conversation_or_404('handoff_context', p_conversation_id);
    SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _conv.cliente_id;
    RETURN jsonb_build_object(
        'conversation_id', _conv.id,
        'handoff_ativo', _conv.handoff_ativo,
        'motivo', _conv.handoff_motivo,
        'desde', _conv.handoff_em,
        'medico', jsonb_strip_nulls(jsonb_build_object('nome', _cliente.nome, 'telefone', _cliente.telefone,
                                                       'crm', _cliente.crm)),
        'mensagens', coalesce((
            SELECT jsonb_agg(jsonb_build_object('autor', h.autor, 'texto', h.texto, 'at', h.message_at) ORDER BY h.id)
              FROM (SELECT i.id, i.autor, i.texto, i.message_at FROM public.interacoes AS i
                     WHERE i.conversation_id = _conv.id ORDER BY i.id DESC LIMIT 30) AS h), '[]'::jsonb));
END;
$$;

------------------------------------------------------------
-- Agents writing from Chatwoot
------------------------------------------------------------

-- Our own mirrored message coming back from Chatwoot: known by its id, or
-- still being posted (the same text in the same conversation).
CREATE OR REPLACE FUNCTION public._chatwoot_echo(p_conversation_id bigint, p_chatwoot_message_id bigint, p_texto text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT EXISTS (SELECT 1 FROM public.chatwoot_messages AS m WHERE m.chatwoot_message_id = p_chatwoot_message_id)
        OR EXISTS (SELECT 1 FROM public.chatwoot_messages AS m JOIN public.interacoes AS i ON i.id = m.interacao_id
                    WHERE m.conversation_id = p_conversation_id AND m.state = 'sending' AND i.autor <> 'medico'
                      AND i.texto = p_texto);
$$;

-- Outbox row p_n of an agent's message: the text alone, or attachment p_n
-- of p_media (the first carries the text as its caption), its text a
-- "[image: file.jpg] caption" line for the history.
CREATE OR REPLACE FUNCTION public._agent_message_part(
    p_texto text, p_media jsonb, p_n integer, OUT texto text, OUT media jsonb
)
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT CASE WHEN x.item IS NULL THEN p_texto
                ELSE concat_ws(' ', '[' || (x.item ->> 'mediatype') || ': '
                                    || coalesce(x.item ->> 'file_name', 'anexo') || ']',
                               x.item ->> 'caption') END,
           x.item
      FROM (SELECT CASE WHEN y.a IS NOT NULL THEN jsonb_strip_nulls(jsonb_build_object(
                       'mediatype', y.a ->> 'mediatype', 'media', y.a ->> 'media', 'mimetype', y.a ->> 'mimetype',
                       'file_name', y.a ->> 'file_name', 'caption', CASE WHEN p_n = 1 THEN p_texto END)) END AS item
              FROM (SELECT p_media -> (p_n - 1) AS a) AS y) AS x;
$$;

-- An agent wrote to the doctor in Chatwoot: queue it once (per Chatwoot
-- message id) as outbox 'human' rows and defer their sends: the text, or
-- one row per attachment (p_media: [{mediatype, media, mimetype,
-- file_name}], the first carries the text as its caption). Julia keeps
-- quiet in the conversation meanwhile (takeover) unless it is handed off.
-- status: queued, duplicate, echo (our own mirrored message), unknown_conversation, empty.
CREATE OR REPLACE FUNCTION public.record_chatwoot_agent_message(
    p_chatwoot_conversation_id bigint, p_chatwoot_message_id bigint, p_texto text, p_media jsonb DEFAULT NULL,
    OUT status text, OUT outbox_id bigint, OUT conversation_id bigint
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _conv public.conversations;
    _texto text := nullif(trim(coalesce(p_texto, '')), '');
    _media jsonb := CASE WHEN jsonb_typeof(p_media) = 'array' AND jsonb_array_length(p_media) > 0 THEN p_media END;
    _part record;
    _n integer;
    _id bigint;
BEGIN
    IF p_chatwoot_message_id IS NULL THEN
        RAISE EXCEPTION 'record_chatwoot_agent_message: message id is required (conversation %)',
            p_chatwoot_conversation_id USING ERRCODE = 'JU400';
    END IF;
    SELECT c.* INTO _conv
      FROM public.chatwoot_conversations AS cc JOIN public.conversations AS c ON c.id = cc.conversation_id
     WHERE cc.chatwoot_conversation_id = p_chatwoot_conversation_id;
    IF NOT FOUND THEN
        status := 'unknown_conversation'; RETURN;
    END IF;
    conversation_id := _conv.id;
    SELECT a.outbox_id INTO outbox_id FROM public.chatwoot_agent_messages AS a
     WHERE a.chatwoot_message_id = p_chatwoot_message_id;
    IF FOUND THEN
        status := 'duplicate'; RETURN;
    END IF;
    IF public._chatwoot_echo(_conv.id, p_chatwoot_message_id, p_texto) THEN
        status := 'echo'; RETURN;
    END IF;
    IF _texto IS NULL AND _media IS NULL THEN
        status := 'empty'; RETURN;
    END IF;
    FOR _n IN 1 .. coalesce(jsonb_array_length(_media), 1) LOOP
        SELECT * INTO _part FROM public._agent_message_part(_texto, _media, _n);
        INSERT INTO public.outbox (idempotency_key, kind, conversation_id, cliente_id, number, texto, media)
        VALUES ('chatwoot:' || p_chatwoot_message_id || CASE WHEN _n > 1 THEN ':' || _n ELSE '' END, 'human',
                _conv.id, _conv.cliente_id, _conv.reply_jid, _part.texto, _part.media)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id INTO _id;
        IF _id IS NULL THEN
            -- A concurrent delivery of the same webhook won.
            SELECT o.id INTO outbox_id FROM public.outbox AS o
             WHERE o.idempotency_key = 'chatwoot:' || p_chatwoot_message_id;
            status := 'duplicate'; RETURN;
        END IF;
        IF _n = 1 THEN
            outbox_id := _id;
            INSERT INTO public.chatwoot_agent_messages
                (chatwoot_message_id, chatwoot_conversation_id, conversation_id, outbox_id)
            VALUES (p_chatwoot_message_id, p_chatwoot_conversation_id, _conv.id, _id);
        END IF;
        PERFORM public.defer_send(_id);
    END LOOP;
    UPDATE public.conversations AS c
       SET julia_pausada_ate = greatest(coalesce(c.julia_pausada_ate, clock_timestamp()),
                                        clock_timestamp() + make_interval(mins => public.takeover_minutes())),
           updated_at = now()
     WHERE c.id = _conv.id AND NOT c.handoff_ativo;
    status := 'queued';
END;
$$;
