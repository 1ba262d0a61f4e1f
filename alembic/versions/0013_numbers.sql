-- The WhatsApp numbers Julia sends from (one Evolution instance each).
-- NULL caps, warm-up and hours fall back to the policy (send_policy_settings).
CREATE TABLE IF NOT EXISTS public.whatsapp_numbers (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance             text NOT NULL UNIQUE CHECK (instance ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
    phone                text,
    state                text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'close', 'connecting')),
    state_reason         text,
    state_at             timestamptz,
    paused               boolean NOT NULL DEFAULT false,
    pause_reason         text,
    paused_at            timestamptz,
    hour_limit           integer CHECK (hour_limit >= 0),
    day_limit            integer CHECK (day_limit >= 0),
    warmup_start_per_day integer CHECK (warmup_start_per_day >= 0),
    warmup_days          integer NOT NULL DEFAULT 0 CHECK (warmup_days >= 0),
    hours_start          time,
    hours_end            time,
    first_used_at        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((hours_start IS NULL) = (hours_end IS NULL))
);

-- The one send policy every process enforces (a single row).
CREATE TABLE IF NOT EXISTS public.send_policy_settings (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    policy     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_via text NOT NULL DEFAULT 'bootstrap'
);

-- Audit of policy and number changes (who, how, why), like julia_status.
CREATE TABLE IF NOT EXISTS public.send_policy_changes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject    text NOT NULL,
    change     jsonb NOT NULL,
    motivo     text,
    via        text NOT NULL CHECK (via IN ('slack', 'sistema', 'api', 'manual', 'bootstrap')),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Proactive claims per number and window (Sao Paulo local time).
CREATE TABLE IF NOT EXISTS public.number_send_counters (
    number_id    bigint NOT NULL REFERENCES public.whatsapp_numbers (id) ON DELETE CASCADE,
    window_kind  text NOT NULL CHECK (window_kind IN ('hour', 'day')),
    window_start timestamp NOT NULL,
    claims       integer NOT NULL DEFAULT 0 CHECK (claims >= 0),
    PRIMARY KEY (number_id, window_kind, window_start)
);

-- Signs a number is in trouble (463, not on WhatsApp, blocked).
CREATE TABLE IF NOT EXISTS public.number_health_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number_id  bigint NOT NULL REFERENCES public.whatsapp_numbers (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('error_463', 'delivery_error', 'not_on_whatsapp', 'blocked')),
    outbox_id  bigint,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS number_health_events_recent_idx ON public.number_health_events (number_id, created_at);

-- Webhooks from an Evolution instance Julia does not know: kept, never answered.
CREATE TABLE IF NOT EXISTS public.unknown_instances (
    instance      text PRIMARY KEY,
    first_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    events        integer NOT NULL DEFAULT 1,
    last_event    text,
    last_payload  jsonb
);

ALTER TABLE public.outbox ADD COLUMN IF NOT EXISTS number_id bigint REFERENCES public.whatsapp_numbers (id);
ALTER TABLE public.conversations ADD COLUMN IF NOT EXISTS number_id bigint REFERENCES public.whatsapp_numbers (id);
ALTER TABLE public.clientes ADD COLUMN IF NOT EXISTS number_id bigint REFERENCES public.whatsapp_numbers (id);
ALTER TABLE public.delivery_events ADD COLUMN IF NOT EXISTS instance text;
CREATE INDEX IF NOT EXISTS outbox_number_idx ON public.outbox (number_id, state) WHERE number_id IS NOT NULL;

-- Data fix: the number an existing deployment already talks through.
INSERT INTO public.whatsapp_numbers (instance, first_used_at)
SELECT a.message -> 'message' ->> 'instance', min(a.enqueued_at) OVER ()
  FROM pgmq.a_inbound AS a
 WHERE a.message -> 'message' ->> 'instance' ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'
   AND NOT EXISTS (SELECT 1 FROM public.whatsapp_numbers)
 ORDER BY a.msg_id DESC
 LIMIT 1
ON CONFLICT (instance) DO NOTHING;

-- Its counters: the global windows still current (no fresh quota at deploy).
INSERT INTO public.number_send_counters (number_id, window_kind, window_start, claims)
SELECT n.id, c.window_kind, c.window_start, c.claims
  FROM public.send_counters AS c
  CROSS JOIN (SELECT id FROM public.whatsapp_numbers ORDER BY id LIMIT 1) AS n
 WHERE (SELECT count(*) FROM public.whatsapp_numbers) = 1
   AND c.window_start >= date_trunc('day', clock_timestamp() AT TIME ZONE 'America/Sao_Paulo')
ON CONFLICT DO NOTHING;

-- Outbox rows, conversations and doctors so far belong to that number.
UPDATE public.conversations SET number_id = (SELECT id FROM public.whatsapp_numbers ORDER BY id LIMIT 1)
 WHERE number_id IS NULL AND (SELECT count(*) FROM public.whatsapp_numbers) = 1;
UPDATE public.clientes AS cl SET number_id = (SELECT id FROM public.whatsapp_numbers ORDER BY id LIMIT 1)
 WHERE cl.number_id IS NULL AND (SELECT count(*) FROM public.whatsapp_numbers) = 1
   AND EXISTS (SELECT 1 FROM public.interacoes AS i WHERE i.cliente_id = cl.id);
