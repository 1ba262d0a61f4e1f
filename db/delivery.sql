-- After the gate: a send's outcome (sent, failed), Evolution's delivery
-- acks (messages.update), and the signs of trouble a send leaves on its
-- doctor (blocked) and on its number (a burst pauses it).

------------------------------------------------------------
-- Sent and failed
------------------------------------------------------------

-- Record a successful send: the row becomes 'sent' and the message joins
-- the conversation's history.
CREATE OR REPLACE FUNCTION public.mark_outbox_sent(p_outbox_id bigint, p_job_id bigint, p_evolution_id text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _row public.outbox;
BEGIN
    UPDATE public.outbox AS o
       SET state = 'sent', sent_at = clock_timestamp(), evolution_message_id = p_evolution_id,
           last_error = NULL, updated_at = now()
     WHERE o.id = p_outbox_id AND o.state = 'claimed' AND o.claimed_by_job = p_job_id
    RETURNING * INTO _row;
    IF NOT FOUND THEN
        -- Its echo (send.message / fromMe) may have recorded it first.
        IF EXISTS (SELECT 1 FROM public.outbox AS o WHERE o.id = p_outbox_id AND o.state = 'sent') THEN
            RETURN;
        END IF;
        RAISE EXCEPTION 'mark_outbox_sent: outbox row % is not claimed by job %', p_outbox_id, p_job_id
            USING ERRCODE = 'JU409';
    END IF;
    PERFORM public._record_sent(_row);
END;
$$;

-- What follows a send, wherever it was learned (the send job, or the
-- fromMe echo of a send whose answer was lost): the message joins the
-- doctor's conversation (proactive messages open or join it, so a doctor's
-- answer has them in context), touches and delivery acks are applied.
CREATE OR REPLACE FUNCTION public._record_sent(p_row public.outbox)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _row public.outbox := p_row;
BEGIN
    IF _row.conversation_id IS NULL AND _row.cliente_id IS NOT NULL AND _row.kind IN ('campaign', 'follow_up') THEN
        INSERT INTO public.conversations (cliente_id, reply_jid, number_id)
        VALUES (_row.cliente_id, _row.number, _row.number_id)
        ON CONFLICT (cliente_id) WHERE status = 'aberta' DO NOTHING;
        SELECT c.id INTO _row.conversation_id FROM public.conversations AS c
         WHERE c.cliente_id = _row.cliente_id AND c.status = 'aberta';
        UPDATE public.outbox SET conversation_id = _row.conversation_id WHERE id = _row.id;
    END IF;
    IF _row.conversation_id IS NOT NULL THEN
        INSERT INTO public.interacoes
            (conversation_id, cliente_id, message_id, direcao, autor, texto, remote_jid, message_at)
        VALUES (_row.conversation_id, _row.cliente_id, coalesce(_row.evolution_message_id, 'outbox:' || _row.id),
                'saida', CASE WHEN _row.kind = 'human' THEN 'humano' ELSE 'julia' END,
                _row.texto, _row.number, _row.sent_at)
        ON CONFLICT ON CONSTRAINT interacoes_message_id_key DO NOTHING;
        UPDATE public.conversations
           SET last_outbound_at = _row.sent_at, number_id = coalesce(number_id, _row.number_id), updated_at = now()
         WHERE id = _row.conversation_id;
    END IF;
    IF _row.cliente_id IS NOT NULL THEN
        UPDATE public.clientes SET ultimo_contato_em = greatest(ultimo_contato_em, _row.sent_at)
         WHERE id = _row.cliente_id;
    END IF;
    -- Delivery acks may have arrived before this row knew its Evolution id.
    PERFORM public._apply_delivery_events(_row.id);
END;
$$;

-- Record a failed attempt: back to 'queued' for a retry, or 'failed' for good.
CREATE OR REPLACE FUNCTION public.mark_outbox_failed(p_outbox_id bigint, p_job_id bigint, p_error text, p_final boolean)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    UPDATE public.outbox AS o
       SET state = CASE WHEN p_final THEN 'failed' ELSE 'queued' END,
           claimed_by_job = NULL, last_error = left(p_error, 1000), updated_at = now()
     WHERE o.id = p_outbox_id AND o.state = 'claimed' AND o.claimed_by_job = p_job_id;
$$;

