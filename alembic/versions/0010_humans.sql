-- Humans in the loop: Chatwoot mirror, notifications, manager alerts, Slack replay protection.

------------------------------------------------------------
-- Tables
------------------------------------------------------------

-- The Chatwoot contact of a doctor (created once, reused by his conversations).
CREATE TABLE IF NOT EXISTS public.chatwoot_contatos (
    cliente_id  bigint PRIMARY KEY REFERENCES public.clientes (id) ON DELETE CASCADE,
    contact_id  bigint NOT NULL,
    source_id   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The Chatwoot conversation (display id, as the API and webhooks use it) of a conversation.
CREATE TABLE IF NOT EXISTS public.chatwoot_conversas (
    conversation_id          bigint PRIMARY KEY REFERENCES public.conversations (id) ON DELETE CASCADE,
    chatwoot_conversation_id bigint NOT NULL UNIQUE,
    contact_id               bigint NOT NULL,
    created_at               timestamptz NOT NULL DEFAULT now()
);

-- Mirror state of each stored message: pending -> sending -> synced (or
-- skipped when Chatwoot is not configured). 'sending' survives a crash
-- between the POST and its record; the next run looks the message up first.
CREATE TABLE IF NOT EXISTS public.chatwoot_mensagens (
    interacao_id        bigint PRIMARY KEY REFERENCES public.interacoes (id) ON DELETE CASCADE,
    conversation_id     bigint NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
    state               text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sending', 'synced', 'skipped')),
    chatwoot_message_id bigint,
    attempts            integer NOT NULL DEFAULT 0,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    synced_at           timestamptz
);
CREATE INDEX IF NOT EXISTS chatwoot_mensagens_pending_idx
    ON public.chatwoot_mensagens (conversation_id, interacao_id) WHERE state IN ('pending', 'sending');
CREATE UNIQUE INDEX IF NOT EXISTS chatwoot_mensagens_message_idx
    ON public.chatwoot_mensagens (chatwoot_message_id) WHERE chatwoot_message_id IS NOT NULL;

-- Handoff and hand-back to show in Chatwoot (private note, status), in order.
CREATE TABLE IF NOT EXISTS public.chatwoot_eventos (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('handoff', 'handback')),
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    done_at         timestamptz
);
CREATE INDEX IF NOT EXISTS chatwoot_eventos_pending_idx
    ON public.chatwoot_eventos (conversation_id, id) WHERE state = 'pending';

-- Agents' Chatwoot messages relayed to the doctor: one outbox row per Chatwoot message id.
CREATE TABLE IF NOT EXISTS public.chatwoot_agent_messages (
    chatwoot_message_id      bigint PRIMARY KEY,
    chatwoot_conversation_id bigint NOT NULL,
    conversation_id          bigint NOT NULL REFERENCES public.conversations (id) ON DELETE CASCADE,
    outbox_id                bigint NOT NULL REFERENCES public.outbox (id),
    created_at               timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS chatwoot_agent_messages_conversation_idx
    ON public.chatwoot_agent_messages (conversation_id);

-- Notifications for operators (Slack; critical ones also to the manager's WhatsApp).
CREATE TABLE IF NOT EXISTS public.notificacoes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,62}$'),
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    critical    boolean NOT NULL DEFAULT false,
    dedupe_key  text UNIQUE,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'skipped', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at     timestamptz
);
CREATE INDEX IF NOT EXISTS notificacoes_pending_idx ON public.notificacoes (id) WHERE state = 'pending';

-- Manager alerts per hour window (guarded upsert: never above the limit).
CREATE TABLE IF NOT EXISTS public.manager_alert_windows (
    window_start timestamptz PRIMARY KEY,
    sent         integer NOT NULL CHECK (sent >= 0)
);

-- Slack request signatures seen recently: a second request with one is a replay.
CREATE TABLE IF NOT EXISTS public.slack_requests (
    signature  text PRIMARY KEY,
    request_ts bigint NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS slack_requests_seen_idx ON public.slack_requests (seen_at);

