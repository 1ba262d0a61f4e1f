-- Inbound path: the webhook puts a parsed message on pgmq 'inbound'; the
-- worker calls process_inbound() for each message, which stores it, finds
-- the doctor and conversation, defers one reply job and archives the
-- queue message, all in one transaction (process_inbound_batch: a read's
-- messages in one call).

------------------------------------------------------------
-- Enqueue (api)
------------------------------------------------------------

-- Put one parsed webhook message on the inbound queue; returns its msg_id.
CREATE OR REPLACE FUNCTION public.enqueue_inbound(p_message jsonb)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT pgmq.send('inbound', p_message);
$$;

-- Put several parsed webhook messages (a JSON array of them) on the inbound
-- queue in one statement — one commit for all, the api's group commit;
-- returns their msg_ids in the order of the array.
CREATE OR REPLACE FUNCTION public.enqueue_inbound_batch(p_messages jsonb)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _messages jsonb[];
    _msg_ids bigint[];
BEGIN
    IF pg_catalog.jsonb_typeof(p_messages) IS DISTINCT FROM 'array' OR pg_catalog.jsonb_array_length(p_messages) = 0 THEN
        RAISE EXCEPTION 'enqueue_inbound_batch: messages must be a non-empty JSON array (got %)',
            coalesce(pg_catalog.jsonb_typeof(p_messages), 'NULL') USING ERRCODE = 'JU400';
    END IF;
    SELECT pg_catalog.array_agg(m.value ORDER BY m.ordinality) INTO _messages
      FROM pg_catalog.jsonb_array_elements(p_messages) WITH ORDINALITY AS m;
    -- One INSERT draws the ids from the queue's sequence row by row, in the array's order.
    SELECT pg_catalog.array_agg(q.id ORDER BY q.id) INTO _msg_ids
      FROM pgmq.send_batch('inbound', _messages) AS q(id);
    RETURN _msg_ids;
END;
$$;

------------------------------------------------------------
-- Processing (worker)
------------------------------------------------------------

-- A fromMe message that echoes something Julia (or an alert, or an agent
-- through the outbox) sent is not a human typing on the phone. When the
-- send's own answer was lost (a timeout), the echo proves it went: it is
-- recorded as sent so a retry does not send it again. absorbed: it was an
-- echo, or another tool's API send on the instance (nothing to store).
CREATE OR REPLACE FUNCTION public._absorb_echo(p_body jsonb, OUT absorbed boolean, OUT conversation_id bigint)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _m jsonb := p_body -> 'message';
    _message_id text := _m ->> 'message_id';
    _echo public.outbox;
BEGIN
    absorbed := false;
    SELECT * INTO _echo FROM public.outbox AS o
     WHERE (public.phone_key(o.number) = public.phone_key(_m ->> 'phone') OR o.number = _m ->> 'lid')
       AND (o.evolution_message_id = _message_id
            OR (o.state IN ('claimed', 'queued', 'deferred') AND o.texto = _m ->> 'text'
                AND o.updated_at > clock_timestamp() - interval '1 hour'))
     ORDER BY o.id DESC
     LIMIT 1
     FOR UPDATE;
    IF FOUND THEN
        IF _echo.state <> 'sent' THEN
            UPDATE public.outbox
               SET state = 'sent', sent_at = clock_timestamp(), evolution_message_id = _message_id, updated_at = now()
             WHERE id = _echo.id
            RETURNING * INTO _echo;
            PERFORM public._record_sent(_echo);
        END IF;
        absorbed := true;
        conversation_id := _echo.conversation_id;
    ELSIF p_body ->> 'event' = 'send.message' THEN
        absorbed := true;
    END IF;
END;
$$;