-- Put a deferred outbox row back in the queue with its send job (the gate
-- decides again); false when it was no longer deferred or its job already waits.
CREATE OR REPLACE FUNCTION public._requeue_deferred_send(p_outbox_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    UPDATE public.outbox SET state = 'queued', updated_at = now() WHERE id = p_outbox_id AND state = 'deferred';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN public.defer_send(p_outbox_id) IS NOT NULL;
END;
$$;

------------------------------------------------------------
-- Delivery status (messages.update) and blocked contacts
------------------------------------------------------------

-- Rank of a delivery status: a later ack never goes back to an earlier one.
CREATE OR REPLACE FUNCTION public._delivery_rank(p_status text)
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT CASE upper(p_status)
               WHEN 'PENDING' THEN 1 WHEN 'SERVER_ACK' THEN 2 WHEN 'DELIVERY_ACK' THEN 3
               WHEN 'READ' THEN 4 WHEN 'PLAYED' THEN 5 WHEN 'ERROR' THEN 6 ELSE 0 END;
$$;

-- Apply the delivery events known for an outbox row's Evolution id.
CREATE OR REPLACE FUNCTION public._apply_delivery_events(p_outbox_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _row public.outbox;
    _best record;
BEGIN
    SELECT * INTO _row FROM public.outbox AS o WHERE o.id = p_outbox_id;
    IF _row.evolution_message_id IS NULL THEN
        RETURN;
    END IF;
    SELECT e.status, e.error_code, e.received_at INTO _best
      FROM public.delivery_events AS e
     WHERE e.evolution_message_id = _row.evolution_message_id
     ORDER BY public._delivery_rank(e.status) DESC, e.id DESC
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    UPDATE public.outbox AS o
       SET delivery_status = upper(_best.status),
           delivered_at = coalesce(o.delivered_at, CASE WHEN public._delivery_rank(_best.status) BETWEEN 3 AND 5
                                                        THEN _best.received_at END),
           read_at = coalesce(o.read_at, CASE WHEN public._delivery_rank(_best.status) IN (4, 5)
                                              THEN _best.received_at END),
           updated_at = now()
     WHERE o.id = p_outbox_id
       AND public._delivery_rank(_best.status) >= public._delivery_rank(o.delivery_status);
    IF _best.error_code = 463 AND _row.cliente_id IS NOT NULL THEN
        PERFORM public.mark_contact_blocked(_row.cliente_id, 'WhatsApp 463: contato não pode receber mensagens');
    END IF;
    -- A message WhatsApp would not deliver is a sign of trouble on its number
    -- (Evolution's messages.update says status ERROR, without a code): many of
    -- these on one number is how numbers get banned, so they are counted per number.
    IF upper(_best.status) = 'ERROR' AND _row.number_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM public.number_health_events AS h
                        WHERE h.outbox_id = _row.id AND h.kind IN ('error_463', 'delivery_error')) THEN
        PERFORM public.record_number_problem(
            _row.number_id, CASE WHEN _best.error_code = 463 THEN 'error_463' ELSE 'delivery_error' END, _row.id);
    END IF;
END;
$$;

-- Record a messages.update from Evolution (one call from the api). Returns
-- the outbox row it updated, or NULL when the send is not recorded yet (it
-- will be applied when it is) or the instance is unknown (stored for operators).
CREATE OR REPLACE FUNCTION public.record_delivery_status(
    p_evolution_message_id text, p_status text, p_error_code integer, p_remote_jid text, p_instance text DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _outbox_id bigint;
BEGIN
    IF coalesce(p_evolution_message_id, '') = '' OR public._delivery_rank(p_status) = 0 THEN
        RAISE EXCEPTION 'record_delivery_status: unknown status % for message %', p_status, p_evolution_message_id
            USING ERRCODE = 'JU400';
    END IF;
    IF NOT public.instance_known(p_instance) THEN
        PERFORM public.record_unknown_instance(p_instance, 'messages.update',
            jsonb_build_object('keyId', p_evolution_message_id, 'status', upper(p_status), 'error_code', p_error_code));
        RETURN NULL;
    END IF;
    INSERT INTO public.delivery_events (evolution_message_id, status, error_code, remote_jid, instance)
    VALUES (p_evolution_message_id, upper(p_status), p_error_code, p_remote_jid, p_instance);
    SELECT o.id INTO _outbox_id FROM public.outbox AS o WHERE o.evolution_message_id = p_evolution_message_id;
    IF _outbox_id IS NOT NULL THEN
        PERFORM public._apply_delivery_events(_outbox_id);
    END IF;
    RETURN _outbox_id;
END;
$$;

-- WhatsApp refuses messages to this doctor: no more proactive outreach.
CREATE OR REPLACE FUNCTION public.mark_contact_blocked(p_cliente_id bigint, p_motivo text)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    UPDATE public.clientes
       SET bloqueado_em = coalesce(bloqueado_em, clock_timestamp()), bloqueio_motivo = p_motivo, updated_at = now()
     WHERE id = p_cliente_id;
$$;

------------------------------------------------------------
-- Send problems
------------------------------------------------------------

-- A sign of trouble on a number (a delivery error, not on WhatsApp). A burst of them
-- (policy health_max_problems within health_window_minutes) pauses the
-- number and alerts operators. Returns true when this call paused it.
CREATE OR REPLACE FUNCTION public.record_number_problem(p_number_id bigint, p_kind text, p_outbox_id bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _p jsonb := public.current_send_policy();
    _n public.whatsapp_numbers;
    _recent integer;
BEGIN
    SELECT * INTO _n FROM public.whatsapp_numbers AS n WHERE n.id = p_number_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO public.number_health_events (number_id, kind, outbox_id) VALUES (p_number_id, p_kind, p_outbox_id);
    SELECT count(*) INTO _recent FROM public.number_health_events AS e
     WHERE e.number_id = p_number_id
       AND e.created_at > clock_timestamp() - make_interval(mins => (_p ->> 'health_window_minutes')::integer);
    IF _n.paused OR _recent < (_p ->> 'health_max_problems')::integer THEN
        RETURN false;
    END IF;
    PERFORM public.pause_number(_n.instance,
        format('pausa automática: %s problemas (erro de entrega / não está no WhatsApp / bloqueio) em %s min',
               _recent, _p ->> 'health_window_minutes'), 'sistema');
    PERFORM public.notify_humans('number_paused',
        jsonb_build_object('instance', _n.instance, 'problems', _recent,
                           'window_minutes', (_p ->> 'health_window_minutes')::integer),
        format('number_paused:%s:%s', _n.instance, extract(epoch FROM clock_timestamp())::bigint / 3600));
    RETURN true;
END;
$$;

-- A failed send that says something about its number (the worker classifies it).
CREATE OR REPLACE FUNCTION public.record_send_problem(p_outbox_id bigint, p_kind text)
RETURNS boolean
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT coalesce((SELECT public.record_number_problem(o.number_id, p_kind, o.id)
                       FROM public.outbox AS o WHERE o.id = p_outbox_id AND o.number_id IS NOT NULL), false);
$$;

-- A re-attempted send whose earlier attempt may have reached Evolution (its
-- worker died after the send, before mark_outbox_sent): p_found lists the
-- messages Evolution holds for the row's chat ([{message_id, remote_jid,
-- from_me, text, timestamp}], findMessages). One sent from the instance to this
-- address, with this row's text (a media row: its caption), since the row
-- was written and known as no other message, is this row's send: the row is
-- marked sent with its id and must not go again. Returns that id, or NULL
-- (nothing found: send it). The row must be claimed by p_job_id.
CREATE OR REPLACE FUNCTION public.reconcile_send(p_outbox_id bigint, p_job_id bigint, p_found jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _row public.outbox;
    _found record;
BEGIN
    SELECT * INTO _row FROM public.outbox AS o WHERE o.id = p_outbox_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'reconcile_send: outbox row % does not exist', p_outbox_id USING ERRCODE = 'JU404';
    ELSIF _row.state = 'sent' THEN
        RETURN _row.evolution_message_id;  -- its echo recorded it meanwhile
    ELSIF _row.state <> 'claimed' OR _row.claimed_by_job IS DISTINCT FROM p_job_id THEN
        RAISE EXCEPTION 'reconcile_send: outbox row % is not claimed by job %', p_outbox_id, p_job_id
            USING ERRCODE = 'JU409';
    END IF;
    SELECT f.message_id, f.timestamp INTO _found
      FROM pg_catalog.jsonb_to_recordset(coalesce(p_found, '[]'))
           AS f(message_id text, remote_jid text, from_me boolean, text text, timestamp bigint)
     WHERE f.from_me AND f.message_id IS NOT NULL
       AND (f.remote_jid = _row.number OR public.phone_key(f.remote_jid) = public.phone_key(_row.number))
       AND CASE WHEN _row.media IS NULL THEN f.text = _row.texto
                ELSE f.text IS NOT DISTINCT FROM (_row.media ->> 'caption') END
       -- messageTimestamp is whole seconds of Evolution's clock: a minute of slack.
       AND pg_catalog.to_timestamp(f.timestamp) >= _row.created_at - interval '1 minute'
       AND NOT EXISTS (SELECT 1 FROM public.outbox AS o WHERE o.evolution_message_id = f.message_id)
       AND NOT EXISTS (SELECT 1 FROM public.interacoes AS i WHERE i.message_id = f.message_id)
     ORDER BY f.timestamp, f.message_id
     LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE public.outbox AS o
       SET state = 'sent', sent_at = least(pg_catalog.to_timestamp(_found.timestamp), pg_catalog.clock_timestamp()),
           evolution_message_id = _found.message_id, last_error = NULL, updated_at = now()
     WHERE o.id = p_outbox_id
    RETURNING * INTO _row;
    PERFORM public._record_sent(_row);
    RETURN _found.message_id;
END;
$$;
