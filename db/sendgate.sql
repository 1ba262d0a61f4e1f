-- Every outbound message passes ONE gate, claim_send_slot(), which decides
-- atomically whether it may go now and records the claim: pause,
-- environment guard, opt-out/blocked, business hours (America/Sao_Paulo),
-- hourly and daily caps for proactive messages, per-doctor cooldown,
-- per-conversation anti-loop cap for replies, and the WhatsApp number it
-- goes from (db/sendslots.sql). The policy and the numbers are data
-- (db/sendpolicy.sql). Refusals say why and when to try again.

------------------------------------------------------------
-- The gate's checks
------------------------------------------------------------

-- Why an outbox row cannot be claimed at all, or NULL: already sent, failed
-- for good, or claimed by another job. The same job may re-claim its own
-- claim: a retry after a crash before the HTTP call, so nothing went out.
CREATE OR REPLACE FUNCTION public._unclaimable(p_row public.outbox, p_job_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT CASE WHEN p_row.state = 'sent' THEN 'already_sent'
                WHEN p_row.state = 'failed' THEN 'failed'
                WHEN p_row.state = 'claimed' AND p_row.claimed_by_job IS DISTINCT FROM p_job_id
                THEN 'claimed_elsewhere' END;
$$;

-- Anti-loop: when a conversation already got reply_cap_per_hour answers in
-- the rolling hour, the moment the oldest of them leaves it; else NULL.
CREATE OR REPLACE FUNCTION public._reply_cap_until(p_conversation_id bigint, p_policy jsonb, p_now timestamptz)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT min(o.sent_at) + interval '1 hour'
      FROM (SELECT o2.sent_at FROM public.outbox AS o2
             WHERE o2.conversation_id = p_conversation_id AND o2.kind IN ('reply', 'human')
               AND o2.state = 'sent' AND o2.sent_at > p_now - interval '1 hour'
             ORDER BY o2.sent_at DESC
             LIMIT (p_policy ->> 'reply_cap_per_hour')::integer) AS o
    HAVING count(*) >= (p_policy ->> 'reply_cap_per_hour')::integer;
$$;

-- Why outbox row p_row may not go now, before any number or slot is looked
-- at (reason NULL: nothing against it). settle says what becomes of the
-- row: 'failed' for good (opted out, not on WhatsApp, blocked, the doctor
-- replied), 'queued' back to its campaign (inactive), NULL to wait (guard,
-- paused, reply_loop_cap until next_at).
CREATE OR REPLACE FUNCTION public._send_refusal(
    p_row public.outbox, p_cliente public.clientes, p_app_env text, p_project_ref text, p_policy jsonb,
    p_now timestamptz, OUT reason text, OUT next_at timestamptz, OUT settle text
)
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _proactive boolean := p_row.kind IN ('campaign', 'follow_up');
BEGIN
    IF NOT coalesce(public.environment_guard_ok(p_app_env, p_project_ref), false) THEN
        reason := 'guard';
    ELSIF public.julia_is_paused() THEN
        reason := 'paused';
    ELSIF _proactive AND public.person_opted_out(p_cliente.id) THEN
        -- Any address of this person opted out (db/identity.sql).
        reason := 'opted_out'; settle := 'failed';
    ELSIF _proactive AND p_cliente.sem_whatsapp_em IS NOT NULL THEN
        -- Evolution said this number is not on WhatsApp: not tried again.
        reason := 'not_on_whatsapp'; settle := 'failed';
    ELSIF _proactive AND p_cliente.bloqueado_em IS NOT NULL THEN
        reason := 'blocked'; settle := 'failed';
    ELSIF p_row.kind = 'follow_up' AND EXISTS (
              SELECT 1 FROM public.conversations AS c
               WHERE c.id = p_row.conversation_id AND c.last_inbound_at > p_row.created_at) THEN
        -- The doctor wrote back since: the follow-up is no longer due.
        reason := 'doctor_replied'; settle := 'failed';
    ELSIF _proactive AND p_row.campanha_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM public.campanhas AS k WHERE k.id = p_row.campanha_id AND k.status = 'ativa'
                             AND (k.fim IS NULL OR k.fim > p_now)) THEN
        -- A paused or finished campaign sends nothing more.
        reason := 'campaign_inactive'; settle := 'queued';
    ELSIF NOT _proactive AND p_row.conversation_id IS NOT NULL THEN
        next_at := public._reply_cap_until(p_row.conversation_id, p_policy, p_now);
        reason := CASE WHEN next_at IS NOT NULL THEN 'reply_loop_cap' END;
    END IF;
END;
$$;

