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
-- day and hour counter, both slots or neither. A window whose committed
-- count already reached its cap refuses without touching its row (the
-- upsert would lock it, and wait for every claimer ahead). Returns the
-- refusal, NULL when the slots were taken.
CREATE OR REPLACE FUNCTION public._take_global_slots(
    p_policy jsonb, p_now timestamptz, OUT reason text, OUT next_at timestamptz
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _hour timestamp := date_trunc('hour', p_now AT TIME ZONE 'America/Sao_Paulo');
    _day timestamp := date_trunc('day', p_now AT TIME ZONE 'America/Sao_Paulo');
    _day_limit integer := (p_policy ->> 'day_limit')::integer;
    _hour_limit integer := (p_policy ->> 'hour_limit')::integer;
    _day_claims integer;
    _hour_claims integer;
BEGIN
    SELECT max(c.claims) FILTER (WHERE c.window_kind = 'day'), max(c.claims) FILTER (WHERE c.window_kind = 'hour')
      INTO _day_claims, _hour_claims
      FROM public.send_counters AS c
     WHERE (c.window_kind, c.window_start) IN (('day', _day), ('hour', _hour));
    IF _day_claims >= _day_limit THEN
        reason := 'daily_limit';
    ELSIF _hour_claims >= _hour_limit THEN
        reason := 'hourly_limit';
    ELSIF NOT public._take_window_slot('day', _day, _day_limit) THEN
        reason := 'daily_limit';
    ELSIF NOT public._take_window_slot('hour', _hour, _hour_limit) THEN
        -- Give the day slot back: this message does not go now.
        UPDATE public.send_counters SET claims = claims - 1 WHERE window_kind = 'day' AND window_start = _day;
        reason := 'hourly_limit';
    END IF;
    IF reason = 'daily_limit' THEN
        next_at := public.next_business_opening(p_policy, (_day + interval '1 day') AT TIME ZONE 'America/Sao_Paulo');
    ELSIF reason = 'hourly_limit' THEN
        next_at := public.next_business_opening(p_policy, (_hour + interval '1 hour') AT TIME ZONE 'America/Sao_Paulo');
    END IF;
END;
$$;

------------------------------------------------------------
-- Choosing the number
------------------------------------------------------------

-- Claim outbox row p_row from number p_number_id (_take_claim) and take
-- the number's day and hour slots (limits p_day_limit, p_hour_limit), all
-- or nothing: the slots come last, so a counter row stays locked only for
-- its UPDATE and the commit; a full window rolls the claim and the day
-- slot back (and its row lock) with the subtransaction, before the caller
-- tries the next number. Unless p_wait, counter rows another claimer holds
-- are not waited for ('busy': the caller tries a number nobody holds).
-- window_full is NULL when taken, else 'day_full', 'hour_full' or 'busy'.
CREATE OR REPLACE FUNCTION public._claim_with_number_slots(
    p_row public.outbox, p_job_id bigint, p_now timestamptz, p_address text, p_number_id bigint,
    p_hour timestamp, p_day timestamp, p_hour_limit integer, p_day_limit integer, p_wait boolean,
    OUT window_full text, OUT attempts integer, OUT number text, OUT instance text
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _free integer;
BEGIN
    SELECT * INTO attempts, number, instance FROM public._take_claim(p_row, p_job_id, p_now, p_address, p_number_id);
    IF NOT p_wait THEN
        -- Both rows in one statement, day before hour (index order), as the UPDATEs below.
        PERFORM 1 FROM public.number_send_counters AS c
         WHERE c.number_id = p_number_id AND (c.window_kind, c.window_start) IN (('day', p_day), ('hour', p_hour))
           FOR NO KEY UPDATE SKIP LOCKED;
        GET DIAGNOSTICS _free = ROW_COUNT;
        IF _free < 2 THEN
            RAISE EXCEPTION USING ERRCODE = 'JU001', MESSAGE = 'busy';
        END IF;
    END IF;
    IF NOT public._take_number_slot(p_number_id, 'day', p_day, p_day_limit) THEN
        RAISE EXCEPTION USING ERRCODE = 'JU001', MESSAGE = 'day_full';
    END IF;
    IF NOT public._take_number_slot(p_number_id, 'hour', p_hour, p_hour_limit) THEN
        RAISE EXCEPTION USING ERRCODE = 'JU001', MESSAGE = 'hour_full';
    END IF;
EXCEPTION WHEN SQLSTATE 'JU001' THEN
    window_full := SQLERRM; attempts := NULL; number := NULL; instance := NULL;
END;
$$;

-- The candidate numbers of a proactive message, best first, with their
-- limits and committed claims in the current windows (NULL: no counter row
-- yet), and how many there are: the number the doctor knows (continuity)
-- or, for a new contact, every available number, least used share of
-- today's cap first (spread).
CREATE OR REPLACE FUNCTION public._proactive_candidates(
    p_known_number_id bigint, p_policy jsonb, p_now timestamptz, p_hour timestamp, p_day timestamp
)
RETURNS TABLE (num public.whatsapp_numbers, day_limit integer, hour_limit integer, day_claims integer,
               hour_claims integer, candidates bigint)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    -- The hour limit from the day limit computed once (number_hour_limit would compute it again).
    SELECT c.num, c.day_limit, public.number_hour_cap(c.num, p_policy, c.day_limit), c.day_claims, c.hour_claims,
           count(*) OVER ()
      FROM (SELECT n AS num, public.number_day_limit(n, p_policy, p_now) AS day_limit, d.claims AS day_claims,
                   h.claims AS hour_claims, n.id
              FROM public.whatsapp_numbers AS n
              LEFT JOIN public.number_send_counters AS d
                     ON d.number_id = n.id AND d.window_kind = 'day' AND d.window_start = p_day
              LEFT JOIN public.number_send_counters AS h
                     ON h.number_id = n.id AND h.window_kind = 'hour' AND h.window_start = p_hour
             WHERE (p_known_number_id IS NULL AND NOT n.paused AND n.state = 'open') OR n.id = p_known_number_id
            -- OFFSET 0 keeps the subquery whole: flattened, each limit was computed again for the ORDER BY.
            OFFSET 0) AS c
     ORDER BY coalesce(c.day_claims, 0)::numeric / greatest(c.day_limit, 1), coalesce(c.hour_claims, 0), c.id;
$$;

-- Choose the number proactive row p_row goes from, claim the row for job
-- p_job_id and take the number's slots (candidates from
-- _proactive_candidates). A number whose committed count already reached a
-- cap is skipped without touching its row (counts only grow within a
-- window, so that read cannot be wrong): only a claimer that may get a slot
-- waits on a counter row. Concurrent claimers all see the same least used
-- number: a first pass skips numbers whose counter rows another claimer
-- holds, and only when every candidate with room was held does a second
-- pass wait (a single candidate is waited for at once). Returns the number
-- and the claim, or a refusal with when it could go.
CREATE OR REPLACE FUNCTION public._claim_proactive_number(
    p_row public.outbox, p_job_id bigint, p_address text, p_known_number_id bigint, p_policy jsonb,
    p_now timestamptz, OUT number_id bigint, OUT reason text, OUT next_at timestamptz,
    OUT attempts integer, OUT number text, OUT instance text
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _c record;
    _opening timestamptz;
    _hour timestamp := date_trunc('hour', p_now AT TIME ZONE 'America/Sao_Paulo');
    _day timestamp := date_trunc('day', p_now AT TIME ZONE 'America/Sao_Paulo');
    _full text;
    _hour_full boolean := false;
    _day_full boolean := false;
    _busy boolean := false;
BEGIN
    FOR _pass IN 1 .. 2 LOOP
        EXIT WHEN _pass = 2 AND NOT _busy;
        FOR _c IN SELECT * FROM public._proactive_candidates(p_known_number_id, p_policy, p_now, _hour, _day) LOOP
            IF public.number_unavailable(_c.num) IS NOT NULL THEN
                -- Her number is down: she waits for it rather than hear from a stranger.
                reason := 'number_unavailable'; RETURN;
            END IF;
            -- The gate checked the policy's hours already; only a number's own hours differ.
            _opening := CASE WHEN (_c.num).hours_start IS NULL THEN p_now
                             ELSE public.next_business_opening(public.number_policy(_c.num, p_policy), p_now) END;
            IF _opening <> p_now THEN
                next_at := least(next_at, _opening);
                CONTINUE;
            END IF;
            _full := CASE WHEN _c.day_claims >= _c.day_limit THEN 'day_full'
                          WHEN _c.hour_claims >= _c.hour_limit THEN 'hour_full' END;
            IF _full IS NULL AND (_c.day_claims IS NULL OR _c.hour_claims IS NULL) THEN
                PERFORM public._open_number_windows(_hour, _day);
            END IF;
            IF _full IS NULL THEN
                SELECT * INTO _full, attempts, number, instance
                  FROM public._claim_with_number_slots(p_row, p_job_id, p_now, p_address, (_c.num).id, _hour, _day,
                                                       _c.hour_limit, _c.day_limit, _pass = 2 OR _c.candidates = 1);
            END IF;
            _busy := _busy OR _full IS NOT DISTINCT FROM 'busy';
            _hour_full := _hour_full OR _full IS NOT DISTINCT FROM 'hour_full';
            _day_full := _day_full OR _full IS NOT DISTINCT FROM 'day_full';
            CONTINUE WHEN _full IS NOT NULL;
            IF (_c.num).first_used_at IS NULL THEN
                UPDATE public.whatsapp_numbers AS n SET first_used_at = p_now, updated_at = now()
                 WHERE n.id = (_c.num).id AND n.first_used_at IS NULL;
            END IF;
            number_id := (_c.num).id; next_at := NULL; RETURN;
        END LOOP;
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
