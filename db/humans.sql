-- Humans in the loop: every conversation mirrored to Chatwoot, handoff and
-- hand-back, agents' Chatwoot messages relayed to the doctor, Slack
-- notifications, rate-limited WhatsApp alerts to the manager, Slack replay
-- protection and the reads of the ops API.
--
-- Nothing here waits on Chatwoot or Slack: data changes record what must be
-- told and defer jobs on the 'humans' queue (db/jobs.sql defer_job), which
-- the worker runs beside replies and sends. Mirror jobs of one conversation
-- run one after the other (lock), and at most two run at once, so a hung
-- Chatwoot never takes the worker slots Julia's replies need.

------------------------------------------------------------
-- Chatwoot mirror: what to sync, and recording what was synced
------------------------------------------------------------

-- Defer the mirror job of a conversation: one waits at a time (queueing
-- lock); jobs of one conversation run in order, at most two run at once.
CREATE OR REPLACE FUNCTION public.defer_chatwoot_sync(p_conversation_id bigint, p_at timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT public.defer_job(
        'sync_chatwoot_conversation',
        jsonb_build_object('conversation_id', p_conversation_id),
        'humans',
        'chatwoot-sync:' || (p_conversation_id % 2),
        'chatwoot-sync:' || p_conversation_id,
        p_at);
$$;

-- Trigger: a stored message waits to be mirrored. A human's message that
-- came from Chatwoot is already there: it is recorded as synced.
CREATE OR REPLACE FUNCTION public.queue_chatwoot_message()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cw_message_id bigint;
    _from_chatwoot boolean := false;
BEGIN
    IF NEW.autor = 'humano' THEN
        -- Queued from a Chatwoot message (each of its attachments is a row of its own).
        SELECT a.chatwoot_message_id, true INTO _cw_message_id, _from_chatwoot
          FROM public.outbox AS o
          LEFT JOIN public.chatwoot_agent_messages AS a ON a.outbox_id = o.id
         WHERE o.conversation_id = NEW.conversation_id AND o.kind = 'human'
           AND o.idempotency_key LIKE 'chatwoot:%'
           AND (o.evolution_message_id = NEW.message_id OR NEW.message_id = 'outbox:' || o.id)
         LIMIT 1;
        IF _from_chatwoot THEN
            INSERT INTO public.chatwoot_mensagens (interacao_id, conversation_id, state, chatwoot_message_id, synced_at)
            VALUES (NEW.id, NEW.conversation_id, 'synced', _cw_message_id, clock_timestamp())
            ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO public.chatwoot_mensagens (interacao_id, conversation_id)
    VALUES (NEW.id, NEW.conversation_id)
    ON CONFLICT DO NOTHING;
    PERFORM public.defer_chatwoot_sync(NEW.conversation_id);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS interacoes_chatwoot_mirror ON public.interacoes;
CREATE TRIGGER interacoes_chatwoot_mirror
    AFTER INSERT ON public.interacoes
    FOR EACH ROW EXECUTE FUNCTION public.queue_chatwoot_message();

-- What a mirror job has to do for a conversation: the Chatwoot ids known so
-- far, the doctor, the next pending messages (oldest first) and the pending
-- handoff/hand-back events.
CREATE OR REPLACE FUNCTION public.chatwoot_sync_work(p_conversation_id bigint, p_limit integer DEFAULT 50)
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
        RAISE EXCEPTION 'chatwoot_sync_work: conversation % not found', p_conversation_id;
    END IF;
    SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _conv.cliente_id;
    RETURN jsonb_build_object(
        'conversation_id', _conv.id,
        'chatwoot_conversation_id', (SELECT cc.chatwoot_conversation_id FROM public.chatwoot_conversas AS cc
                                      WHERE cc.conversation_id = _conv.id),
        'contact_id', (SELECT ct.contact_id FROM public.chatwoot_contatos AS ct WHERE ct.cliente_id = _cliente.id),
        'source_id', (SELECT ct.source_id FROM public.chatwoot_contatos AS ct WHERE ct.cliente_id = _cliente.id),
        'cliente', jsonb_build_object('id', _cliente.id, 'nome', _cliente.nome, 'telefone', _cliente.telefone,
                                      'lid', _cliente.lid),
        'messages', coalesce((
            SELECT jsonb_agg(jsonb_build_object('interacao_id', m.interacao_id, 'state', m.state, 'autor', i.autor,
                                                'tipo', i.tipo, 'texto', i.texto,
                                                'has_media', i.tipo IN ('image', 'video', 'audio', 'document',
                                                                        'sticker'))
                             ORDER BY m.interacao_id)
              FROM (SELECT m2.* FROM public.chatwoot_mensagens AS m2
                     WHERE m2.conversation_id = _conv.id AND m2.state IN ('pending', 'sending')
                     ORDER BY m2.interacao_id
                     LIMIT greatest(1, p_limit)) AS m
              JOIN public.interacoes AS i ON i.id = m.interacao_id), '[]'::jsonb),
        'events', coalesce((
            SELECT jsonb_agg(jsonb_build_object('id', e.id, 'kind', e.kind, 'payload', e.payload) ORDER BY e.id)
              FROM public.chatwoot_eventos AS e
             WHERE e.conversation_id = _conv.id AND e.state = 'pending'), '[]'::jsonb));
END;
$$;

-- Chatwoot is not configured: what waits for this conversation is skipped
-- (not mirrored later in a flood). Returns how many rows were skipped.
CREATE OR REPLACE FUNCTION public.skip_chatwoot_sync(p_conversation_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _m integer;
    _e integer;
BEGIN
    -- Not mirrored: the history keeps the message, not megabytes of base64.
    WITH skipped AS (
        UPDATE public.chatwoot_mensagens SET state = 'skipped'
         WHERE conversation_id = p_conversation_id AND state IN ('pending', 'sending')
        RETURNING interacao_id),
    stripped AS (
        UPDATE public.interacoes AS i SET payload = i.payload #- '{message,base64}'
          FROM skipped AS k
         WHERE i.id = k.interacao_id AND i.payload -> 'message' ? 'base64'
        RETURNING i.id)
    SELECT count(*) INTO _m FROM skipped;
    UPDATE public.chatwoot_eventos SET state = 'skipped', done_at = clock_timestamp()
     WHERE conversation_id = p_conversation_id AND state = 'pending';
    GET DIAGNOSTICS _e = ROW_COUNT;
    RETURN _m + _e;
END;
$$;

-- Remember a doctor's Chatwoot contact (and its inbox source id).
CREATE OR REPLACE FUNCTION public.record_chatwoot_contact(p_cliente_id bigint, p_contact_id bigint, p_source_id text)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.chatwoot_contatos (cliente_id, contact_id, source_id)
    VALUES (p_cliente_id, p_contact_id, p_source_id)
    ON CONFLICT (cliente_id) DO UPDATE
       SET contact_id = excluded.contact_id, source_id = coalesce(excluded.source_id, public.chatwoot_contatos.source_id),
           updated_at = now();
$$;

-- Remember the Chatwoot conversation that mirrors a conversation.
CREATE OR REPLACE FUNCTION public.record_chatwoot_conversation(
    p_conversation_id bigint, p_chatwoot_conversation_id bigint, p_contact_id bigint
)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    INSERT INTO public.chatwoot_conversas (conversation_id, chatwoot_conversation_id, contact_id)
    VALUES (p_conversation_id, p_chatwoot_conversation_id, p_contact_id)
    ON CONFLICT (conversation_id) DO UPDATE
       SET chatwoot_conversation_id = excluded.chatwoot_conversation_id, contact_id = excluded.contact_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'record_chatwoot_conversation: Chatwoot conversation % already mirrors another conversation (not %)',
        p_chatwoot_conversation_id, p_conversation_id;
END;
$$;

-- Chatwoot lost a conversation (deleted there): forget it, so the next run
-- opens a new one. True when the mapping was removed.
CREATE OR REPLACE FUNCTION public.forget_chatwoot_conversation(p_conversation_id bigint, p_chatwoot_conversation_id bigint)
RETURNS boolean
LANGUAGE sql
SET search_path = ''
AS $$
    DELETE FROM public.chatwoot_conversas
     WHERE conversation_id = p_conversation_id AND chatwoot_conversation_id = p_chatwoot_conversation_id
    RETURNING true;
$$;

-- Mark a message as being posted; returns its state before ('pending', or
-- 'sending' when an earlier attempt may have posted it), NULL if done.
CREATE OR REPLACE FUNCTION public.begin_chatwoot_message(p_interacao_id bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _before text;
BEGIN
    SELECT m.state INTO _before FROM public.chatwoot_mensagens AS m
     WHERE m.interacao_id = p_interacao_id AND m.state IN ('pending', 'sending')
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE public.chatwoot_mensagens SET state = 'sending', attempts = attempts + 1
     WHERE interacao_id = p_interacao_id;
    RETURN _before;
END;
$$;

-- Record that a message is in Chatwoot under p_chatwoot_message_id.
CREATE OR REPLACE FUNCTION public.mark_chatwoot_message_synced(p_interacao_id bigint, p_chatwoot_message_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    UPDATE public.chatwoot_mensagens
       SET state = 'synced', chatwoot_message_id = p_chatwoot_message_id, last_error = NULL,
           synced_at = clock_timestamp()
     WHERE interacao_id = p_interacao_id AND state IN ('pending', 'sending');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mark_chatwoot_message_synced: interacao % is not waiting to be mirrored', p_interacao_id;
    END IF;
    -- The file is in Chatwoot now: the history keeps the message, not megabytes of base64.
    UPDATE public.interacoes AS i SET payload = i.payload #- '{message,base64}'
     WHERE i.id = p_interacao_id AND i.payload -> 'message' ? 'base64';
END;
$$;

-- Record that a handoff/hand-back event is shown in Chatwoot.
CREATE OR REPLACE FUNCTION public.mark_chatwoot_event_done(p_event_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    UPDATE public.chatwoot_eventos SET state = 'done', last_error = NULL, done_at = clock_timestamp()
     WHERE id = p_event_id AND state = 'pending';
$$;

-- Record a failed mirror attempt on the conversation's oldest waiting item.
CREATE OR REPLACE FUNCTION public.record_chatwoot_sync_error(p_conversation_id bigint, p_error text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    UPDATE public.chatwoot_mensagens AS m SET last_error = left(p_error, 1000)
     WHERE m.interacao_id = (SELECT min(m2.interacao_id) FROM public.chatwoot_mensagens AS m2
                              WHERE m2.conversation_id = p_conversation_id AND m2.state IN ('pending', 'sending'));
    IF NOT FOUND THEN
        UPDATE public.chatwoot_eventos AS e SET last_error = left(p_error, 1000), attempts = e.attempts + 1
         WHERE e.id = (SELECT min(e2.id) FROM public.chatwoot_eventos AS e2
                        WHERE e2.conversation_id = p_conversation_id AND e2.state = 'pending');
    END IF;
END;
$$;

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
    _via text := coalesce(nullif(current_setting('julia.handback_via', true), ''), 'julia');
BEGIN
    SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = NEW.cliente_id;
    IF NEW.handoff_ativo THEN
        INSERT INTO public.chatwoot_eventos (conversation_id, kind, payload)
        VALUES (NEW.id, 'handoff', jsonb_build_object('motivo', NEW.handoff_motivo,
                                                      'nota', public.handoff_note(NEW.id, NEW.handoff_motivo)));
        PERFORM public.notify_humans('handoff', jsonb_build_object(
            'conversation_id', NEW.id, 'motivo', NEW.handoff_motivo,
            'nome', _cliente.nome, 'telefone', coalesce(_cliente.telefone, _cliente.lid)));
    ELSE
        INSERT INTO public.chatwoot_eventos (conversation_id, kind, payload)
        VALUES (NEW.id, 'handback', jsonb_build_object('via', _via));
        PERFORM public.notify_humans('handback', jsonb_build_object(
            'conversation_id', NEW.id, 'via', _via,
            'nome', _cliente.nome, 'telefone', coalesce(_cliente.telefone, _cliente.lid)));
    END IF;
    PERFORM public.defer_chatwoot_sync(NEW.id);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS conversations_handoff_humans ON public.conversations;
CREATE TRIGGER conversations_handoff_humans
    AFTER UPDATE OF handoff_ativo ON public.conversations
    FOR EACH ROW WHEN (OLD.handoff_ativo IS DISTINCT FROM NEW.handoff_ativo)
    EXECUTE FUNCTION public.on_handoff_change();

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
    _item jsonb;
    _n integer;
    _id bigint;
BEGIN
    IF p_chatwoot_message_id IS NULL THEN
        RAISE EXCEPTION 'record_chatwoot_agent_message: message id is required (conversation %)',
            p_chatwoot_conversation_id;
    END IF;
    SELECT c.* INTO _conv
      FROM public.chatwoot_conversas AS cc JOIN public.conversations AS c ON c.id = cc.conversation_id
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
    -- Our own mirrored message coming back: known by id, or still being posted.
    IF EXISTS (SELECT 1 FROM public.chatwoot_mensagens AS m WHERE m.chatwoot_message_id = p_chatwoot_message_id)
       OR EXISTS (SELECT 1 FROM public.chatwoot_mensagens AS m JOIN public.interacoes AS i ON i.id = m.interacao_id
                   WHERE m.conversation_id = _conv.id AND m.state = 'sending' AND i.autor <> 'medico'
                     AND i.texto = p_texto) THEN
        status := 'echo'; RETURN;
    END IF;
    IF _texto IS NULL AND _media IS NULL THEN
        status := 'empty'; RETURN;
    END IF;
    FOR _n IN 1 .. coalesce(jsonb_array_length(_media), 1) LOOP
        _item := _media -> (_n - 1);
        IF _item IS NOT NULL THEN
            _item := jsonb_strip_nulls(jsonb_build_object(
                'mediatype', _item ->> 'mediatype', 'media', _item ->> 'media', 'mimetype', _item ->> 'mimetype',
                'file_name', _item ->> 'file_name', 'caption', CASE WHEN _n = 1 THEN _texto END));
        END IF;
        INSERT INTO public.outbox (idempotency_key, kind, conversation_id, cliente_id, number, texto, media)
        VALUES ('chatwoot:' || p_chatwoot_message_id || CASE WHEN _n > 1 THEN ':' || _n ELSE '' END, 'human',
                _conv.id, _conv.cliente_id, _conv.reply_jid,
                CASE WHEN _item IS NULL THEN _texto
                     ELSE concat_ws(' ', '[' || (_item ->> 'mediatype') || ': '
                                         || coalesce(_item ->> 'file_name', 'anexo') || ']',
                                    _item ->> 'caption') END,
                _item)
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

-- The doctor's media of a stored message, from Evolution's payload: base64
-- (webhook_base64 on) or a downloadable mediaUrl (S3/MinIO), with its type,
-- MIME type, file name and caption; NULL when the message carries none.
CREATE OR REPLACE FUNCTION public.chatwoot_message_media(p_interacao_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT CASE WHEN c.content IS NOT NULL THEN jsonb_strip_nulls(jsonb_build_object(
               'tipo', i.tipo,
               'mimetype', c.content ->> 'mimetype',
               'file_name', c.content ->> 'fileName',
               'caption', c.content ->> 'caption',
               'base64', i.payload -> 'message' ->> 'base64',
               'url', i.payload -> 'message' ->> 'mediaUrl')) END
      FROM public.interacoes AS i
      LEFT JOIN LATERAL (
          SELECT coalesce(m -> 'imageMessage', m -> 'videoMessage', m -> 'ptvMessage', m -> 'audioMessage',
                          m -> 'documentMessage', m -> 'documentWithCaptionMessage' -> 'message' -> 'documentMessage',
                          m -> 'stickerMessage') AS content
            FROM (SELECT i.payload -> 'message' AS m) AS x) AS c ON true
     WHERE i.id = p_interacao_id;
$$;

-- Tell the agents something in the Chatwoot conversation (a private note,
-- posted in order with the mirror). Returns the event id.
CREATE OR REPLACE FUNCTION public.note_chatwoot(p_conversation_id bigint, p_texto text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF coalesce(trim(p_texto), '') = '' THEN
        RAISE EXCEPTION 'note_chatwoot: empty note for conversation %', p_conversation_id;
    END IF;
    INSERT INTO public.chatwoot_eventos (conversation_id, kind, payload)
    VALUES (p_conversation_id, 'note', jsonb_build_object('texto', p_texto))
    RETURNING id INTO _id;
    PERFORM public.defer_chatwoot_sync(p_conversation_id);
    RETURN _id;
END;
$$;

-- The conversation a Chatwoot conversation mirrors, NULL if none.
CREATE OR REPLACE FUNCTION public.conversation_of_chatwoot(p_chatwoot_conversation_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT cc.conversation_id FROM public.chatwoot_conversas AS cc
     WHERE cc.chatwoot_conversation_id = p_chatwoot_conversation_id;
$$;

-- The Chatwoot conversation was resolved: hand the conversation back to Julia.
-- status: handed_back, not_handed_off, unknown_conversation.
CREATE OR REPLACE FUNCTION public.resolve_chatwoot_conversation(
    p_chatwoot_conversation_id bigint, OUT status text, OUT conversation_id bigint
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    SELECT cc.conversation_id INTO conversation_id FROM public.chatwoot_conversas AS cc
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
    SELECT * INTO _conv FROM public.conversations AS c WHERE c.id = p_conversation_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'handoff_context: conversation % not found', p_conversation_id;
    END IF;
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
-- Notifications (Slack) and their triggers
------------------------------------------------------------

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

-- Record a notification for operators and defer its job; returns its id,
-- or NULL when one with the same dedupe key exists. guard_failure and
-- job_failure and number_paused are critical: they also alert the manager's
-- WhatsApp (from another number: a paused one sends nothing).
CREATE OR REPLACE FUNCTION public.notify_humans(p_kind text, p_payload jsonb, p_dedupe_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF p_kind IS NULL OR p_kind !~ '^[a-z][a-z_]{0,62}$' THEN
        RAISE EXCEPTION 'notify_humans: invalid kind %', quote_literal(coalesce(p_kind, 'NULL'));
    END IF;
    INSERT INTO public.notificacoes (kind, payload, critical, dedupe_key)
    VALUES (p_kind, coalesce(p_payload, '{}'::jsonb), p_kind IN ('guard_failure', 'job_failure', 'number_paused'), p_dedupe_key)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id INTO _id;
    IF _id IS NOT NULL THEN
        PERFORM public.defer_notification(_id);
    END IF;
    RETURN _id;
END;
$$;

-- Take a pending notification for sending (counts the attempt), with what
-- its text needs: the Chatwoot conversation and the external_handoff flag.
CREATE OR REPLACE FUNCTION public.claim_notification(
    p_notification_id bigint,
    OUT known boolean, OUT state text, OUT kind text, OUT payload jsonb, OUT critical boolean,
    OUT attempts integer, OUT chatwoot_conversation_id bigint, OUT external_handoff boolean
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _row public.notificacoes;
BEGIN
    UPDATE public.notificacoes AS n SET attempts = n.attempts + 1
     WHERE n.id = p_notification_id AND n.state = 'pending'
    RETURNING * INTO _row;
    IF NOT FOUND THEN
        SELECT * INTO _row FROM public.notificacoes AS n WHERE n.id = p_notification_id;
    END IF;
    known := _row.id IS NOT NULL;
    state := _row.state; kind := _row.kind; payload := _row.payload; critical := _row.critical;
    attempts := _row.attempts;
    SELECT cc.chatwoot_conversation_id INTO chatwoot_conversation_id FROM public.chatwoot_conversas AS cc
     WHERE cc.conversation_id = (_row.payload ->> 'conversation_id')::bigint;
    external_handoff := public.feature_enabled('external_handoff');
END;
$$;

-- Record the outcome of a notification: sent, skipped (Slack not
-- configured), failed (for good) or pending (to retry).
CREATE OR REPLACE FUNCTION public.finish_notification(p_notification_id bigint, p_state text, p_error text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF p_state NOT IN ('sent', 'skipped', 'failed', 'pending') THEN
        RAISE EXCEPTION 'finish_notification: invalid state % for notification %', quote_literal(p_state),
            p_notification_id;
    END IF;
    UPDATE public.notificacoes
       SET state = p_state, last_error = left(p_error, 1000),
           sent_at = CASE WHEN p_state = 'sent' THEN clock_timestamp() END
     WHERE id = p_notification_id AND state = 'pending';
END;
$$;

-- Trigger: Julia was paused or resumed (not the first state written by bootstrap).
CREATE OR REPLACE FUNCTION public.on_julia_status_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.julia_status AS j WHERE j.id < NEW.id) THEN
        PERFORM public.notify_humans(
            CASE NEW.status WHEN 'pausado' THEN 'pause' ELSE 'resume' END,
            jsonb_build_object('motivo', NEW.motivo, 'via', NEW.alterado_via),
            'julia_status:' || NEW.id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS julia_status_notify ON public.julia_status;
CREATE TRIGGER julia_status_notify
    AFTER INSERT ON public.julia_status
    FOR EACH ROW EXECUTE FUNCTION public.on_julia_status_change();

-- Trigger: the send gate refused a message because the environment guard
-- failed (at most one notification an hour).
CREATE OR REPLACE FUNCTION public.on_guard_refusal()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM public.notify_humans(
        'guard_failure',
        jsonb_build_object('outbox_id', NEW.id, 'detail',
                           'environment markers disagree with this deploy: nothing is being sent'),
        'guard_failure:' || to_char(date_trunc('hour', clock_timestamp() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24'));
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS outbox_guard_refusal_notify ON public.outbox;
CREATE TRIGGER outbox_guard_refusal_notify
    AFTER UPDATE OF refusal ON public.outbox
    FOR EACH ROW WHEN (NEW.refusal = 'guard' AND OLD.refusal IS DISTINCT FROM 'guard')
    EXECUTE FUNCTION public.on_guard_refusal();

-- Trigger: a reply or send job failed for good (one notification per task an hour).
CREATE OR REPLACE FUNCTION public.on_job_failure()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM public.notify_humans(
        'job_failure',
        jsonb_build_object('task', NEW.task_name, 'conversation_id', NEW.conversation_id, 'outbox_id', NEW.outbox_id,
                           'classification', NEW.classification, 'error', left(NEW.error, 300)),
        'job_failure:' || NEW.task_name || ':'
            || to_char(date_trunc('hour', clock_timestamp() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24'));
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS job_failures_notify ON public.job_failures;
CREATE TRIGGER job_failures_notify
    AFTER INSERT ON public.job_failures
    FOR EACH ROW EXECUTE FUNCTION public.on_job_failure();

-- Trigger: a campaign finished (once per campaign).
CREATE OR REPLACE FUNCTION public.on_campaign_finished()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM public.notify_humans(
        'campaign_finished',
        coalesce((SELECT to_jsonb(m) FROM public.campaign_metrics AS m WHERE m.campanha_id = NEW.id),
                 jsonb_build_object('campanha_id', NEW.id, 'campanha', NEW.nome)),
        'campaign_finished:' || NEW.id);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS campanhas_finished_notify ON public.campanhas;
CREATE TRIGGER campanhas_finished_notify
    AFTER UPDATE OF status ON public.campanhas
    FOR EACH ROW WHEN (NEW.status = 'concluida' AND OLD.status IS DISTINCT FROM 'concluida')
    EXECUTE FUNCTION public.on_campaign_finished();

------------------------------------------------------------
-- Manager alerts (WhatsApp, rate-limited)
------------------------------------------------------------

-- How many WhatsApp alerts the manager gets per hour at most
-- (app_settings 'manager_alerts_per_hour', default 3).
CREATE OR REPLACE FUNCTION public.manager_alerts_per_hour()
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT public.setting_int('manager_alerts_per_hour', 3);
$$;

-- Queue a WhatsApp alert to the manager for a notification, once, if this
-- hour's budget allows (guarded upsert). Returns the outbox id, or NULL
-- when the hour's limit is reached.
CREATE OR REPLACE FUNCTION public.claim_manager_alert(p_notification_id bigint, p_number text, p_texto text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _number text := regexp_replace(coalesce(p_number, ''), '[^0-9]', '', 'g');
    _key text := 'alert:' || p_notification_id;
    _id bigint;
    _sent integer;
BEGIN
    IF _number !~ '^[0-9]{8,15}$' THEN
        RAISE EXCEPTION 'claim_manager_alert: % is not a WhatsApp number (notification %)',
            quote_literal(coalesce(p_number, '')), p_notification_id;
    END IF;
    SELECT o.id INTO _id FROM public.outbox AS o WHERE o.idempotency_key = _key;
    IF FOUND THEN
        RETURN _id;  -- a retried job: the alert is already queued
    END IF;
    INSERT INTO public.manager_alert_windows AS w (window_start, sent)
    VALUES (date_trunc('hour', clock_timestamp()), 1)
    ON CONFLICT (window_start) DO UPDATE SET sent = w.sent + 1
     WHERE w.sent < public.manager_alerts_per_hour()
    RETURNING w.sent INTO _sent;
    IF _sent IS NULL OR _sent > public.manager_alerts_per_hour() THEN
        RETURN NULL;
    END IF;
    INSERT INTO public.outbox (idempotency_key, kind, number, texto)
    VALUES (_key, 'alert', _number, p_texto)
    RETURNING id INTO _id;
    PERFORM public.defer_send(_id);
    RETURN _id;
END;
$$;

------------------------------------------------------------
-- Slack request replay protection
------------------------------------------------------------

-- Accept a signed Slack request once: false when its signature was already
-- seen (a replay). Signatures are kept 10 minutes, past Slack's 5-minute window.
CREATE OR REPLACE FUNCTION public.claim_slack_request(p_signature text, p_timestamp bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _fresh boolean;
BEGIN
    IF coalesce(p_signature, '') = '' THEN
        RAISE EXCEPTION 'claim_slack_request: signature is required';
    END IF;
    DELETE FROM public.slack_requests WHERE seen_at < clock_timestamp() - interval '10 minutes';
    INSERT INTO public.slack_requests (signature, request_ts) VALUES (p_signature, p_timestamp)
    ON CONFLICT (signature) DO NOTHING
    RETURNING true INTO _fresh;
    RETURN coalesce(_fresh, false);
END;
$$;

------------------------------------------------------------
-- Upkeep
------------------------------------------------------------

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
            SELECT m.conversation_id FROM public.chatwoot_mensagens AS m
             WHERE m.state IN ('pending', 'sending') AND m.created_at < clock_timestamp() - p_older_than
            UNION
            SELECT e.conversation_id FROM public.chatwoot_eventos AS e
             WHERE e.state = 'pending' AND e.created_at < clock_timestamp() - p_older_than) AS w
    LOOP
        IF public.defer_chatwoot_sync(_id) IS NOT NULL THEN _n := _n + 1; END IF;
    END LOOP;
    FOR _id IN
        SELECT n.id FROM public.notificacoes AS n
         WHERE n.state = 'pending' AND n.created_at < clock_timestamp() - p_older_than
         ORDER BY n.id
    LOOP
        IF public.defer_notification(_id) IS NOT NULL THEN _n := _n + 1; END IF;
    END LOOP;
    DELETE FROM public.slack_requests WHERE seen_at < clock_timestamp() - interval '10 minutes';
    RETURN _n;
END;
$$;

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
            'mensagens_pendentes', (SELECT count(*) FROM public.chatwoot_mensagens AS m
                                     WHERE m.state IN ('pending', 'sending')),
            'eventos_pendentes', (SELECT count(*) FROM public.chatwoot_eventos AS e WHERE e.state = 'pending')),
        'notificacoes_pendentes', (SELECT count(*) FROM public.notificacoes AS n WHERE n.state = 'pending'));
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
              LEFT JOIN public.chatwoot_conversas AS cc ON cc.conversation_id = c.id
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
      LEFT JOIN public.chatwoot_conversas AS cc ON cc.conversation_id = c.id
     WHERE c.handoff_ativo;
$$;
