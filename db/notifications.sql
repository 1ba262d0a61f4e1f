-- Notifications for operators (Slack), recorded by data changes and sent by
-- a job on the 'humans' queue; critical ones also alert the manager's
-- WhatsApp, a few an hour at most.

------------------------------------------------------------
-- Notifications
------------------------------------------------------------

-- Record a notification for operators and defer its job; returns its id,
-- or NULL when one with the same dedupe key exists. guard_failure and
-- job_failure and number_paused are critical: they also alert the manager's
-- WhatsApp (from another number: a paused one sends nothing).
CREATE OR REPLACE FUNCTION public.notify_humans(p_kind text, p_payload jsonb, p_dedupe_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF p_kind IS NULL OR p_kind !~ '^[a-z][a-z_]{0,62}$' THEN
        RAISE EXCEPTION 'notify_humans: invalid kind %', quote_literal(coalesce(p_kind, 'NULL'))
            USING ERRCODE = 'JU400';
    END IF;
    INSERT INTO public.notifications (kind, payload, critical, dedupe_key)
    VALUES (p_kind, coalesce(p_payload, '{}'::jsonb), p_kind IN ('guard_failure', 'job_failure', 'number_paused'), p_dedupe_key)
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id INTO _id;
    IF _id IS NOT NULL THEN
        PERFORM public.defer_notification(_id);
    END IF;
    RETURN _id;
END;
$$;

-- Take a pending notification for sending (counts the attempt), with what
-- its text needs: the Chatwoot conversation and the external_handoff flag.
CREATE OR REPLACE FUNCTION public.claim_notification(
    p_notification_id bigint,
    OUT known boolean, OUT state text, OUT kind text, OUT payload jsonb, OUT critical boolean,
    OUT attempts integer, OUT chatwoot_conversation_id bigint, OUT external_handoff boolean
)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _row public.notifications;
BEGIN
    UPDATE public.notifications AS n SET attempts = n.attempts + 1
     WHERE n.id = p_notification_id AND n.state = 'pending'
    RETURNING * INTO _row;
    IF NOT FOUND THEN
        SELECT * INTO _row FROM public.notifications AS n WHERE n.id = p_notification_id;
    END IF;
    known := _row.id IS NOT NULL;
    state := _row.state; kind := _row.kind; payload := _row.payload; critical := _row.critical;
    attempts := _row.attempts;
    SELECT cc.chatwoot_conversation_id INTO chatwoot_conversation_id FROM public.chatwoot_conversations AS cc
     WHERE cc.conversation_id = (_row.payload ->> 'conversation_id')::bigint;
    external_handoff := public.feature_enabled('external_handoff');
END;
$$;

-- Record the outcome of a notification: sent, skipped (Slack not
-- configured), failed (for good) or pending (to retry).
CREATE OR REPLACE FUNCTION public.finish_notification(p_notification_id bigint, p_state text, p_error text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF p_state NOT IN ('sent', 'skipped', 'failed', 'pending') THEN
        RAISE EXCEPTION 'finish_notification: invalid state % for notification %', quote_literal(p_state),
            p_notification_id USING ERRCODE = 'JU400';
    END IF;
    UPDATE public.notifications
       SET state = p_state, last_error = left(p_error, 1000),
           sent_at = CASE WHEN p_state = 'sent' THEN clock_timestamp() END
     WHERE id = p_notification_id AND state = 'pending';
END;
$$;

------------------------------------------------------------
-- What operators hear about
------------------------------------------------------------

-- Trigger: a change operators hear about, one notification per event with
-- its own dedupe key: Julia paused or resumed (not the first state written
-- by bootstrap), the send gate refused a message because the environment
-- guard failed (at most one an hour), a reply or send job failed for good
-- (one per task an hour), a campaign finished (once). Each trigger's WHEN
-- says which rows; TG_TABLE_NAME says which event.
CREATE OR REPLACE FUNCTION public.notify_on_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _hour text := to_char(date_trunc('hour', clock_timestamp() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24');
BEGIN
    CASE TG_TABLE_NAME
        WHEN 'julia_status' THEN
            IF EXISTS (SELECT 1 FROM public.julia_status AS j WHERE j.id < NEW.id) THEN
                PERFORM public.notify_humans(
                    CASE NEW.status WHEN 'pausado' THEN 'pause' ELSE 'resume' END,
                    jsonb_build_object('motivo', NEW.motivo, 'via', NEW.alterado_via),
                    'julia_status:' || NEW.id);
            END IF;
        WHEN 'outbox' THEN
            PERFORM public.notify_humans(
                'guard_failure',
                jsonb_build_object('outbox_id', NEW.id, 'detail',
                                   'environment markers disagree with this deploy: nothing is being sent'),
                'guard_failure:' || _hour);
        WHEN 'job_failures' THEN
            PERFORM public.notify_humans(
                'job_failure',
                jsonb_build_object('task', NEW.task_name, 'conversation_id', NEW.conversation_id,
                                   'outbox_id', NEW.outbox_id, 'classification', NEW.classification,
                                   'error', left(NEW.error, 300)),
                'job_failure:' || NEW.task_name || ':' || _hour);
        WHEN 'campanhas' THEN
            PERFORM public.notify_humans(
                'campaign_finished',
                coalesce((SELECT to_jsonb(m) FROM public.campaign_metrics AS m WHERE m.campanha_id = NEW.id),
                         jsonb_build_object('campanha_id', NEW.id, 'campanha', NEW.nome)),
                'campaign_finished:' || NEW.id);
    END CASE;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS julia_status_notify ON public.julia_status;
CREATE TRIGGER julia_status_notify
    AFTER INSERT ON public.julia_status
    FOR EACH ROW EXECUTE FUNCTION public.notify_on_change();

DROP TRIGGER IF EXISTS outbox_guard_refusal_notify ON public.outbox;
CREATE TRIGGER outbox_guard_refusal_notify
    AFTER UPDATE OF refusal ON public.outbox
    FOR EACH ROW WHEN (NEW.refusal = 'guard' AND OLD.refusal IS DISTINCT FROM 'guard')
    EXECUTE FUNCTION public.notify_on_change();

DROP TRIGGER IF EXISTS job_failures_notify ON public.job_failures;
CREATE TRIGGER job_failures_notify
    AFTER INSERT ON public.job_failures
    FOR EACH ROW EXECUTE FUNCTION public.notify_on_change();

DROP TRIGGER IF EXISTS campanhas_finished_notify ON public.campanhas;
CREATE TRIGGER campanhas_finished_notify
    AFTER UPDATE OF status ON public.campanhas
    FOR EACH ROW WHEN (NEW.status = 'concluida' AND OLD.status IS DISTINCT FROM 'concluida')
    EXECUTE FUNCTION public.notify_on_change();

------------------------------------------------------------
-- Manager alerts (WhatsApp, rate-limited)
------------------------------------------------------------

-- How many WhatsApp alerts the manager gets per hour at most
-- (app_settings 'manager_alerts_per_hour', default 3).
CREATE OR REPLACE FUNCTION public.manager_alerts_per_hour()
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT public.setting_int('manager_alerts_per_hour', 3);
$$;

-- Queue a WhatsApp alert to the manager for a notification, once, if this
-- hour's budget allows (guarded upsert). Returns the outbox id, or NULL
-- when the hour's limit is reached.
CREATE OR REPLACE FUNCTION public.claim_manager_alert(p_notification_id bigint, p_number text, p_texto text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _number text := regexp_replace(coalesce(p_number, ''), '[^0-9]', '', 'g');
    _key text := 'alert:' || p_notification_id;
    _id bigint;
    _sent integer;
BEGIN
    IF _number !~ '^[0-9]{8,15}$' THEN
        RAISE EXCEPTION 'claim_manager_alert: % is not a WhatsApp number (notification %)',
            quote_literal(coalesce(p_number, '')), p_notification_id USING ERRCODE = 'JU400';
    END IF;
    SELECT o.id INTO _id FROM public.outbox AS o WHERE o.idempotency_key = _key;
    IF FOUND THEN
        RETURN _id;  -- a retried job: the alert is already queued
    END IF;
    INSERT INTO public.manager_alert_windows AS w (window_start, sent)
    VALUES (date_trunc('hour', clock_timestamp()), 1)
    ON CONFLICT (window_start) DO UPDATE SET sent = w.sent + 1
     WHERE w.sent < public.manager_alerts_per_hour()
    RETURNING w.sent INTO _sent;
    IF _sent IS NULL OR _sent > public.manager_alerts_per_hour() THEN
        RETURN NULL;
    END IF;
    INSERT INTO public.outbox (idempotency_key, kind, number, texto)
    VALUES (_key, 'alert', _number, p_texto)
    RETURNING id INTO _id;
    PERFORM public.defer_send(_id);
    RETURN _id;
END;
$$;
