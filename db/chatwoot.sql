-- Every conversation mirrored to Chatwoot. Nothing here waits on Chatwoot:
-- a stored message records what must be mirrored and defers the mirror job
-- on the 'humans' queue (db/jobs.sql), which the worker runs beside replies
-- and sends. Mirror jobs of one conversation run one after the other
-- (lock), and at most two run at once, so a hung Chatwoot never takes the
-- worker slots Julia's replies need.

------------------------------------------------------------
-- What to mirror
------------------------------------------------------------

-- Whether stored messages are mirrored: each worker that runs the mirror
-- jobs records at start-up whether it has Chatwoot configured
-- (record_chatwoot_mirror, app_settings 'chatwoot_mirror'). Until one has,
-- the mirror counts as on and its job decides.
CREATE OR REPLACE FUNCTION public.chatwoot_mirror_on()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce((SELECT s.value <> 'off' FROM public.app_settings AS s WHERE s.key = 'chatwoot_mirror'), true);
$$;

-- A worker's start: record whether it mirrors to Chatwoot; returns p_on.
CREATE OR REPLACE FUNCTION public.record_chatwoot_mirror(p_on boolean)
RETURNS boolean
LANGUAGE sql
SET search_path = ''
AS $$
    WITH recorded AS (
        INSERT INTO public.app_settings AS s (key, value, description)
        VALUES ('chatwoot_mirror', CASE WHEN p_on THEN 'on' ELSE 'off' END,
                'Set by each worker at start-up: is Chatwoot configured (off: nothing is mirrored, no mirror jobs)')
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()
         WHERE s.value IS DISTINCT FROM excluded.value)
    SELECT p_on;
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
            INSERT INTO public.chatwoot_messages (interacao_id, conversation_id, state, chatwoot_message_id, synced_at)
            VALUES (NEW.id, NEW.conversation_id, 'synced', _cw_message_id, clock_timestamp())
            ON CONFLICT DO NOTHING;
            RETURN NULL;
        END IF;
    END IF;
    IF NOT public.chatwoot_mirror_on() THEN
        -- No mirror: skipped at once (what skip_chatwoot_sync does), no job.
        INSERT INTO public.chatwoot_messages (interacao_id, conversation_id, state)
        VALUES (NEW.id, NEW.conversation_id, 'skipped')
        ON CONFLICT DO NOTHING;
        IF NEW.payload -> 'message' ? 'base64' THEN
            UPDATE public.interacoes AS i SET payload = i.payload #- '{message,base64}' WHERE i.id = NEW.id;
        END IF;
        RETURN NULL;
    END IF;
    INSERT INTO public.chatwoot_messages (interacao_id, conversation_id)
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
    _conv := public._conversation_or_404('chatwoot_sync_work', p_conversation_id);
    SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _conv.cliente_id;
    RETURN jsonb_build_object(
        'conversation_id', _conv.id,
        'chatwoot_conversation_id', (SELECT cc.chatwoot_conversation_id FROM public.chatwoot_conversations AS cc
                                      WHERE cc.conversation_id = _conv.id),
        'contact_id', (SELECT ct.contact_id FROM public.chatwoot_contacts AS ct WHERE ct.cliente_id = _cliente.id),
        'source_id', (SELECT ct.source_id FROM public.chatwoot_contacts AS ct WHERE ct.cliente_id = _cliente.id),
        'cliente', jsonb_build_object('id', _cliente.id, 'nome', _cliente.nome, 'telefone', _cliente.telefone,
                                      'lid', _cliente.lid),
        'messages', coalesce((
            SELECT jsonb_agg(jsonb_build_object('interacao_id', m.interacao_id, 'state', m.state, 'autor', i.autor,
                                                'tipo', i.tipo, 'texto', i.texto,
                                                'has_media', i.tipo IN ('image', 'video', 'audio', 'document',
                                                                        'sticker'))
                             ORDER BY m.interacao_id)
              FROM (SELECT m2.* FROM public.chatwoot_messages AS m2
                     WHERE m2.conversation_id = _conv.id AND m2.state IN ('pending', 'sending')
                     ORDER BY m2.interacao_id
                     LIMIT greatest(1, p_limit)) AS m
              JOIN public.interacoes AS i ON i.id = m.interacao_id), '[]'::jsonb),
        'events', coalesce((
            SELECT jsonb_agg(jsonb_build_object('id', e.id, 'kind', e.kind, 'payload', e.payload) ORDER BY e.id)
              FROM public.chatwoot_events AS e
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
        UPDATE public.chatwoot_messages SET state = 'skipped'
         WHERE conversation_id = p_conversation_id AND state IN ('pending', 'sending')
        RETURNING interacao_id),
    stripped AS (
        UPDATE public.interacoes AS i SET payload = i.payload #- '{message,base64}'
          FROM skipped AS k
         WHERE i.id = k.interacao_id AND i.payload -> 'message' ? 'base64'
        RETURNING i.id)
    SELECT count(*) INTO _m FROM skipped;
    UPDATE public.chatwoot_events SET state = 'skipped', done_at = clock_timestamp()
     WHERE conversation_id = p_conversation_id AND state = 'pending';
    GET DIAGNOSTICS _e = ROW_COUNT;
    RETURN _m + _e;
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
        RAISE EXCEPTION 'note_chatwoot: empty note for conversation %', p_conversation_id USING ERRCODE = 'JU400';
    END IF;
    INSERT INTO public.chatwoot_events (conversation_id, kind, payload)
    VALUES (p_conversation_id, 'note', jsonb_build_object('texto', p_texto))
    RETURNING id INTO _id;
    PERFORM public.defer_chatwoot_sync(p_conversation_id);
    RETURN _id;
END;
$$;

------------------------------------------------------------
-- Recording what was mirrored
------------------------------------------------------------

-- Remember a doctor's Chatwoot contact (and its inbox source id).
CREATE OR REPLACE FUNCTION public.record_chatwoot_contact(p_cliente_id bigint, p_contact_id bigint, p_source_id text)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.chatwoot_contacts (cliente_id, contact_id, source_id)
    VALUES (p_cliente_id, p_contact_id, p_source_id)
    ON CONFLICT (cliente_id) DO UPDATE
       SET contact_id = excluded.contact_id, source_id = coalesce(excluded.source_id, public.chatwoot_contacts.source_id),
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
    INSERT INTO public.chatwoot_conversations (conversation_id, chatwoot_conversation_id, contact_id)
    VALUES (p_conversation_id, p_chatwoot_conversation_id, p_contact_id)
    ON CONFLICT (conversation_id) DO UPDATE
       SET chatwoot_conversation_id = excluded.chatwoot_conversation_id, contact_id = excluded.contact_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'record_chatwoot_conversation: Chatwoot conversation % already mirrors another conversation (not %)',
        p_chatwoot_conversation_id, p_conversation_id USING ERRCODE = 'JU409';
END;
$$;

-- Chatwoot lost a conversation (deleted there): forget it, so the next run
-- opens a new one. True when the mapping was removed.
CREATE OR REPLACE FUNCTION public.forget_chatwoot_conversation(p_conversation_id bigint, p_chatwoot_conversation_id bigint)
RETURNS boolean
LANGUAGE sql
SET search_path = ''
AS $$
    DELETE FROM public.chatwoot_conversations
     WHERE conversation_id = p_conversation_id AND chatwoot_conversation_id = p_chatwoot_conversation_id
    RETURNING true;
$$;

-- The conversation a Chatwoot conversation mirrors, NULL if none.
CREATE OR REPLACE FUNCTION public.conversation_of_chatwoot(p_chatwoot_conversation_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT cc.conversation_id FROM public.chatwoot_conversations AS cc
     WHERE cc.chatwoot_conversation_id = p_chatwoot_conversation_id;
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
    SELECT m.state INTO _before FROM public.chatwoot_messages AS m
     WHERE m.interacao_id = p_interacao_id AND m.state IN ('pending', 'sending')
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE public.chatwoot_messages SET state = 'sending', attempts = attempts + 1
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
    UPDATE public.chatwoot_messages
       SET state = 'synced', chatwoot_message_id = p_chatwoot_message_id, last_error = NULL,
           synced_at = clock_timestamp()
     WHERE interacao_id = p_interacao_id AND state IN ('pending', 'sending');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'mark_chatwoot_message_synced: interacao % is not waiting to be mirrored', p_interacao_id
            USING ERRCODE = 'JU409';
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
    UPDATE public.chatwoot_events SET state = 'done', last_error = NULL, done_at = clock_timestamp()
     WHERE id = p_event_id AND state = 'pending';
$$;

-- Record a failed mirror attempt on the conversation's oldest waiting item.
CREATE OR REPLACE FUNCTION public.record_chatwoot_sync_error(p_conversation_id bigint, p_error text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    UPDATE public.chatwoot_messages AS m SET last_error = left(p_error, 1000)
     WHERE m.interacao_id = (SELECT min(m2.interacao_id) FROM public.chatwoot_messages AS m2
                              WHERE m2.conversation_id = p_conversation_id AND m2.state IN ('pending', 'sending'));
    IF NOT FOUND THEN
        UPDATE public.chatwoot_events AS e SET last_error = left(p_error, 1000), attempts = e.attempts + 1
         WHERE e.id = (SELECT min(e2.id) FROM public.chatwoot_events AS e2
                        WHERE e2.conversation_id = p_conversation_id AND e2.state = 'pending');
    END IF;
END;
$$;
