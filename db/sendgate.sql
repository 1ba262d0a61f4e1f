-- Every outbound message passes ONE gate, claim_send_slot(), which decides
-- atomically whether it may go now and records the claim: pause,
-- environment guard, opt-out/blocked, business hours (America/Sao_Paulo),
-- hourly and daily caps for proactive messages, per-doctor cooldown,
-- per-conversation anti-loop cap for replies, and the WhatsApp number it
-- goes from. The policy and the numbers are data (db/sendpolicy.sql).
-- Refusals say why and when to try again.

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

------------------------------------------------------------
-- Choosing the number
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
-- The gate
------------------------------------------------------------

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