-- The number a reply, an agent's message or an alert goes from, for the
-- gate: the one a re-claim already took, else the conversation's (or the
-- doctor's, or the least busy); reason no_number or number_unavailable when
-- it cannot go.
CREATE OR REPLACE FUNCTION public._gate_reply_number(
    p_row public.outbox, p_cliente public.clientes, p_reclaim boolean, OUT number_id bigint, OUT reason text
)
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _id bigint;
    _number public.whatsapp_numbers;
BEGIN
    -- Replies go from the number the doctor wrote to; alerts from any available one.
    _id := CASE WHEN p_reclaim THEN p_row.number_id ELSE public._reply_number(coalesce(
               (SELECT c.number_id FROM public.conversations AS c WHERE c.id = p_row.conversation_id),
               p_cliente.number_id)) END;
    SELECT * INTO _number FROM public.whatsapp_numbers AS n WHERE n.id = _id;
    number_id := _id;
    IF _id IS NULL THEN
        reason := 'no_number';
    ELSIF public.number_unavailable(_number) IS NOT NULL THEN
        reason := 'number_unavailable';
    END IF;
END;
$$;

-- The proactive part of the gate: business hours, the address WhatsApp
-- confirmed (none yet: 'verify_number', the send job checks it and claims
-- again, no slot taken), the doctor's cooldown, then the number and its
-- slots. A re-claim keeps the number (and the slots) it took the first time.
-- When a number's slots were taken the row is claimed already (attempts,
-- number and instance are set): the slots are the claim's last writes.
CREATE OR REPLACE FUNCTION public._gate_proactive(
    p_row public.outbox, p_cliente public.clientes, p_job_id bigint, p_policy jsonb, p_now timestamptz,
    p_reclaim boolean, OUT number_id bigint, OUT address text, OUT reason text, OUT next_at timestamptz,
    OUT attempts integer, OUT number text, OUT instance text
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cooldown interval := make_interval(hours => (p_policy ->> 'cooldown_hours')::integer);
    _last_touch timestamptz;
    _choice record;
BEGIN
    address := public.send_address(p_row.cliente_id);
    IF public.next_business_opening(p_policy, p_now) <> p_now THEN
        reason := 'outside_hours'; next_at := public.next_business_opening(p_policy, p_now);
        RETURN;
    ELSIF address IS NULL THEN
        reason := 'verify_number'; RETURN;
    END IF;
    -- Messages in flight count too: two claims a second apart are two touches.
    SELECT max(coalesce(o.sent_at, o.claimed_at)) INTO _last_touch FROM public.outbox AS o
     WHERE o.cliente_id = p_row.cliente_id AND o.kind IN ('campaign', 'follow_up')
       AND o.state IN ('sent', 'claimed') AND o.id <> p_row.id;
    IF _last_touch > p_now - _cooldown THEN
        reason := 'cooldown'; next_at := _last_touch + _cooldown;
    ELSIF p_reclaim THEN
        number_id := p_row.number_id;
    ELSIF EXISTS (SELECT 1 FROM public.whatsapp_numbers) THEN
        SELECT * INTO number_id, reason, next_at, attempts, number, instance
          FROM public._claim_proactive_number(p_row, p_job_id, address, p_cliente.number_id, p_policy, p_now);
    ELSE
        SELECT * INTO _choice FROM public._take_global_slots(p_policy, p_now);
        reason := _choice.reason; next_at := _choice.next_at;
    END IF;
END;
$$;

-- A refused send that will not wait: failed for good, or queued back to
-- its campaign (p_settle), with its reason.
CREATE OR REPLACE FUNCTION public._settle_refused_send(p_outbox_id bigint, p_settle text, p_reason text)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    UPDATE public.outbox AS o
       SET state = p_settle, refusal = p_reason, updated_at = now(),
           dispatched_at = CASE WHEN p_settle = 'queued' THEN NULL ELSE o.dispatched_at END
     WHERE o.id = p_outbox_id;
$$;

-- A refused send waits: the row is deferred with its reason and, when it
-- is known, the moment it could go (not_before). No job is deferred for it
-- here: a procrastinate job's insert NOTIFYs, and a notifying commit takes
-- a cluster-wide lock held until it is durable (every refusal would queue
-- on every other). The periodic sweep re-queues the row with its send job
-- once due (release_due_sends, every minute); number_unavailable and
-- no_number also go back when a number comes back (resume, connection open).
CREATE OR REPLACE FUNCTION public._defer_refused_send(p_outbox_id bigint, p_reason text, p_next_at timestamptz)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    UPDATE public.outbox
       SET state = 'deferred', not_before = p_next_at, refusal = p_reason, claimed_by_job = NULL, updated_at = now()
     WHERE id = p_outbox_id;
$$;

-- The claim itself: the row is job p_job_id's (one more attempt), going
-- from number p_number_id and, for a proactive message, to p_address (the
-- form WhatsApp confirmed for her), whose number she now knows: her next
-- messages come from it. Returns what the send needs.
CREATE OR REPLACE FUNCTION public._take_claim(
    p_row public.outbox, p_job_id bigint, p_now timestamptz, p_address text, p_number_id bigint,
    OUT attempts integer, OUT number text, OUT instance text
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF p_address IS NOT NULL AND p_number_id IS NOT NULL THEN
        UPDATE public.clientes AS c SET number_id = p_number_id
         WHERE c.id = p_row.cliente_id AND c.number_id IS DISTINCT FROM p_number_id;
    END IF;
    UPDATE public.outbox AS o
       SET state = 'claimed', claimed_by_job = p_job_id, claimed_at = p_now, refusal = NULL,
           attempts = o.attempts + 1, number = coalesce(p_address, o.number), number_id = p_number_id,
           updated_at = now()
     WHERE o.id = p_row.id
    RETURNING o.attempts, o.number INTO attempts, number;
    SELECT n.instance INTO instance FROM public.whatsapp_numbers AS n WHERE n.id = p_number_id;
END;
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
-- guard, paused, opted_out, not_on_whatsapp, blocked, doctor_replied,
-- campaign_inactive, reply_loop_cap, number_unavailable, no_number,
-- outside_hours, verify_number, cooldown, hourly_limit, daily_limit. A
-- deferral that knows when the message could go (next_at) records it
-- (not_before): the periodic sweep sends the row back to the gate then.
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
    _row public.outbox;
    _cliente public.clientes;
    _proactive boolean;
    _reclaim boolean;
    _settle text;
    _address text;
    _number_id bigint;
    _g record;
BEGIN
    claimed := false;
    SELECT * INTO _row FROM public.outbox AS o WHERE o.id = p_outbox_id FOR UPDATE;
    IF NOT FOUND THEN
        reason := 'not_found'; RETURN;
    END IF;
    number := _row.number; texto := _row.texto; attempts := _row.attempts; media := _row.media;
    conversation_id := _row.conversation_id; cliente_id := _row.cliente_id;
    reason := public._unclaimable(_row, p_job_id);
    IF reason IS NOT NULL THEN
        RETURN;
    END IF;
    _proactive := _row.kind IN ('campaign', 'follow_up');
    -- A re-claim by the same job (retry after a crash) passes every check
    -- again, but its window slots were counted (and its number chosen) the first time.
    _reclaim := _row.state = 'claimed';
    -- One doctor's proactive claims run one at a time (cooldown).
    IF _proactive THEN
        SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _row.cliente_id FOR UPDATE;
    ELSE
        SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = _row.cliente_id;
    END IF;
    SELECT * INTO reason, next_at, _settle FROM public._send_refusal(_row, _cliente, p_app_env, p_project_ref, _p, _now);
    IF _settle IS NOT NULL THEN
        PERFORM public._settle_refused_send(p_outbox_id, _settle, reason);
        RETURN;
    ELSIF reason IS NULL AND _proactive THEN
        SELECT * INTO _g FROM public._gate_proactive(_row, _cliente, p_job_id, _p, _now, _reclaim);
        _number_id := _g.number_id; _address := _g.address; reason := _g.reason; next_at := _g.next_at;
        IF reason = 'verify_number' THEN
            number := coalesce(_cliente.telefone, _row.number);
            RETURN;
        ELSIF _g.attempts IS NOT NULL THEN
            -- Claimed with the number's slots (their counter rows are locked until commit).
            SELECT true, 'claimed', _g.attempts, _g.number, _g.instance INTO claimed, reason, attempts, number, instance;
            RETURN;
        END IF;
    ELSIF reason IS NULL AND EXISTS (SELECT 1 FROM public.whatsapp_numbers) THEN
        SELECT * INTO _number_id, reason FROM public._gate_reply_number(_row, _cliente, _reclaim);
    END IF;
    IF reason IS NOT NULL THEN
        PERFORM public._defer_refused_send(p_outbox_id, reason, next_at);
        RETURN;
    END IF;

    SELECT * INTO attempts, number, instance
      FROM public._take_claim(_row, p_job_id, _now, CASE WHEN _proactive THEN _address END, _number_id);
    claimed := true; reason := 'claimed';
END;
$$;
