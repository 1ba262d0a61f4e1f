-- The WhatsApp numbers Julia sends from and the send policy, as data. One
-- policy row (send_policy_settings) every process enforces; one row per
-- number (whatsapp_numbers: Evolution instance, connection state, pause,
-- caps, warm-up ramp, hours). The gate (claim_send_slot, db/outreach.sql)
-- reads both itself; changes are audited in send_policy_changes.

------------------------------------------------------------
-- Policy
------------------------------------------------------------

-- A policy with the defaults filled in (pure: the policy in force is
-- current_send_policy(), db/numbers.sql, which reads the database row):
-- {"hour_limit": 20, "day_limit": 100, "start": "08:00", "end": "20:00",
--  "weekdays": [1,2,3,4,5] (ISO: 1 = Monday), "cooldown_hours": 72,
--  "reply_cap_per_hour": 30, "warmup_start_per_day": 20, "warmup_days": 14,
--  "health_window_minutes": 60, "health_max_problems": 5}
CREATE OR REPLACE FUNCTION public.send_policy(p_policy jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT jsonb_build_object(
        'hour_limit', 20, 'day_limit', 100, 'start', '08:00', 'end', '20:00',
        'weekdays', '[1,2,3,4,5]'::jsonb, 'cooldown_hours', 72, 'reply_cap_per_hour', 30,
        'warmup_start_per_day', 20, 'warmup_days', 14, 'health_window_minutes', 60, 'health_max_problems', 5)
        || coalesce(p_policy, '{}'::jsonb);
$$;

-- The next moment proactive messages may go at or after p_at (Sao Paulo
-- business hours on allowed weekdays).
CREATE OR REPLACE FUNCTION public.next_business_opening(p_policy jsonb, p_at timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _p jsonb := public.send_policy(p_policy);
    _local timestamp := p_at AT TIME ZONE 'America/Sao_Paulo';
    _start time := (_p ->> 'start')::time;
    _end time := (_p ->> 'end')::time;
    _day date := _local::date;
    _candidate timestamp;
BEGIN
    FOR _i IN 0 .. 7 LOOP
        IF (_p -> 'weekdays') @> to_jsonb(extract(isodow FROM _day)::integer) THEN
            _candidate := _day + _start;
            IF _i = 0 AND _local::time >= _start AND _local::time < _end THEN
                RETURN p_at;
            ELSIF _candidate > _local THEN
                RETURN _candidate AT TIME ZONE 'America/Sao_Paulo';
            END IF;
        END IF;
        _day := _day + 1;
    END LOOP;
    RAISE EXCEPTION 'next_business_opening: no allowed weekday in policy %', _p -> 'weekdays';
END;
$$;


-- The policy in force: built-in defaults, overridden by the database row.
-- (Environment variables only seed the row at bootstrap.)
CREATE OR REPLACE FUNCTION public.current_send_policy()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT public.send_policy((SELECT s.policy FROM public.send_policy_settings AS s WHERE s.id));
$$;

-- Check a policy (or a change to one): known keys, sane values. RAISEs naming the key.
CREATE OR REPLACE FUNCTION public._check_policy(p_policy jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _key text;
    _value jsonb;
BEGIN
    IF jsonb_typeof(p_policy) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'send policy must be a JSON object, got %', coalesce(p_policy::text, 'NULL');
    END IF;
    FOR _key, _value IN SELECT * FROM jsonb_each(p_policy) LOOP
        IF _key IN ('hour_limit', 'day_limit', 'cooldown_hours', 'reply_cap_per_hour', 'warmup_start_per_day',
                    'warmup_days', 'health_window_minutes', 'health_max_problems') THEN
            IF jsonb_typeof(_value) <> 'number' OR _value::numeric < 0 OR _value::numeric <> trunc(_value::numeric) THEN
                RAISE EXCEPTION 'send policy: % must be a whole number >= 0, got %', _key, _value;
            END IF;
        ELSIF _key IN ('start', 'end') THEN
            IF jsonb_typeof(_value) <> 'string' OR (_value #>> '{}') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
                RAISE EXCEPTION 'send policy: % must look like HH:MM, got %', _key, _value;
            END IF;
        ELSIF _key = 'weekdays' THEN
            IF jsonb_typeof(_value) <> 'array' OR jsonb_array_length(_value) = 0
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(_value) AS d (v)
                           WHERE jsonb_typeof(d.v) <> 'number' OR d.v::numeric NOT IN (1, 2, 3, 4, 5, 6, 7)) THEN
                RAISE EXCEPTION 'send policy: weekdays must list ISO weekdays 1..7, got %', _value;
            END IF;
        ELSE
            RAISE EXCEPTION 'send policy: unknown key % (known: hour_limit, day_limit, start, end, weekdays, '
                            'cooldown_hours, reply_cap_per_hour, warmup_start_per_day, warmup_days, '
                            'health_window_minutes, health_max_problems)', _key;
        END IF;
    END LOOP;
END;
$$;

-- Write the policy row once (bootstrap, from the seed's env variables);
-- an existing row is left alone. Returns 'created' or 'unchanged'.
CREATE OR REPLACE FUNCTION public.ensure_send_policy(p_policy jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    PERFORM public._check_policy(coalesce(p_policy, '{}'::jsonb));
    INSERT INTO public.send_policy_settings (id, policy, updated_via)
    VALUES (true, public.send_policy(p_policy), 'bootstrap')
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'unchanged';
    END IF;
    INSERT INTO public.send_policy_changes (subject, change, motivo, via)
    VALUES ('policy', public.send_policy(p_policy), 'bootstrap', 'bootstrap');
    RETURN 'created';
END;
$$;

-- Change the policy (merged over the current one, or over the defaults
-- with p_replace), audited. Returns the policy now in force.
CREATE OR REPLACE FUNCTION public.set_send_policy(
    p_changes jsonb, p_motivo text, p_via text, p_replace boolean DEFAULT false
)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _new jsonb;
BEGIN
    IF coalesce(trim(p_motivo), '') = '' THEN
        RAISE EXCEPTION 'a motivo (reason) is required to change the send policy';
    END IF;
    PERFORM public._check_policy(p_changes);
    _new := CASE WHEN p_replace THEN public.send_policy(p_changes) ELSE public.current_send_policy() || p_changes END;
    INSERT INTO public.send_policy_settings AS s (id, policy, updated_at, updated_via)
    VALUES (true, _new, clock_timestamp(), p_via)
    ON CONFLICT (id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at,
                                   updated_via = excluded.updated_via;
    INSERT INTO public.send_policy_changes (subject, change, motivo, via) VALUES ('policy', p_changes, p_motivo, p_via);
    RETURN _new;
END;
$$;

------------------------------------------------------------
-- Numbers: what each may send today
------------------------------------------------------------

-- A number's day cap today, with its warm-up ramp: from warmup_start_per_day
-- on the first day it sends, growing linearly to its cap over warmup_days.
CREATE OR REPLACE FUNCTION public.number_day_limit(p_number public.whatsapp_numbers, p_policy jsonb, p_now timestamptz)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH x AS (
        SELECT coalesce(p_number.day_limit, (p_policy ->> 'day_limit')::integer) AS cap,
               coalesce(p_number.warmup_start_per_day, (p_policy ->> 'warmup_start_per_day')::integer, 20) AS ramp_start,
               p_number.warmup_days AS ramp_days,
               (p_now AT TIME ZONE 'America/Sao_Paulo')::date
                 - (coalesce(p_number.first_used_at, p_now) AT TIME ZONE 'America/Sao_Paulo')::date AS day_index
    )
    SELECT CASE WHEN x.ramp_days = 0 OR x.day_index >= x.ramp_days THEN x.cap
                ELSE least(x.cap, x.ramp_start + ((x.cap - x.ramp_start) * greatest(x.day_index, 0)) / x.ramp_days) END
      FROM x;
$$;

-- A number's hourly cap (never above what the day still allows it).
CREATE OR REPLACE FUNCTION public.number_hour_limit(p_number public.whatsapp_numbers, p_policy jsonb, p_now timestamptz)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT least(coalesce(p_number.hour_limit, (p_policy ->> 'hour_limit')::integer),
                 public.number_day_limit(p_number, p_policy, p_now));
$$;

-- The policy with a number's own hours, when it has them.
CREATE OR REPLACE FUNCTION public.number_policy(p_number public.whatsapp_numbers, p_policy jsonb)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT p_policy || CASE WHEN p_number.hours_start IS NULL THEN '{}'::jsonb
                            ELSE jsonb_build_object('start', to_char(p_number.hours_start, 'HH24:MI'),
                                                    'end', to_char(p_number.hours_end, 'HH24:MI')) END;
$$;

-- Why a number cannot send now (NULL when it can): paused, disconnected.
CREATE OR REPLACE FUNCTION public.number_unavailable(p_number public.whatsapp_numbers)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT CASE WHEN p_number.id IS NULL THEN 'unknown'
                WHEN p_number.paused THEN 'paused'
                WHEN p_number.state <> 'open' THEN 'disconnected:' || p_number.state END;
$$;

-- Claims a number has in a window.
CREATE OR REPLACE FUNCTION public.number_claims(p_number_id bigint, p_kind text, p_start timestamp)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce((SELECT c.claims FROM public.number_send_counters AS c
                      WHERE c.number_id = p_number_id AND c.window_kind = p_kind AND c.window_start = p_start), 0);
$$;

-- Take one slot of a number's window; false when it is full. A guarded
-- UPDATE: concurrent claimers serialize on the row and none overshoots, and
-- a claimer that finds it full keeps no lock on it (an upsert's DO UPDATE
-- WHERE would), so trying the next number cannot deadlock. The row must
-- exist (_open_number_windows).
CREATE OR REPLACE FUNCTION public._take_number_slot(p_number_id bigint, p_kind text, p_start timestamp, p_limit integer)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF p_limit <= 0 THEN
        RETURN false;
    END IF;
    UPDATE public.number_send_counters AS c SET claims = c.claims + 1
     WHERE c.number_id = p_number_id AND c.window_kind = p_kind AND c.window_start = p_start AND c.claims < p_limit;
    RETURN FOUND;
END;
$$;

-- Create the counter rows of the current windows for every number, in id
-- order (concurrent creators wait for each other in the same order).
CREATE OR REPLACE FUNCTION public._open_number_windows(p_hour timestamp, p_day timestamp)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.whatsapp_numbers AS n
                WHERE NOT EXISTS (SELECT 1 FROM public.number_send_counters AS c
                                   WHERE c.number_id = n.id AND c.window_kind = 'hour' AND c.window_start = p_hour)
                   OR NOT EXISTS (SELECT 1 FROM public.number_send_counters AS c
                                   WHERE c.number_id = n.id AND c.window_kind = 'day' AND c.window_start = p_day)) THEN
        INSERT INTO public.number_send_counters (number_id, window_kind, window_start, claims)
        SELECT n.id, w.kind, w.start, 0
          FROM public.whatsapp_numbers AS n
          CROSS JOIN (VALUES ('day', p_day), ('hour', p_hour)) AS w (kind, start)
         ORDER BY n.id, w.kind
        ON CONFLICT DO NOTHING;
    END IF;
END;
$$;

-- Every number with its state and what it may still send now (p_now: clock, NULL = now).
CREATE OR REPLACE FUNCTION public.number_capacity(p_now timestamptz DEFAULT NULL)
RETURNS TABLE (
    number_id bigint, instance text, phone text, state text, paused boolean, pause_reason text,
    unavailable text, in_hours boolean, next_opening timestamptz,
    hour_sent integer, hour_limit integer, day_sent integer, day_limit integer, warmup_day integer
)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH t AS (SELECT coalesce(p_now, clock_timestamp()) AS now, public.current_send_policy() AS p)
    SELECT n.id, n.instance, n.phone, n.state, n.paused, n.pause_reason, public.number_unavailable(n),
           public.next_business_opening(public.number_policy(n, t.p), t.now) = t.now,
           public.next_business_opening(public.number_policy(n, t.p), t.now),
           public.number_claims(n.id, 'hour', date_trunc('hour', t.now AT TIME ZONE 'America/Sao_Paulo')),
           public.number_hour_limit(n, t.p, t.now),
           public.number_claims(n.id, 'day', date_trunc('day', t.now AT TIME ZONE 'America/Sao_Paulo')),
           public.number_day_limit(n, t.p, t.now),
           CASE WHEN n.warmup_days > 0 THEN
               (t.now AT TIME ZONE 'America/Sao_Paulo')::date
               - (coalesce(n.first_used_at, t.now) AT TIME ZONE 'America/Sao_Paulo')::date + 1 END
      FROM public.whatsapp_numbers AS n, t
     ORDER BY n.id;
$$;

------------------------------------------------------------
-- Numbers: the gate's choice
------------------------------------------------------------

-- Choose the number a proactive message goes from and take its slots.
-- The number the doctor knows (continuity) or, for a new contact, the
-- available number with the most room today (spread). Returns the number,
-- or a refusal with when it could go.
CREATE OR REPLACE FUNCTION public._claim_proactive_number(
    p_known_number_id bigint, p_policy jsonb, p_now timestamptz,
    OUT number_id bigint, OUT reason text, OUT next_at timestamptz
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n public.whatsapp_numbers;
    _p jsonb;
    _hour timestamp := date_trunc('hour', p_now AT TIME ZONE 'America/Sao_Paulo');
    _day timestamp := date_trunc('day', p_now AT TIME ZONE 'America/Sao_Paulo');
    _opening timestamptz;
    _hour_full boolean := false;
    _day_full boolean := false;
BEGIN
    PERFORM public._open_number_windows(_hour, _day);
    FOR _n IN
        SELECT n.* FROM public.whatsapp_numbers AS n
          LEFT JOIN public.number_send_counters AS d
                 ON d.number_id = n.id AND d.window_kind = 'day' AND d.window_start = _day
          LEFT JOIN public.number_send_counters AS h
                 ON h.number_id = n.id AND h.window_kind = 'hour' AND h.window_start = _hour
         WHERE (p_known_number_id IS NULL AND NOT n.paused AND n.state = 'open') OR n.id = p_known_number_id
         -- Least used share of today's cap first: new contacts spread over the numbers.
         ORDER BY coalesce(d.claims, 0)::numeric / greatest(public.number_day_limit(n, p_policy, p_now), 1),
                  coalesce(h.claims, 0), n.id
    LOOP
        IF public.number_unavailable(_n) IS NOT NULL THEN
            -- Her number is down: she waits for it rather than hear from a stranger.
            reason := 'number_unavailable'; RETURN;
        END IF;
        _p := public.number_policy(_n, p_policy);
        _opening := public.next_business_opening(_p, p_now);
        IF _opening <> p_now THEN
            next_at := least(next_at, _opening);
            CONTINUE;
        END IF;
        -- Both slots or neither: a full hour rolls the day slot back (and
        -- its row lock) with the subtransaction, before the next number.
        BEGIN
            IF NOT public._take_number_slot(_n.id, 'day', _day, public.number_day_limit(_n, p_policy, p_now)) THEN
                RAISE EXCEPTION USING ERRCODE = 'JU001', MESSAGE = 'day_full';
            END IF;
            IF NOT public._take_number_slot(_n.id, 'hour', _hour, public.number_hour_limit(_n, p_policy, p_now)) THEN
                RAISE EXCEPTION USING ERRCODE = 'JU001', MESSAGE = 'hour_full';
            END IF;
        EXCEPTION WHEN SQLSTATE 'JU001' THEN
            IF SQLERRM = 'hour_full' THEN _hour_full := true; ELSE _day_full := true; END IF;
            CONTINUE;
        END;
        UPDATE public.whatsapp_numbers AS n SET first_used_at = p_now, updated_at = now()
         WHERE n.id = _n.id AND n.first_used_at IS NULL;
        number_id := _n.id; next_at := NULL; RETURN;
    END LOOP;
    IF _hour_full THEN
        reason := 'hourly_limit';
        next_at := public.next_business_opening(p_policy, (_hour + interval '1 hour') AT TIME ZONE 'America/Sao_Paulo');
    ELSIF _day_full THEN
        reason := 'daily_limit';
        next_at := public.next_business_opening(p_policy, (_day + interval '1 day') AT TIME ZONE 'America/Sao_Paulo');
    ELSIF next_at IS NOT NULL THEN
        reason := 'outside_hours';
    ELSE
        reason := 'no_number';
    END IF;
END;
$$;

-- The number a reply, an agent's message or an alert goes from: the one
-- the conversation (or the doctor) uses, else the least busy available one.
CREATE OR REPLACE FUNCTION public._reply_number(p_known_number_id bigint)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(p_known_number_id, (
        SELECT n.id FROM public.whatsapp_numbers AS n
         WHERE public.number_unavailable(n) IS NULL
         ORDER BY (SELECT count(*) FROM public.outbox AS o WHERE o.number_id = n.id AND o.state = 'claimed'), n.id
         LIMIT 1));
$$;

------------------------------------------------------------
-- Numbers: operating them
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
            quote_literal(coalesce(p_instance, ''));
    ELSIF p_hour_limit < 0 OR p_day_limit < 0 THEN
        RAISE EXCEPTION 'add_number: limits must be >= 0 (instance %)', p_instance;
    END IF;
    INSERT INTO public.whatsapp_numbers (instance, phone, hour_limit, day_limit, warmup_days)
    VALUES (p_instance, nullif(p_phone, ''), p_hour_limit, p_day_limit,
            CASE WHEN p_warmup THEN (public.current_send_policy() ->> 'warmup_days')::integer ELSE 0 END)
    ON CONFLICT (instance) DO NOTHING
    RETURNING id INTO _id;
    IF _id IS NULL THEN
        RAISE EXCEPTION 'add_number: number % already exists', p_instance;
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
        RAISE EXCEPTION 'a motivo (reason) is required to change number %', p_instance;
    END IF;
    FOR _key IN SELECT jsonb_object_keys(coalesce(p_changes, '{}'::jsonb)) LOOP
        IF _key NOT IN ('hour_limit', 'day_limit', 'hours_start', 'hours_end', 'phone') THEN
            RAISE EXCEPTION 'update_number: unknown key % (known: hour_limit, day_limit, hours_start, hours_end, phone)', _key;
        END IF;
    END LOOP;
    IF (p_changes ? 'hours_start') <> (p_changes ? 'hours_end') THEN
        RAISE EXCEPTION 'update_number: give both hours_start and hours_end (number %)', p_instance;
    END IF;
    FOR _key IN SELECT k FROM unnest(ARRAY['hours_start', 'hours_end']) AS k WHERE p_changes ->> k IS NOT NULL LOOP
        IF (p_changes ->> _key) !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
            RAISE EXCEPTION 'update_number: % must look like HH:MM, got % (number %)', _key, p_changes ->> _key, p_instance;
        END IF;
    END LOOP;
    FOR _key IN SELECT k FROM unnest(ARRAY['hour_limit', 'day_limit']) AS k WHERE p_changes ->> k IS NOT NULL LOOP
        IF (p_changes ->> _key) !~ '^[0-9]{1,9}$' THEN
            RAISE EXCEPTION 'update_number: % must be a whole number >= 0, got % (number %)', _key, p_changes ->> _key, p_instance;
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
        RAISE EXCEPTION 'update_number: number % not found', p_instance;
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
        RAISE EXCEPTION 'a motivo (reason) is required to pause number %', p_instance;
    END IF;
    UPDATE public.whatsapp_numbers
       SET paused = true, pause_reason = p_motivo, paused_at = clock_timestamp(), updated_at = now()
     WHERE instance = p_instance;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pause_number: number % not found', p_instance;
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
        RAISE EXCEPTION 'a motivo (reason) is required to resume number %', p_instance;
    END IF;
    UPDATE public.whatsapp_numbers
       SET paused = false, pause_reason = NULL, paused_at = NULL, updated_at = now()
     WHERE instance = p_instance
    RETURNING id INTO _id;
    IF _id IS NULL THEN
        RAISE EXCEPTION 'resume_number: number % not found', p_instance;
    END IF;
    PERFORM public._audit_number(p_instance, '{"action": "resume"}'::jsonb, p_motivo, p_via);
    RETURN public._release_number_work(_id);
END;
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
        RAISE EXCEPTION 'record_connection_update: unknown state % for instance %', quote_literal(coalesce(p_state, 'NULL')), p_instance;
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
