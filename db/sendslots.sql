-- The slots a proactive message takes and the number it goes from, for the
-- gate (db/sendgate.sql): per-number hour and day counters (and the global
-- ones of a deployment without number rows), taken with guarded updates so
-- concurrent claimers never overshoot, and the choice of number:
-- continuity for a doctor who knows one, spread for a new contact.

------------------------------------------------------------
-- Counters
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

-- Before any number row exists (a deployment not bootstrapped): one global
-- day and hour counter, both slots or neither. Returns the refusal, NULL
-- when the slots were taken.
CREATE OR REPLACE FUNCTION public._take_global_slots(
    p_policy jsonb, p_now timestamptz, OUT reason text, OUT next_at timestamptz
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _hour timestamp := date_trunc('hour', p_now AT TIME ZONE 'America/Sao_Paulo');
    _day timestamp := date_trunc('day', p_now AT TIME ZONE 'America/Sao_Paulo');
BEGIN
    IF NOT public._take_window_slot('day', _day, (p_policy ->> 'day_limit')::integer) THEN
        reason := 'daily_limit';
        next_at := public.next_business_opening(p_policy, (_day + interval '1 day') AT TIME ZONE 'America/Sao_Paulo');
    ELSIF NOT public._take_window_slot('hour', _hour, (p_policy ->> 'hour_limit')::integer) THEN
        -- Give the day slot back: this message does not go now.
        UPDATE public.send_counters SET claims = claims - 1 WHERE window_kind = 'day' AND window_start = _day;
        reason := 'hourly_limit';
        next_at := public.next_business_opening(p_policy, (_hour + interval '1 hour') AT TIME ZONE 'America/Sao_Paulo');
    END IF;
END;
$$;

------------------------------------------------------------
-- Choosing the number
------------------------------------------------------------


-- Take a number's day and hour slots, both or neither: a full hour rolls
-- the day slot back (and its row lock) with the subtransaction, before the
-- caller tries the next number. Returns NULL when taken, else 'day_full'
-- or 'hour_full'.
CREATE OR REPLACE FUNCTION public._take_number_slots(
    p_number public.whatsapp_numbers, p_policy jsonb, p_now timestamptz, p_hour timestamp, p_day timestamp
)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF NOT public._take_number_slot(p_number.id, 'day', p_day, public.number_day_limit(p_number, p_policy, p_now)) THEN
        RAISE EXCEPTION USING ERRCODE = 'JU001', MESSAGE = 'day_full';
    END IF;
    IF NOT public._take_number_slot(p_number.id, 'hour', p_hour, public.number_hour_limit(p_number, p_policy, p_now)) THEN
        RAISE EXCEPTION USING ERRCODE = 'JU001', MESSAGE = 'hour_full';
    END IF;
    RETURN NULL;
EXCEPTION WHEN SQLSTATE 'JU001' THEN
    RETURN SQLERRM;
END;
$$;

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
    _opening timestamptz;
    _hour timestamp := date_trunc('hour', p_now AT TIME ZONE 'America/Sao_Paulo');
    _day timestamp := date_trunc('day', p_now AT TIME ZONE 'America/Sao_Paulo');
    _full text;
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
        _opening := public.next_business_opening(public.number_policy(_n, p_policy), p_now);
        IF _opening <> p_now THEN
            next_at := least(next_at, _opening);
            CONTINUE;
        END IF;
        _full := public._take_number_slots(_n, p_policy, p_now, _hour, _day);
        _hour_full := _hour_full OR _full IS NOT DISTINCT FROM 'hour_full';
        _day_full := _day_full OR _full IS NOT DISTINCT FROM 'day_full';
        CONTINUE WHEN _full IS NOT NULL;
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
    ELSIF next_at IS NULL THEN
        reason := 'no_number';
    ELSE
        reason := 'outside_hours';
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