-- Store one message in the doctor's open conversation (opened when she has
-- none); returns the conversation and the new interacao (NULL when the
-- message id is already stored).
CREATE OR REPLACE FUNCTION public._store_inbound(
    p_body jsonb, p_cliente_id bigint, p_number_id bigint, p_at timestamptz,
    OUT conversation_id bigint, OUT interacao_id bigint
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _m jsonb := p_body -> 'message';
    _from_me boolean := coalesce((_m ->> 'from_me')::boolean, false);
    _conversation_id bigint;
    _interacao_id bigint;
BEGIN
    INSERT INTO public.conversations (cliente_id, reply_jid, number_id)
    VALUES (p_cliente_id, coalesce(_m ->> 'phone', _m ->> 'lid'), p_number_id)
    ON CONFLICT (cliente_id) WHERE status = 'aberta' DO NOTHING;
    SELECT c.id INTO _conversation_id
      FROM public.conversations AS c
     WHERE c.cliente_id = p_cliente_id AND c.status = 'aberta';

    INSERT INTO public.interacoes
        (conversation_id, cliente_id, message_id, direcao, autor, tipo, texto, remote_jid, payload, message_at)
    VALUES (
        _conversation_id, p_cliente_id, _m ->> 'message_id',
        CASE WHEN _from_me THEN 'saida' ELSE 'entrada' END,
        CASE WHEN _from_me THEN 'humano' ELSE 'medico' END,
        coalesce(_m ->> 'media_type', 'texto'),
        _m ->> 'text',
        _m ->> 'remote_jid',
        p_body -> 'raw',
        p_at)
    ON CONFLICT ON CONSTRAINT interacoes_message_id_key DO NOTHING
    RETURNING id INTO _interacao_id;
    conversation_id := _conversation_id;
    interacao_id := _interacao_id;
END;
$$;

-- What a newly stored message changes in its conversation. A human typing
-- on the company phone (fromMe): Julia steps back for a while. A doctor's
-- message: where the answer goes and from which number, and the reply job
-- is deferred (returned; NULL when one is already waiting).
CREATE OR REPLACE FUNCTION public._note_inbound(
    p_conversation_id bigint, p_cliente_id bigint, p_from_me boolean, p_phone text, p_lid text,
    p_number_id bigint, p_at timestamptz
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF p_from_me THEN
        UPDATE public.conversations AS c
           SET julia_pausada_ate = clock_timestamp() + make_interval(mins => public.takeover_minutes()),
               last_outbound_at = greatest(c.last_outbound_at, p_at), updated_at = now()
         WHERE c.id = p_conversation_id;
        RETURN NULL;
    END IF;
    UPDATE public.conversations AS c
       SET last_inbound_at = greatest(c.last_inbound_at, p_at),
           -- Answer to the form she writes from; then to the form WhatsApp
           -- confirmed, the stored phone, and for a LID-only doctor the LID.
           reply_jid = coalesce(public.jid_phone(p_phone),
                                (SELECT coalesce(cl.whatsapp_numero, cl.telefone)
                                   FROM public.clientes AS cl WHERE cl.id = p_cliente_id),
                                p_lid, c.reply_jid),
           -- The reply goes from the number she wrote to.
           number_id = coalesce(p_number_id, c.number_id),
           updated_at = now()
     WHERE c.id = p_conversation_id;
    IF p_number_id IS NOT NULL THEN
        -- The number she knows: her proactive messages come from it too.
        UPDATE public.clientes AS cl SET number_id = p_number_id
         WHERE cl.id = p_cliente_id AND cl.number_id IS DISTINCT FROM p_number_id;
    END IF;
    RETURN public.defer_reply(p_conversation_id);
END;
$$;

-- Store one inbound queue message and archive it. Returns the conversation,
-- the stored interacao (NULL for a duplicate) and the deferred reply job
-- (NULL when none was needed or one is already waiting).
CREATE OR REPLACE FUNCTION public.process_inbound(p_msg_id bigint, p_body jsonb)
RETURNS TABLE (conversation_id bigint, interacao_id bigint, duplicate boolean, reply_job_id bigint)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _m jsonb := p_body -> 'message';
    _message_id text := _m ->> 'message_id';
    _phone text := _m ->> 'phone';
    _lid text := _m ->> 'lid';
    _from_me boolean := coalesce((_m ->> 'from_me')::boolean, false);
    _instance text := _m ->> 'instance';
    _number_id bigint;
    _cliente_id bigint;
    _conversation_id bigint;
    _interacao_id bigint;
    _duplicate boolean := false;
    _job_id bigint;
    _at timestamptz;
    _echo record;
BEGIN
    IF _m IS NULL OR coalesce(_message_id, '') = '' THEN
        RAISE EXCEPTION 'process_inbound: queue message % has no message.message_id', p_msg_id USING ERRCODE = 'JU400';
    END IF;
    <<handled>>
    BEGIN
        -- A message to an instance Julia does not know is kept for operators and
        -- never answered (least of all from another number).
        IF NOT public.instance_known(_instance) THEN
            PERFORM public.record_unknown_instance(_instance, coalesce(p_body ->> 'event', 'messages.upsert'), p_body);
            EXIT handled;
        END IF;
        _number_id := public.resolve_number(_instance);

        -- A duplicate delivery is archived without touching anything else.
        SELECT i.conversation_id INTO _conversation_id FROM public.interacoes AS i WHERE i.message_id = _message_id;
        _duplicate := FOUND;
        EXIT handled WHEN _duplicate;

        IF _from_me THEN
            SELECT * INTO _echo FROM public._absorb_echo(p_body);
            _conversation_id := _echo.conversation_id;
            _duplicate := _echo.absorbed;
            EXIT handled WHEN _duplicate;
        END IF;

        -- One person whatever form the address takes (db/identity.sql).
        _cliente_id := public.resolve_cliente(_phone, _lid, CASE WHEN _from_me THEN NULL ELSE _m ->> 'push_name' END);
        IF NOT _from_me THEN
            -- The form she writes from is the one that exists: answer and send there.
            PERFORM public.learn_whatsapp_number(_cliente_id, _phone);
        END IF;
        _at := coalesce(to_timestamp((_m ->> 'timestamp')::bigint), clock_timestamp());
        SELECT * INTO _conversation_id, _interacao_id FROM public._store_inbound(p_body, _cliente_id, _number_id, _at);
        _duplicate := _interacao_id IS NULL;
        IF NOT _duplicate THEN
            _job_id := public._note_inbound(_conversation_id, _cliente_id, _from_me, _phone, _lid, _number_id, _at);
        END IF;
    END;
    PERFORM pgmq.archive('inbound', p_msg_id);
    RETURN QUERY SELECT _conversation_id, _interacao_id, _duplicate, _job_id;
END;
$$;

-- Process a batch of queue messages (what one read returned) in one call
-- and one transaction, in their order; one row per message. When one fails
-- the whole batch does, and the consumer processes them one at a time.
CREATE OR REPLACE FUNCTION public.process_inbound_batch(p_msg_ids bigint[], p_bodies jsonb[])
RETURNS TABLE (msg_id bigint, conversation_id bigint, interacao_id bigint, duplicate boolean, reply_job_id bigint)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _i integer;
BEGIN
    IF coalesce(array_length(p_msg_ids, 1), 0) <> coalesce(array_length(p_bodies, 1), 0) THEN
        RAISE EXCEPTION 'process_inbound_batch: % msg ids for % bodies',
            coalesce(array_length(p_msg_ids, 1), 0), coalesce(array_length(p_bodies, 1), 0) USING ERRCODE = 'JU400';
    END IF;
    FOR _i IN 1 .. coalesce(array_length(p_msg_ids, 1), 0) LOOP
        RETURN QUERY SELECT p_msg_ids[_i], r.conversation_id, r.interacao_id, r.duplicate, r.reply_job_id
                       FROM public.process_inbound(p_msg_ids[_i], p_bodies[_i]) AS r;
    END LOOP;
END;
$$;

-- Record a message that failed too often and archive it (poison).
CREATE OR REPLACE FUNCTION public.archive_poison_inbound(p_msg_id bigint, p_read_ct integer, p_error text, p_body jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    INSERT INTO public.inbound_failures (msg_id, read_ct, error, message)
    VALUES (p_msg_id, p_read_ct, left(p_error, 2000), coalesce(p_body, 'null'::jsonb))
    ON CONFLICT (msg_id) DO UPDATE SET read_ct = excluded.read_ct, error = excluded.error;
    PERFORM pgmq.archive('inbound', p_msg_id);
END;
$$;
