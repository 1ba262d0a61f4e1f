-- The send policy as data: one row (send_policy_settings) every process
-- enforces, changes audited in send_policy_changes, and what it allows each
-- WhatsApp number (whatsapp_numbers: caps, warm-up ramp, hours) now. The
-- gate (db/sendgate.sql) reads both itself.

------------------------------------------------------------
-- Policy
------------------------------------------------------------

-- A policy with the defaults filled in (pure: the policy in force is
-- current_send_policy(), below, which reads the database row):
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
    RAISE EXCEPTION 'next_business_opening: no allowed weekday in policy %', _p -> 'weekdays' USING ERRCODE = 'JU400';
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
        RAISE EXCEPTION 'send policy must be a JSON object, got %', coalesce(p_policy::text, 'NULL')
            USING ERRCODE = 'JU400';
    END IF;
    FOR _key, _value IN SELECT * FROM jsonb_each(p_policy) LOOP
        IF _key IN ('hour_limit', 'day_limit', 'cooldown_hours', 'reply_cap_per_hour', 'warmup_start_per_day',
                    'warmup_days', 'health_window_minutes', 'health_max_problems') THEN
            IF jsonb_typeof(_value) <> 'number' OR _value::numeric < 0 OR _value::numeric <> trunc(_value::numeric) THEN
                RAISE EXCEPTION 'send policy: % must be a whole number >= 0, got %', _key, _value
                    USING ERRCODE = 'JU400';
            END IF;
        ELSIF _key IN ('start', 'end') THEN
            IF jsonb_typeof(_value) <> 'string' OR (_value #>> '{}') !~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN
                RAISE EXCEPTION 'send policy: % must look like HH:MM, got %', _key, _value USING ERRCODE = 'JU400';
            END IF;
        ELSIF _key = 'weekdays' THEN
            IF jsonb_typeof(_value) <> 'array' OR jsonb_array_length(_value) = 0
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(_value) AS d (v)
                           WHERE jsonb_typeof(d.v) <> 'number' OR d.v::numeric NOT IN (1, 2, 3, 4, 5, 6, 7)) THEN
                RAISE EXCEPTION 'send policy: weekdays must list ISO weekdays 1..7, got %', _value
                    USING ERRCODE = 'JU400';
            END IF;
        ELSE
            RAISE EXCEPTION 'send policy: unknown key % (known: hour_limit, day_limit, start, end, weekdays, '
                            'cooldown_hours, reply_cap_per_hour, warmup_start_per_day, warmup_days, '
                            'health_window_minutes, health_max_problems)', _key USING ERRCODE = 'JU400';
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
        RAISE EXCEPTION 'a motivo (reason) is required to change the send policy' USING ERRCODE = 'JU400';
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

-- A number's hourly cap given its day limit (never above what the day allows it).
CREATE OR REPLACE FUNCTION public.number_hour_cap(p_number public.whatsapp_numbers, p_policy jsonb, p_day_limit integer)
RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT least(coalesce(p_number.hour_limit, (p_policy ->> 'hour_limit')::integer), p_day_limit);
$$;

-- A number's hourly cap (never above what the day still allows it).
CREATE OR REPLACE FUNCTION public.number_hour_limit(p_number public.whatsapp_numbers, p_policy jsonb, p_now timestamptz)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT public.number_hour_cap(p_number, p_policy, public.number_day_limit(p_number, p_policy, p_now));
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
