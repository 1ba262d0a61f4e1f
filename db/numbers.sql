-- Operating the WhatsApp numbers Julia sends from: adding, changing,
-- pausing and resuming them (audited in send_policy_changes), Evolution's
-- connection events, webhooks of unknown instances, and the report
-- operators read. What a number may send is db/sendpolicy.sql's.

------------------------------------------------------------
-- Finding and auditing
------------------------------------------------------------

-- A number by its Evolution instance name (NULL when unknown).
CREATE OR REPLACE FUNCTION public.resolve_number(p_instance text)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT n.id FROM public.whatsapp_numbers AS n WHERE n.instance = p_instance;
$$;

-- Audit one change to a number.
CREATE OR REPLACE FUNCTION public._audit_number(p_instance text, p_change jsonb, p_motivo text, p_via text)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.send_policy_changes (subject, change, motivo, via)
    VALUES ('number:' || p_instance, p_change, p_motivo, p_via);
$$;

-- Is this webhook's instance one Julia may act on? A deployment without
-- numbers, or a body without an instance, is the one-number case.
CREATE OR REPLACE FUNCTION public.instance_known(p_instance text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT p_instance IS NULL OR NOT EXISTS (SELECT 1 FROM public.whatsapp_numbers)
           OR EXISTS (SELECT 1 FROM public.whatsapp_numbers AS n WHERE n.instance = p_instance);
$$;

-- Remember a webhook from an instance Julia does not know, and tell operators once.
CREATE OR REPLACE FUNCTION public.record_unknown_instance(p_instance text, p_event text, p_payload jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    INSERT INTO public.unknown_instances AS u (instance, last_event, last_payload)
    VALUES (left(p_instance, 200), p_event, p_payload)
    ON CONFLICT (instance) DO UPDATE SET last_seen_at = clock_timestamp(), events = u.events + 1,
                                         last_event = excluded.last_event, last_payload = excluded.last_payload;
    PERFORM public.notify_humans('unknown_instance',
        jsonb_build_object('instance', left(p_instance, 200), 'event', p_event,
                           'detail', 'webhook de uma instância Evolution desconhecida: guardado, não respondido'),
        'unknown_instance:' || left(p_instance, 200));
END;
$$;

------------------------------------------------------------
-- Operating them
------------------------------------------------------------

-- Add a number. A new number warms up (the policy's ramp) unless p_warmup is false.
CREATE OR REPLACE FUNCTION public.add_number(
    p_instance text, p_phone text, p_hour_limit integer, p_day_limit integer, p_warmup boolean,
    p_motivo text, p_via text
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF coalesce(p_instance, '') !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$' THEN
        RAISE EXCEPTION 'add_number: % is not a valid Evolution instance name (letters, digits, . _ -)',
            quote_literal(coalesce(p_instance, '')) USING ERRCODE = 'JU400';
    ELSIF p_hour_limit < 0 OR p_day_limit < 0 THEN
        RAISE EXCEPTION 'add_number: limits must be >= 0 (instance %)', p_instance USING ERRCODE = 'JU400';
    END IF;
    INSERT INTO public.whatsapp_numbers (instance, phone, hour_limit, day_limit, warmup_days)
    VALUES (p_instance, nullif(p_phone, ''), p_hour_limit, p_day_limit,
            CASE WHEN p_warmup THEN (public.current_send_policy() ->> 'warmup_days')::integer ELSE 0 END)
    ON CONFLICT (instance) DO NOTHING
    RETURNING id INTO _id;
    IF _id IS NULL THEN
        RAISE EXCEPTION 'add_number: number % already exists', p_instance USING ERRCODE = 'JU409';
    END IF;
    PERFORM public._audit_number(p_instance, jsonb_build_object('action', 'add', 'phone', p_phone,
        'hour_limit', p_hour_limit, 'day_limit', p_day_limit, 'warmup', p_warmup), p_motivo, p_via);
    RETURN _id;
END;
$$;

-- Change a number's own caps, hours or phone (p_changes: hour_limit,
-- day_limit, hours_start, hours_end, phone; JSON null = back to the policy's). Audited.
CREATE OR REPLACE FUNCTION public.update_number(p_instance text, p_changes jsonb, p_motivo text, p_via text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _key text;
BEGIN
    IF coalesce(trim(p_motivo), '') = '' THEN
        RAISE EXCEPTION 'a motivo (reason) is required to change number %', p_instance USING ERRCODE = 'JU400';
    END IF;
    FOR _key IN SELECT jsonb_object_keys(coalesce(p_changes, '{}'::jsonb)) LOOP
        IF _key NOT IN ('hour_limit', 'day_limit', 'hours_start', 'hours_end', 'phone') THEN
            RAISE EXCEPTION 'update_number: unknown key % (known: hour_limit, day_limit, hours_start, hours_end, phone)', _key
                USING ERRCODE = 'JU400';
        END IF;
    END LOOP;
    IF (p_changes ? 'hours_start') <> (p_changes ? 'hours_end') THEN
        RAISE EXCEPTION 'update_number: give both hours_start and hours_end (number %)', p_instance
            USING ERRCODE = 'JU400';
    END IF;
    FOR _key IN SELECT k FROM unnest(ARRAY['hours_start', 'hours_end']) AS k WHERE p_changes ->> k IS NOT NULL LOOP
        IF (p_changes ->> _key) !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
            RAISE EXCEPTION 'update_number: % must look like HH:MM, got % (number %)', _key, p_changes ->> _key, p_instance
                USING ERRCODE = 'JU400';
        END IF;
    END LOOP;
    FOR _key IN SELECT k FROM unnest(ARRAY['hour_limit', 'day_limit']) AS k WHERE p_changes ->> k IS NOT NULL LOOP
        IF (p_changes ->> _key) !~ '^[0-9]{1,9}$' THEN
            RAISE EXCEPTION 'update_number: % must be a whole number >= 0, got % (number %)', _key, p_changes ->> _key, p_instance
                USING ERRCODE = 'JU400';
        END IF;
    END LOOP;
    UPDATE public.whatsapp_numbers AS n
       SET hour_limit = CASE WHEN p_changes ? 'hour_limit' THEN (p_changes ->> 'hour_limit')::integer ELSE n.hour_limit END,
           day_limit = CASE WHEN p_changes ? 'day_limit' THEN (p_changes ->> 'day_limit')::integer ELSE n.day_limit END,
           hours_start = CASE WHEN p_changes ? 'hours_start' THEN (p_changes ->> 'hours_start')::time ELSE n.hours_start END,
           hours_end = CASE WHEN p_changes ? 'hours_end' THEN (p_changes ->> 'hours_end')::time ELSE n.hours_end END,
           phone = CASE WHEN p_changes ? 'phone' THEN p_changes ->> 'phone' ELSE n.phone END,
           updated_at = now()
     WHERE n.instance = p_instance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'update_number: number % not found', p_instance USING ERRCODE = 'JU404';
    END IF;
    PERFORM public._audit_number(p_instance, jsonb_build_object('action', 'set') || p_changes, p_motivo, p_via);
END;
$$;

-- The first number of a deployment (bootstrap, worker start: EVOLUTION_INSTANCE).
-- Created only while there is no number at all; it has sent before, so no ramp.
CREATE OR REPLACE FUNCTION public.ensure_first_number(p_instance text)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF coalesce(p_instance, '') = '' THEN
        RETURN 'skipped';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('julia.ensure_first_number'));
    IF EXISTS (SELECT 1 FROM public.whatsapp_numbers AS n WHERE n.instance = p_instance) THEN
        RETURN 'unchanged';
    ELSIF EXISTS (SELECT 1 FROM public.whatsapp_numbers) THEN
        RETURN 'not_registered';
    END IF;
    INSERT INTO public.whatsapp_numbers (instance) VALUES (p_instance) RETURNING id INTO _id;
    -- Today's global counters become its own: no fresh quota because of the switch.
    INSERT INTO public.number_send_counters (number_id, window_kind, window_start, claims)
    SELECT _id, c.window_kind, c.window_start, c.claims FROM public.send_counters AS c
     WHERE c.window_start >= date_trunc('day', clock_timestamp() AT TIME ZONE 'America/Sao_Paulo')
    ON CONFLICT DO NOTHING;
    PERFORM public._audit_number(p_instance, '{"action": "bootstrap"}'::jsonb, 'EVOLUTION_INSTANCE', 'bootstrap');
    RETURN 'created';
END;
$$;

-- Re-queue what waited for a number to come back (paused or disconnected).
-- Every such row goes back to the gate, which decides again (a row waiting
-- for the doctor's number does not always record which one it waits for).
CREATE OR REPLACE FUNCTION public._release_number_work(p_number_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer := 0;
    _id bigint;
BEGIN
    FOR _id IN
        SELECT o.id FROM public.outbox AS o
         WHERE o.state = 'deferred' AND o.refusal IN ('number_unavailable', 'no_number')
         ORDER BY o.id
         FOR UPDATE SKIP LOCKED
    LOOP
        UPDATE public.outbox SET state = 'queued', updated_at = now() WHERE id = _id;
        IF public.defer_send(_id) IS NOT NULL THEN _n := _n + 1; END IF;
    END LOOP;
    RETURN _n;
END;
$$;

-- Pause one number: nothing more goes from it until resumed.
CREATE OR REPLACE FUNCTION public.pause_number(p_instance text, p_motivo text, p_via text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF coalesce(trim(p_motivo), '') = '' THEN
        RAISE EXCEPTION 'a motivo (reason) is required to pause number %', p_instance USING ERRCODE = 'JU400';
    END IF;
    UPDATE public.whatsapp_numbers
       SET paused = true, pause_reason = p_motivo, paused_at = clock_timestamp(), updated_at = now()
     WHERE instance = p_instance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pause_number: number % not found', p_instance USING ERRCODE = 'JU404';
    END IF;
    PERFORM public._audit_number(p_instance, '{"action": "pause"}'::jsonb, p_motivo, p_via);
END;
$$;

-- Resume one number and release what waited for it; returns jobs deferred.
CREATE OR REPLACE FUNCTION public.resume_number(p_instance text, p_motivo text, p_via text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF coalesce(trim(p_motivo), '') = '' THEN
        RAISE EXCEPTION 'a motivo (reason) is required to resume number %', p_instance USING ERRCODE = 'JU400';
    END IF;
    UPDATE public.whatsapp_numbers
       SET paused = false, pause_reason = NULL, paused_at = NULL, updated_at = now()
     WHERE instance = p_instance
    RETURNING id INTO _id;
    IF _id IS NULL THEN
        RAISE EXCEPTION 'resume_number: number % not found', p_instance USING ERRCODE = 'JU404';
    END IF;
    PERFORM public._audit_number(p_instance, '{"action": "resume"}'::jsonb, p_motivo, p_via);
    RETURN public._release_number_work(_id);
END;
$$;

-- Sending setup a worker declares at start: the policy row (from its env,
-- only when absent) and its EVOLUTION_INSTANCE as the first number.
CREATE OR REPLACE FUNCTION public.bootstrap_sending(p_policy jsonb, p_instance text)
RETURNS TABLE (item text, action text)
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    item := 'send_policy'; action := public.ensure_send_policy(p_policy); RETURN NEXT;
    item := 'number:' || coalesce(nullif(p_instance, ''), '-'); action := public.ensure_first_number(p_instance);
    RETURN NEXT;
    -- Tell the caller when its env disagrees with the policy in force.
    item := 'send_policy_env';
    action := CASE WHEN p_policy IS NULL OR public.current_send_policy() @> public.send_policy(p_policy) THEN 'same'
                   ELSE 'differs' END;
    RETURN NEXT;
END;
$$;

------------------------------------------------------------
-- Connection events
------------------------------------------------------------

-- Evolution's connection.update: the number's state (open, close, connecting).
-- Returns 'updated', 'unchanged', 'unknown' (stored for operators) or
-- 'no_numbers' (a deployment without number rows yet).
CREATE OR REPLACE FUNCTION public.record_connection_update(p_instance text, p_state text, p_reason text, p_payload jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _before text;
    _id bigint;
BEGIN
    IF p_state IS NULL OR p_state NOT IN ('open', 'close', 'connecting') THEN
        RAISE EXCEPTION 'record_connection_update: unknown state % for instance %', quote_literal(coalesce(p_state, 'NULL')), p_instance
            USING ERRCODE = 'JU400';
    END IF;
    SELECT n.id, n.state INTO _id, _before FROM public.whatsapp_numbers AS n WHERE n.instance = p_instance FOR UPDATE;
    IF _id IS NULL AND NOT EXISTS (SELECT 1 FROM public.whatsapp_numbers) THEN
        RETURN 'no_numbers';  -- not bootstrapped yet: nothing to attribute it to
    ELSIF _id IS NULL THEN
        PERFORM public.record_unknown_instance(coalesce(p_instance, '?'), 'connection.update', p_payload);
        RETURN 'unknown';
    END IF;
    UPDATE public.whatsapp_numbers
       SET state = p_state, state_reason = p_reason, state_at = clock_timestamp(), updated_at = now()
     WHERE id = _id;
    IF _before = p_state THEN
        RETURN 'unchanged';
    END IF;
    PERFORM public._audit_number(p_instance, jsonb_build_object('action', 'connection', 'state', p_state,
                                 'reason', p_reason), 'connection.update', 'sistema');
    IF p_state = 'open' THEN
        PERFORM public._release_number_work(_id);
    ELSIF _before = 'open' THEN
        PERFORM public.notify_humans('number_disconnected',
            jsonb_build_object('instance', p_instance, 'state', p_state, 'reason', p_reason), NULL);
    END IF;
    RETURN 'updated';
END;
$$;

------------------------------------------------------------
-- Report
------------------------------------------------------------

-- Numbers for operators (julia numbers list, /health/rate-limit).
CREATE OR REPLACE FUNCTION public.numbers_report(p_now timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'instance', c.instance, 'phone', c.phone, 'state', c.state, 'paused', c.paused,
               'pause_reason', c.pause_reason, 'available', c.unavailable IS NULL, 'unavailable', c.unavailable,
               'in_hours', c.in_hours, 'warmup_day', c.warmup_day,
               'hour', jsonb_build_object('sent', c.hour_sent, 'limit', c.hour_limit,
                                          'remaining', greatest(c.hour_limit - c.hour_sent, 0)),
               'day', jsonb_build_object('sent', c.day_sent, 'limit', c.day_limit,
                                         'remaining', greatest(c.day_limit - c.day_sent, 0)))
           ORDER BY c.number_id), '[]'::jsonb)
      FROM public.number_capacity(p_now) AS c;
$$;
