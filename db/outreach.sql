-- Proactive outreach that cannot get the number banned. Every outbound
-- message passes ONE gate, claim_send_slot(), which decides atomically
-- whether it may go now and records the claim: pause, environment guard,
-- opt-out/blocked, business hours (America/Sao_Paulo), hourly and daily
-- caps for proactive messages, per-doctor cooldown, per-conversation
-- anti-loop cap for replies, and the WhatsApp number it goes from. The
-- policy and the numbers are data (db/numbers.sql). Refusals say why and
-- when to try again.

------------------------------------------------------------
-- The gate
------------------------------------------------------------

-- Take one slot of a fixed window; false when the window is full. A single
-- guarded upsert: concurrent claimers serialize on the row, none overshoots.
CREATE OR REPLACE FUNCTION public._take_window_slot(p_kind text, p_start timestamp, p_limit integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _claims integer;
BEGIN
    IF p_limit <= 0 THEN
        RETURN false;
    END IF;
    INSERT INTO public.send_counters AS c (window_kind, window_start, claims)
    VALUES (p_kind, p_start, 1)
    ON CONFLICT (window_kind, window_start) DO UPDATE SET claims = c.claims + 1
        WHERE c.claims < p_limit
    RETURNING c.claims INTO _claims;
    RETURN _claims IS NOT NULL;
END;
$$;

-- Decide whether outbox row p_outbox_id may be sent now by job p_job_id, and
-- claim it if so, choosing the WhatsApp number it goes from (instance; NULL
-- while the deployment has no number row: the worker's EVOLUTION_INSTANCE).
-- The policy is the database's (current_send_policy()); p_policy is ignored
-- and kept only so the previous release's calls still work (rollback).
-- p_now injects the clock (tests); NULL = clock_timestamp().
-- Reasons: claimed, not_found, already_sent, failed, claimed_elsewhere,
-- guard, paused, opted_out, blocked, doctor_replied, campaign_inactive,
-- reply_loop_cap, number_unavailable, no_number, outside_hours, cooldown,
-- hourly_limit, daily_limit. A deferral that knows when the message could
-- go (next_at) re-defers the send job for then; number_unavailable and
-- no_number wait for a number to come back (resume, connection open, or
-- the periodic release).
DROP FUNCTION IF EXISTS public.claim_send_slot(bigint, bigint, text, text, jsonb, timestamptz);
CREATE OR REPLACE FUNCTION public.claim_send_slot(
    p_outbox_id bigint, p_job_id bigint, p_app_env text, p_project_ref text,
    p_policy jsonb DEFAULT NULL, p_now timestamptz DEFAULT NULL,
    OUT claimed boolean, OUT reason text, OUT next_at timestamptz,
    OUT number text, OUT texto text, OUT attempts integer, OUT conversation_id bigint, OUT cliente_id bigint,
    OUT instance text, OUT media jsonb
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _p jsonb := public.current_send_policy();
    _now timestamptz := coalesce(p_now, clock_timestamp());
    _local timestamp := _now AT TIME ZONE 'America/Sao_Paulo';
    _row public.outbox;
    _cliente public.clientes;
    _proactive boolean;
    _reclaim boolean;
    _last_touch timestamptz;
    _oldest_reply timestamptz;
    _address text;
    _hour timestamp := date_trunc('hour', _now AT TIME ZONE 'America/Sao_Paulo');
    _day timestamp := date_trunc('day', _now AT TIME ZONE 'America/Sao_Paulo');
    _numbered boolean := EXISTS (SELECT 1 FROM public.whatsapp_numbers);
    _number_id bigint;
    _number public.whatsapp_numbers;
    _choice record;
BEGIN
    claimed := false;
    SELECT * INTO _row FROM public.outbox AS o WHERE o.id = p_outbox_id FOR UPDATE;
    IF NOT FOUND THEN
        reason := 'not_found'; RETURN;
    END IF;
    number := _row.number; texto := _row.texto; attempts := _row.attempts; media := _row.media;
    conversation_id := _row.conversation_id; cliente_id := _row.cliente_id;
    IF _row.state = 'sent' THEN
        reason := 'already_sent'; RETURN;
    ELSIF _row.state = 'failed' THEN
        reason := 'failed'; RETURN;
    ELSIF _row.state = 'claimed' AND _row.claimed_by_job IS DISTINCT FROM p_job_id THEN
        -- The same job may re-claim its own claim: a retry after a crash
        -- before the HTTP call, so the message has not gone out.
        reason := 'claimed_elsewhere'; RETURN;
    END IF;
    _proactive := _row.kind IN ('campaign', 'follow_up');
    -- A re-claim by the same job (retry after a crash) passes every check
    -- again, but its window slots were counted (and its number chosen) the first time.
    _reclaim := _row.state = 'claimed';
    -- One doctor's proactive claims run one at a time (cooldown below).
    IF _proactive THEN
        SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _row.cliente_id FOR UPDATE;
    ELSE
        SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _row.cliente_id;
    END IF;

    IF NOT coalesce(public.environment_guard_ok(p_app_env, p_project_ref), false) THEN
        reason := 'guard';
    ELSIF public.julia_is_paused() THEN
        reason := 'paused';
    ELSIF _proactive AND public.person_opted_out(_cliente.id) THEN
        -- Any address of this person opted out (db/identity.sql).
        UPDATE public.outbox SET state = 'failed', refusal = 'opted_out', updated_at = now() WHERE id = p_outbox_id;
        reason := 'opted_out'; RETURN;
    ELSIF _proactive AND _cliente.sem_whatsapp_em IS NOT NULL THEN
        -- Evolution said this number is not on WhatsApp: not tried again.
        UPDATE public.outbox SET state = 'failed', refusal = 'not_on_whatsapp', updated_at = now() WHERE id = p_outbox_id;
        reason := 'not_on_whatsapp'; RETURN;
    ELSIF _proactive AND _cliente.bloqueado_em IS NOT NULL THEN
        UPDATE public.outbox SET state = 'failed', refusal = 'blocked', updated_at = now() WHERE id = p_outbox_id;
        reason := 'blocked'; RETURN;
    ELSIF _row.kind = 'follow_up' AND EXISTS (
              SELECT 1 FROM public.conversations AS c
               WHERE c.id = _row.conversation_id AND c.last_inbound_at > _row.created_at) THEN
        -- The doctor wrote back since: the follow-up is no longer due.
        UPDATE public.outbox SET state = 'failed', refusal = 'doctor_replied', updated_at = now()
         WHERE id = p_outbox_id;
        reason := 'doctor_replied'; RETURN;
    ELSIF _proactive AND _row.campanha_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM public.campanhas AS k WHERE k.id = _row.campanha_id AND k.status = 'ativa'
                             AND (k.fim IS NULL OR k.fim > _now)) THEN
        -- A paused or finished campaign sends nothing more.
        UPDATE public.outbox SET state = 'queued', dispatched_at = NULL, refusal = 'campaign_inactive',
                                 updated_at = now() WHERE id = p_outbox_id;
        reason := 'campaign_inactive'; RETURN;
    ELSIF NOT _proactive AND _row.conversation_id IS NOT NULL THEN
        -- Anti-loop: a conversation gets at most reply_cap_per_hour answers per rolling hour.
        SELECT min(o.sent_at) INTO _oldest_reply
          FROM (SELECT o2.sent_at FROM public.outbox AS o2
                 WHERE o2.conversation_id = _row.conversation_id AND o2.kind IN ('reply', 'human')
                   AND o2.state = 'sent' AND o2.sent_at > _now - interval '1 hour'
                 ORDER BY o2.sent_at DESC
                 LIMIT (_p ->> 'reply_cap_per_hour')::integer) AS o
         HAVING count(*) >= (_p ->> 'reply_cap_per_hour')::integer;
        IF _oldest_reply IS NOT NULL THEN
            reason := 'reply_loop_cap'; next_at := _oldest_reply + interval '1 hour';
        END IF;
    END IF;

    IF reason IS NULL AND NOT _proactive AND _numbered THEN
        -- Replies go from the number the doctor wrote to; alerts from any available one.
        _number_id := CASE WHEN _reclaim THEN _row.number_id ELSE public._reply_number(coalesce(
                          (SELECT c.number_id FROM public.conversations AS c WHERE c.id = _row.conversation_id),
                          _cliente.number_id)) END;
        SELECT * INTO _number FROM public.whatsapp_numbers AS n WHERE n.id = _number_id;
        IF _number_id IS NULL THEN
            reason := 'no_number';
        ELSIF public.number_unavailable(_number) IS NOT NULL THEN
            reason := 'number_unavailable';
        END IF;
    END IF;

    IF reason IS NULL AND _proactive THEN
        _address := public.send_address(_row.cliente_id);
        IF public.next_business_opening(_p, _now) <> _now THEN
            reason := 'outside_hours'; next_at := public.next_business_opening(_p, _now);
        ELSIF _address IS NULL THEN
            -- Which form of her number exists is not known yet: the send job
            -- asks Evolution (onWhatsApp), records the answer with
            -- record_whatsapp_check() and claims again. No slot is taken.
            reason := 'verify_number'; number := coalesce(_cliente.telefone, _row.number);
            RETURN;
        ELSE
            -- Messages in flight count too: two claims a second apart are two touches.
            SELECT max(coalesce(o.sent_at, o.claimed_at)) INTO _last_touch FROM public.outbox AS o
             WHERE o.cliente_id = _row.cliente_id AND o.kind IN ('campaign', 'follow_up')
               AND o.state IN ('sent', 'claimed') AND o.id <> p_outbox_id;
            IF _last_touch > _now - make_interval(hours => (_p ->> 'cooldown_hours')::integer) THEN
                reason := 'cooldown';
                next_at := _last_touch + make_interval(hours => (_p ->> 'cooldown_hours')::integer);
            ELSIF _reclaim THEN
                _number_id := _row.number_id;  -- counted (and chosen) when first claimed
            ELSIF _numbered THEN
                SELECT * INTO _choice FROM public._claim_proactive_number(_cliente.number_id, _p, _now);
                _number_id := _choice.number_id; reason := _choice.reason; next_at := _choice.next_at;
            ELSIF NOT public._take_window_slot('day', _day, (_p ->> 'day_limit')::integer) THEN
                -- No number rows yet (a deployment not bootstrapped): one global counter, as before.
                reason := 'daily_limit';
                next_at := public.next_business_opening(_p, (_day + interval '1 day') AT TIME ZONE 'America/Sao_Paulo');
            ELSIF NOT public._take_window_slot('hour', _hour, (_p ->> 'hour_limit')::integer) THEN
                -- Give the day slot back: this message does not go now.
                UPDATE public.send_counters SET claims = claims - 1 WHERE window_kind = 'day' AND window_start = _day;
                reason := 'hourly_limit';
                next_at := public.next_business_opening(_p, (_hour + interval '1 hour') AT TIME ZONE 'America/Sao_Paulo');
            END IF;
        END IF;
    END IF;

    IF reason IS NOT NULL THEN
        UPDATE public.outbox SET state = 'deferred', not_before = next_at, refusal = reason,
                                 claimed_by_job = NULL, updated_at = now()
         WHERE id = p_outbox_id;
        IF next_at IS NOT NULL THEN
            PERFORM public.defer_send(p_outbox_id, next_at);
        END IF;
        RETURN;
    END IF;

    IF _proactive AND _number_id IS NOT NULL THEN
        -- She now knows this number: her next messages come from it.
        UPDATE public.clientes AS c SET number_id = _number_id WHERE c.id = _row.cliente_id
           AND c.number_id IS DISTINCT FROM _number_id;
    END IF;
    -- A proactive message goes to the form WhatsApp confirmed for her.
    UPDATE public.outbox AS o
       SET state = 'claimed', claimed_by_job = p_job_id, claimed_at = _now, refusal = NULL,
           attempts = o.attempts + 1, number = CASE WHEN _proactive THEN _address ELSE o.number END,
           number_id = _number_id, updated_at = now()
     WHERE o.id = p_outbox_id
    RETURNING o.attempts, o.number INTO attempts, number;
    SELECT n.instance INTO instance FROM public.whatsapp_numbers AS n WHERE n.id = _number_id;
    claimed := true; reason := 'claimed';
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
        RAISE EXCEPTION 'record_delivery_status: unknown status % for message %', p_status, p_evolution_message_id;
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
-- Campaigns
------------------------------------------------------------

-- Fill a campaign template for one doctor: {nome}, {primeiro_nome},
-- {especialidade}, {regiao}, {cidade}. Unknown {variables} RAISE.
CREATE OR REPLACE FUNCTION public.render_template(p_template text, p_cliente_id bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _c record;
    _out text := p_template;
    _unknown text;
BEGIN
    SELECT cl.nome, split_part(coalesce(cl.nome, ''), ' ', 1) AS primeiro_nome, e.nome AS especialidade,
           cl.regiao, cl.cidade
      INTO _c
      FROM public.clientes AS cl LEFT JOIN public.especialidades AS e ON e.id = cl.especialidade_id
     WHERE cl.id = p_cliente_id;
    _out := replace(_out, '{nome}', coalesce(_c.nome, 'doutor(a)'));
    _out := replace(_out, '{primeiro_nome}', coalesce(nullif(_c.primeiro_nome, ''), 'doutor(a)'));
    _out := replace(_out, '{especialidade}', coalesce(_c.especialidade, 'sua especialidade'));
    _out := replace(_out, '{regiao}', coalesce(_c.regiao, 'sua região'));
    _out := replace(_out, '{cidade}', coalesce(_c.cidade, 'sua cidade'));
    _unknown := substring(_out FROM '\{[a-z_]+\}');
    IF _unknown IS NOT NULL THEN
        RAISE EXCEPTION 'template variable % is unknown (known: {nome}, {primeiro_nome}, {especialidade}, {regiao}, {cidade})', _unknown;
    END IF;
    RETURN _out;
END;
$$;

-- Doctors a campaign's filter selects: with a phone, not opted out (on
-- any of their addresses), not blocked, not known to be off WhatsApp,
-- matching specialty/region/tags and untouched for N days; one row per
-- person (the oldest, until duplicates are merged).
CREATE OR REPLACE FUNCTION public.campaign_audience(p_campanha_id bigint)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _f jsonb;
BEGIN
    SELECT k.filtro INTO _f FROM public.campanhas AS k WHERE k.id = p_campanha_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'campaign_audience: campaign % not found', p_campanha_id;
    END IF;
    RETURN QUERY
    SELECT cl.id
      FROM public.clientes AS cl
     WHERE cl.telefone IS NOT NULL AND NOT cl.opt_out AND cl.bloqueado_em IS NULL AND cl.sem_whatsapp_em IS NULL
       AND NOT EXISTS (SELECT 1 FROM public.clientes AS o
                        WHERE o.id <> cl.id AND public.phone_key(o.telefone) = public.phone_key(cl.telefone)
                          AND (o.opt_out OR o.id < cl.id))
       AND (NOT _f ? 'especialidades' OR cl.especialidade_id IN (
                SELECT public.resolve_especialidade(x) FROM jsonb_array_elements_text(_f -> 'especialidades') AS x))
       AND (NOT _f ? 'regioes' OR public.normalize_text(cl.regiao) IN (
                SELECT public.normalize_text(x) FROM jsonb_array_elements_text(_f -> 'regioes') AS x))
       AND (NOT _f ? 'tags' OR cl.tags && ARRAY(SELECT jsonb_array_elements_text(_f -> 'tags')))
       AND (NOT _f ? 'sem_contato_ha_dias' OR cl.ultimo_contato_em IS NULL
            OR cl.ultimo_contato_em < clock_timestamp() - make_interval(days => (_f ->> 'sem_contato_ha_dias')::integer))
     ORDER BY cl.id;
END;
$$;

-- Create a campaign (status rascunho); the template is checked now.
CREATE OR REPLACE FUNCTION public.create_campaign(
    p_nome text, p_template text, p_filtro jsonb, p_inicio timestamptz, p_fim timestamptz
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
    _unknown text;
BEGIN
    _unknown := substring(replace(replace(replace(replace(replace(p_template, '{nome}', ''), '{primeiro_nome}', ''),
                                  '{especialidade}', ''), '{regiao}', ''), '{cidade}', '') FROM '\{[a-z_]+\}');
    IF _unknown IS NOT NULL THEN
        RAISE EXCEPTION 'template variable % is unknown (known: {nome}, {primeiro_nome}, {especialidade}, {regiao}, {cidade})', _unknown;
    END IF;
    INSERT INTO public.campanhas (nome, template, filtro, inicio, fim)
    VALUES (p_nome, p_template, coalesce(p_filtro, '{}'::jsonb), p_inicio, p_fim)
    RETURNING id INTO _id;
    RETURN _id;
END;
$$;

-- Start (or restart) a campaign: one outbox row per doctor of the audience,
-- idempotently. Sends trickle out through dispatch_outreach() and the gate.
CREATE OR REPLACE FUNCTION public.start_campaign(p_campanha_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _k public.campanhas;
    _n integer;
BEGIN
    SELECT * INTO _k FROM public.campanhas AS k WHERE k.id = p_campanha_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'start_campaign: campaign % not found', p_campanha_id;
    ELSIF _k.status IN ('concluida', 'cancelada') THEN
        RAISE EXCEPTION 'start_campaign: campaign % is %', p_campanha_id, _k.status;
    END IF;
    UPDATE public.campanhas SET status = 'ativa', updated_at = now() WHERE id = p_campanha_id;
    INSERT INTO public.outbox (idempotency_key, kind, campanha_id, cliente_id, number, texto)
    SELECT format('campaign:%s:%s', p_campanha_id, cl.id), 'campaign', p_campanha_id, cl.id,
           coalesce(cl.whatsapp_numero, cl.telefone),
           public.render_template(_k.template, cl.id)
      FROM public.campaign_audience(p_campanha_id) AS a (id)
      JOIN public.clientes AS cl ON cl.id = a.id
    ON CONFLICT (idempotency_key) DO NOTHING;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

-- Pause a campaign: its queued rows stay queued; in-flight send jobs find
-- the campaign inactive at the gate and step back.
CREATE OR REPLACE FUNCTION public.pause_campaign(p_campanha_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    UPDATE public.campanhas SET status = 'pausada', updated_at = now()
     WHERE id = p_campanha_id AND status IN ('ativa', 'rascunho');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pause_campaign: campaign % is not active', p_campanha_id;
    END IF;
END;
$$;

-- How many proactive messages may still go in the current hour and day,
-- over every available number (the policy is the database's; p_policy is
-- ignored, kept for the previous release's calls).
CREATE OR REPLACE FUNCTION public.proactive_capacity(p_policy jsonb, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (hour_left integer, day_left integer, in_hours boolean, next_opening timestamptz)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH t AS (SELECT coalesce(p_now, clock_timestamp()) AS now, public.current_send_policy() AS p),
         g AS (SELECT public.next_business_opening(t.p, t.now) AS opening, t.now FROM t),
         n AS (SELECT c.* FROM public.number_capacity(p_now) AS c WHERE c.unavailable IS NULL)
    SELECT greatest(0, (t.p ->> 'hour_limit')::integer - coalesce((
               SELECT c.claims FROM public.send_counters AS c
                WHERE c.window_kind = 'hour'
                  AND c.window_start = date_trunc('hour', t.now AT TIME ZONE 'America/Sao_Paulo')), 0)),
           greatest(0, (t.p ->> 'day_limit')::integer - coalesce((
               SELECT c.claims FROM public.send_counters AS c
                WHERE c.window_kind = 'day'
                  AND c.window_start = date_trunc('day', t.now AT TIME ZONE 'America/Sao_Paulo')), 0)),
           g.opening = t.now, g.opening
      FROM t, g
     WHERE NOT EXISTS (SELECT 1 FROM public.whatsapp_numbers)
    UNION ALL
    SELECT coalesce(sum(greatest(0, least(n.hour_limit - n.hour_sent, n.day_limit - n.day_sent)))
                        FILTER (WHERE n.in_hours), 0)::integer,
           coalesce(sum(greatest(0, n.day_limit - n.day_sent)), 0)::integer,
           g.opening = g.now AND coalesce(bool_or(n.in_hours), false),
           greatest(g.opening, coalesce(min(n.next_opening), g.opening))
      FROM g LEFT JOIN n ON true
     WHERE EXISTS (SELECT 1 FROM public.whatsapp_numbers)
     GROUP BY g.opening, g.now;
$$;

-- Defer send jobs for queued proactive rows, no more than the current
-- window can take (minus what is already dispatched and unclaimed), oldest
-- first. Returns the outbox ids dispatched. Run every minute. (p_policy is
-- ignored: the database's policy and numbers decide.)
CREATE OR REPLACE FUNCTION public.dispatch_outreach(p_policy jsonb, p_now timestamptz DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cap record;
    _in_flight integer;
    _room integer;
    _id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('julia.dispatch_outreach'));
    -- Capacity and in-flight rows from one snapshot: a claim committing in
    -- between would otherwise count neither as in flight nor in the counters.
    SELECT c.*, (SELECT count(*) FROM public.outbox AS o
                  WHERE o.kind IN ('campaign', 'follow_up') AND o.state IN ('queued', 'deferred')
                    AND o.dispatched_at IS NOT NULL
                    AND (o.not_before IS NULL OR o.not_before <= coalesce(p_now, clock_timestamp())))::integer AS in_flight
      INTO _cap
      FROM public.proactive_capacity(p_policy, p_now) AS c;
    IF NOT _cap.in_hours THEN
        RETURN;
    END IF;
    _in_flight := _cap.in_flight;
    _room := least(_cap.hour_left, _cap.day_left) - _in_flight;
    FOR _id IN
        SELECT o.id FROM public.outbox AS o
          LEFT JOIN public.campanhas AS k ON k.id = o.campanha_id
         WHERE o.kind IN ('campaign', 'follow_up') AND o.state = 'queued' AND o.dispatched_at IS NULL
           AND (o.campanha_id IS NULL OR (k.status = 'ativa' AND (k.inicio IS NULL OR k.inicio <= coalesce(p_now, clock_timestamp()))
                                          AND (k.fim IS NULL OR k.fim > coalesce(p_now, clock_timestamp()))))
         ORDER BY o.id
         LIMIT greatest(_room, 0)
         FOR UPDATE OF o SKIP LOCKED
    LOOP
        UPDATE public.outbox SET dispatched_at = clock_timestamp(), updated_at = now() WHERE id = _id;
        PERFORM public.defer_send(_id);
        RETURN NEXT _id;
    END LOOP;
    -- Campaigns whose every row is settled are done.
    UPDATE public.campanhas AS k SET status = 'concluida', updated_at = now()
     WHERE k.status = 'ativa'
       AND ((k.fim IS NOT NULL AND k.fim <= coalesce(p_now, clock_timestamp()))
            OR (EXISTS (SELECT 1 FROM public.outbox AS o WHERE o.campanha_id = k.id)
                AND NOT EXISTS (SELECT 1 FROM public.outbox AS o
                                 WHERE o.campanha_id = k.id AND o.state IN ('queued', 'claimed', 'deferred'))));
END;
$$;

-- What a campaign would do today: audience size, already queued/sent, how
-- many could go today given the limits, each number's capacity today and
-- how many sending days the audience needs (warm-up ramps and weekdays
-- counted). p_policy is ignored (the database's policy decides).
CREATE OR REPLACE FUNCTION public.preview_campaign(p_campanha_id bigint, p_policy jsonb, p_now timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _now timestamptz := coalesce(p_now, clock_timestamp());
    _p jsonb := public.current_send_policy();
    _audience integer;
    _pending integer;
    _cap record;
    _sample text;
    _k public.campanhas;
    _left integer;
    _days integer := 0;
    _day_capacity integer;
    _at timestamptz;
BEGIN
    SELECT * INTO _k FROM public.campanhas AS k WHERE k.id = p_campanha_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'preview_campaign: campaign % not found', p_campanha_id;
    END IF;
    SELECT count(*) INTO _audience FROM public.campaign_audience(p_campanha_id);
    SELECT count(*) INTO _pending FROM public.campaign_audience(p_campanha_id) AS a (id)
     WHERE NOT EXISTS (SELECT 1 FROM public.outbox AS o
                        WHERE o.campanha_id = p_campanha_id AND o.cliente_id = a.id AND o.state IN ('sent', 'failed'));
    SELECT * INTO _cap FROM public.proactive_capacity(NULL, _now);
    SELECT public.render_template(_k.template, a.id) INTO _sample FROM public.campaign_audience(p_campanha_id) AS a (id) LIMIT 1;
    -- Days needed: today's room, then each allowed weekday's caps (ramps grow), up to a year.
    _left := _pending - least(_pending, _cap.day_left);
    IF _pending > 0 THEN
        _days := 1;
    END IF;
    _at := _now;
    WHILE _left > 0 AND _days < 366 LOOP
        _at := _at + interval '1 day';
        CONTINUE WHEN NOT (_p -> 'weekdays') @> to_jsonb(extract(isodow FROM _at AT TIME ZONE 'America/Sao_Paulo')::integer);
        IF EXISTS (SELECT 1 FROM public.whatsapp_numbers) THEN
            SELECT coalesce(sum(public.number_day_limit(n, _p, _at)), 0) INTO _day_capacity
              FROM public.whatsapp_numbers AS n WHERE public.number_unavailable(n) IS NULL;
        ELSE
            _day_capacity := (_p ->> 'day_limit')::integer;
        END IF;
        EXIT WHEN _day_capacity <= 0;
        _left := _left - _day_capacity;
        _days := _days + 1;
    END LOOP;
    RETURN jsonb_build_object(
        'campanha', _k.nome, 'status', _k.status, 'audiencia', _audience, 'a_enviar', _pending,
        'hoje_possiveis', least(_pending, _cap.day_left),
        'limite_hora_restante', _cap.hour_left, 'limite_dia_restante', _cap.day_left,
        'em_horario', _cap.in_hours, 'proxima_abertura', _cap.next_opening, 'exemplo', _sample,
        'dias_necessarios', CASE WHEN _left > 0 THEN NULL ELSE _days END,
        'numeros', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'instance', c.instance, 'disponivel', c.unavailable IS NULL, 'motivo', c.unavailable,
                        'hoje_limite', c.day_limit, 'hoje_enviadas', c.day_sent,
                        'hoje_restam', CASE WHEN c.unavailable IS NULL THEN greatest(c.day_limit - c.day_sent, 0) ELSE 0 END,
                        'dia_aquecimento', c.warmup_day) ORDER BY c.number_id), '[]'::jsonb)
                      FROM public.number_capacity(_now) AS c));
END;
$$;

-- A campaign's sends per number (julia campaign status).
CREATE OR REPLACE FUNCTION public.campaign_numbers(p_campanha_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'instance', coalesce(x.instance, '-'), 'enviadas', x.enviadas, 'pendentes', x.pendentes,
               'falhas', x.falhas) ORDER BY x.instance), '[]'::jsonb)
      FROM (SELECT n.instance,
                   count(*) FILTER (WHERE o.state = 'sent') AS enviadas,
                   count(*) FILTER (WHERE o.state IN ('queued', 'deferred', 'claimed')) AS pendentes,
                   count(*) FILTER (WHERE o.state = 'failed') AS falhas
              FROM public.outbox AS o
              LEFT JOIN public.whatsapp_numbers AS n ON n.id = o.number_id
             WHERE o.campanha_id = p_campanha_id
             GROUP BY n.instance) AS x;
$$;

------------------------------------------------------------
-- Follow-ups, touches, upkeep
------------------------------------------------------------

-- Doctors who showed interest (were offered shifts) and went silent for
-- p_after get ONE follow-up, queued as a proactive message (gated).
CREATE OR REPLACE FUNCTION public.queue_follow_ups(p_after interval, p_now timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _now timestamptz := coalesce(p_now, clock_timestamp());
    _n integer;
BEGIN
    WITH due AS (
        SELECT c.id, c.cliente_id, coalesce(cl.whatsapp_numero, cl.telefone) AS telefone, cl.nome
          FROM public.conversations AS c
          JOIN public.clientes AS cl ON cl.id = c.cliente_id
         WHERE c.interesse_em IS NOT NULL AND c.follow_up_em IS NULL
           AND NOT c.handoff_ativo AND NOT public.person_opted_out(cl.id) AND cl.bloqueado_em IS NULL
           AND cl.sem_whatsapp_em IS NULL AND cl.telefone IS NOT NULL
           AND c.last_outbound_at IS NOT NULL AND c.last_outbound_at < _now - p_after
           AND (c.last_inbound_at IS NULL OR c.last_inbound_at < c.last_outbound_at)
           AND NOT EXISTS (SELECT 1 FROM public.vagas AS v WHERE v.reservada_por = c.cliente_id
                                                          AND v.reservada_em > c.interesse_em)
         FOR UPDATE OF c SKIP LOCKED
    ), marked AS (
        UPDATE public.conversations AS c SET follow_up_em = _now FROM due WHERE c.id = due.id RETURNING due.*
    )
    INSERT INTO public.outbox (idempotency_key, kind, conversation_id, cliente_id, number, texto)
    SELECT 'follow_up:' || m.id, 'follow_up', m.id, m.cliente_id, m.telefone,
           format('Oi%s! Conseguiu ver os plantões que te mandei? Se algum te interessar, eu reservo para você. 😊',
                  coalesce(', ' || nullif(split_part(m.nome, ' ', 1), ''), ''))
      FROM marked AS m
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

-- Recompute each doctor's last touch (last proactive message sent or last
-- message exchanged) from the outbox and the history. Returns rows changed.
CREATE OR REPLACE FUNCTION public.reconcile_touches()
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer;
BEGIN
    WITH touch AS (
        SELECT cl.id, greatest(
                   (SELECT max(o.sent_at) FROM public.outbox AS o WHERE o.cliente_id = cl.id AND o.state = 'sent'),
                   (SELECT max(i.message_at) FROM public.interacoes AS i WHERE i.cliente_id = cl.id)) AS at
          FROM public.clientes AS cl
    )
    UPDATE public.clientes AS cl SET ultimo_contato_em = touch.at
      FROM touch
     WHERE cl.id = touch.id AND cl.ultimo_contato_em IS DISTINCT FROM touch.at;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

-- Forget what is no longer useful: archived pgmq messages and old counters.
CREATE OR REPLACE FUNCTION public.prune_history(p_keep interval DEFAULT '30 days')
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _archived integer;
    _counters integer;
    _n integer;
    _runs integer;
BEGIN
    DELETE FROM pgmq.a_inbound WHERE archived_at < clock_timestamp() - p_keep;
    GET DIAGNOSTICS _archived = ROW_COUNT;
    DELETE FROM public.send_counters WHERE window_start < (clock_timestamp() - p_keep) AT TIME ZONE 'America/Sao_Paulo';
    GET DIAGNOSTICS _counters = ROW_COUNT;
    DELETE FROM public.number_send_counters WHERE window_start < (clock_timestamp() - p_keep) AT TIME ZONE 'America/Sao_Paulo';
    GET DIAGNOSTICS _n = ROW_COUNT;
    _counters := _counters + _n;
    DELETE FROM public.number_health_events WHERE created_at < clock_timestamp() - p_keep;
    _runs := public.prune_periodic_runs(p_keep);
    RETURN jsonb_build_object('pgmq_archived', _archived, 'send_counters', _counters, 'periodic_runs', _runs);
END;
$$;

-- The day's numbers for the daily summary.
CREATE OR REPLACE FUNCTION public.daily_summary(p_day date DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH d AS (SELECT coalesce(p_day, (clock_timestamp() AT TIME ZONE 'America/Sao_Paulo')::date) AS day),
         w AS (SELECT (d.day::timestamp AT TIME ZONE 'America/Sao_Paulo') AS lo,
                      ((d.day + 1)::timestamp AT TIME ZONE 'America/Sao_Paulo') AS hi, d.day FROM d)
    SELECT jsonb_build_object(
        'dia', w.day,
        'mensagens_recebidas', (SELECT count(*) FROM public.interacoes AS i
                                 WHERE i.autor = 'medico' AND i.message_at >= w.lo AND i.message_at < w.hi),
        'respostas_enviadas', (SELECT count(*) FROM public.outbox AS o
                                WHERE o.kind = 'reply' AND o.state = 'sent' AND o.sent_at >= w.lo AND o.sent_at < w.hi),
        'proativas_enviadas', (SELECT count(*) FROM public.outbox AS o WHERE o.kind IN ('campaign', 'follow_up')
                                 AND o.state = 'sent' AND o.sent_at >= w.lo AND o.sent_at < w.hi),
        'vagas_reservadas', (SELECT count(*) FROM public.vagas AS v WHERE v.reservada_em >= w.lo AND v.reservada_em < w.hi),
        'handoffs', (SELECT count(*) FROM public.conversations AS c WHERE c.handoff_em >= w.lo AND c.handoff_em < w.hi),
        'opt_outs', (SELECT count(*) FROM public.clientes AS cl WHERE cl.opt_out_em >= w.lo AND cl.opt_out_em < w.hi),
        'falhas', (SELECT count(*) FROM public.job_failures AS f WHERE f.created_at >= w.lo AND f.created_at < w.hi))
      FROM w;
$$;

------------------------------------------------------------
-- Campaign views (security_invoker: they run with the caller's rights)
------------------------------------------------------------

CREATE OR REPLACE VIEW public.campaign_sends WITH (security_invoker = on) AS
SELECT o.id AS outbox_id, o.campanha_id, k.nome AS campanha, o.cliente_id, o.state, o.refusal,
       o.sent_at, o.delivery_status, o.delivered_at, o.read_at,
       EXISTS (SELECT 1 FROM public.interacoes AS i
                WHERE i.cliente_id = o.cliente_id AND i.autor = 'medico' AND i.message_at > o.sent_at) AS respondeu,
       (cl.opt_out AND cl.opt_out_em > o.sent_at) AS opt_out_depois,
       EXISTS (SELECT 1 FROM public.vagas AS v
                WHERE v.reservada_por = o.cliente_id AND v.reservada_em > o.sent_at
                  AND (k.fim IS NULL OR v.reservada_em < k.fim + interval '7 days')) AS reservou_depois
  FROM public.outbox AS o
  JOIN public.campanhas AS k ON k.id = o.campanha_id
  JOIN public.clientes AS cl ON cl.id = o.cliente_id
 WHERE o.kind = 'campaign';

CREATE OR REPLACE VIEW public.campaign_metrics WITH (security_invoker = on) AS
SELECT k.id AS campanha_id, k.nome AS campanha, k.status,
       count(s.outbox_id) AS total,
       count(*) FILTER (WHERE s.state = 'sent') AS enviadas,
       count(*) FILTER (WHERE s.state IN ('queued', 'deferred', 'claimed')) AS pendentes,
       count(*) FILTER (WHERE s.state = 'failed') AS falhas,
       count(*) FILTER (WHERE s.delivered_at IS NOT NULL) AS entregues,
       count(*) FILTER (WHERE s.read_at IS NOT NULL) AS lidas,
       count(*) FILTER (WHERE s.respondeu) AS respondidas,
       count(*) FILTER (WHERE s.opt_out_depois) AS opt_outs,
       CASE WHEN public.feature_enabled('campaign_attribution')
            THEN count(*) FILTER (WHERE s.reservou_depois) END AS reservas_atribuidas
  FROM public.campanhas AS k
  LEFT JOIN public.campaign_sends AS s ON s.campanha_id = k.id
 GROUP BY k.id, k.nome, k.status;

-- Proactive sends this hour and today, from the gate's own counters and the
-- database's policy: totals over the available numbers and each number's.
-- The arguments are ignored (kept for the previous release's calls).
CREATE OR REPLACE FUNCTION public.rate_limit_status(p_hour_limit integer DEFAULT NULL, p_day_limit integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH t AS (SELECT clock_timestamp() AT TIME ZONE 'America/Sao_Paulo' AS local_now, public.current_send_policy() AS p),
         w AS (SELECT date_trunc('hour', t.local_now) AS hour_start, date_trunc('day', t.local_now) AS day_start, t.p FROM t),
         legacy AS (SELECT coalesce((SELECT s.claims FROM public.send_counters AS s, w
                                      WHERE s.window_kind = 'hour' AND s.window_start = w.hour_start), 0) AS hour_count,
                           coalesce((SELECT s.claims FROM public.send_counters AS s, w
                                      WHERE s.window_kind = 'day' AND s.window_start = w.day_start), 0) AS day_count,
                           (w.p ->> 'hour_limit')::integer AS hour_limit, (w.p ->> 'day_limit')::integer AS day_limit
                      FROM w),
         nums AS (SELECT coalesce(sum(c.hour_sent), 0)::integer AS hour_count,
                         coalesce(sum(c.day_sent), 0)::integer AS day_count,
                         coalesce(sum(c.hour_limit) FILTER (WHERE c.unavailable IS NULL), 0)::integer AS hour_limit,
                         coalesce(sum(c.day_limit) FILTER (WHERE c.unavailable IS NULL), 0)::integer AS day_limit
                    FROM public.number_capacity(NULL) AS c),
         c AS (SELECT * FROM legacy WHERE NOT EXISTS (SELECT 1 FROM public.whatsapp_numbers)
               UNION ALL
               SELECT * FROM nums WHERE EXISTS (SELECT 1 FROM public.whatsapp_numbers))
    SELECT jsonb_build_object(
        'timezone', 'America/Sao_Paulo',
        'source', 'database',
        'policy', w.p,
        'hour', jsonb_build_object('window_start', w.hour_start, 'sent', c.hour_count, 'limit', c.hour_limit,
                                   'remaining', greatest(c.hour_limit - c.hour_count, 0)),
        'day', jsonb_build_object('window_start', w.day_start, 'sent', c.day_count, 'limit', c.day_limit,
                                  'remaining', greatest(c.day_limit - c.day_count, 0)),
        'numbers', public.numbers_report(NULL))
      FROM w, c;
$$;

-- Recount metricas_conversa from the history for conversations active since
-- p_since (the trigger keeps them current; this repairs any drift).
CREATE OR REPLACE FUNCTION public.rollup_metricas_conversa(p_since interval DEFAULT '1 day')
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer;
BEGIN
    WITH agg AS (
        SELECT i.conversation_id, min(i.cliente_id) AS cliente_id, count(*) AS total,
               count(*) FILTER (WHERE i.autor = 'medico') AS medico,
               count(*) FILTER (WHERE i.autor = 'julia') AS julia,
               count(*) FILTER (WHERE i.autor = 'humano') AS humano,
               min(i.message_at) AS primeira, max(i.message_at) AS ultima,
               min(i.message_at) FILTER (WHERE i.autor = 'medico') AS primeira_medico
          FROM public.interacoes AS i
         WHERE i.conversation_id IN (SELECT DISTINCT i2.conversation_id FROM public.interacoes AS i2
                                      WHERE i2.message_at > clock_timestamp() - p_since)
         GROUP BY i.conversation_id
    )
    INSERT INTO public.metricas_conversa AS m
        (conversation_id, cliente_id, total_mensagens, total_mensagens_medico, total_mensagens_julia,
         total_mensagens_humano, primeira_mensagem_em, ultima_mensagem_em, duracao_total_minutos,
         primeira_resposta_segundos, houve_handoff, motivo_handoff)
    SELECT a.conversation_id, a.cliente_id, a.total, a.medico, a.julia, a.humano, a.primeira, a.ultima,
           floor(extract(epoch FROM a.ultima - a.primeira) / 60)::integer,
           (SELECT greatest(0, extract(epoch FROM min(r.message_at) - a.primeira_medico))::integer
              FROM public.interacoes AS r
             WHERE r.conversation_id = a.conversation_id AND r.autor <> 'medico' AND r.message_at >= a.primeira_medico),
           c.handoff_em IS NOT NULL OR c.handoff_ativo, c.handoff_motivo
      FROM agg AS a JOIN public.conversations AS c ON c.id = a.conversation_id
    ON CONFLICT (conversation_id) DO UPDATE SET
        total_mensagens = excluded.total_mensagens, total_mensagens_medico = excluded.total_mensagens_medico,
        total_mensagens_julia = excluded.total_mensagens_julia, total_mensagens_humano = excluded.total_mensagens_humano,
        primeira_mensagem_em = excluded.primeira_mensagem_em, ultima_mensagem_em = excluded.ultima_mensagem_em,
        duracao_total_minutos = excluded.duracao_total_minutos,
        primeira_resposta_segundos = excluded.primeira_resposta_segundos,
        houve_handoff = m.houve_handoff OR excluded.houve_handoff,
        motivo_handoff = coalesce(m.motivo_handoff, excluded.motivo_handoff), updated_at = now();
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;
