-- Core tables of Julia: doctors, conversations, messages, outbox, settings,
-- feature flags and pause state. Names from the seed stay Portuguese.

------------------------------------------------------------
-- Settings, flags, pause state
------------------------------------------------------------

-- Environment markers and other operator settings (key/value).
CREATE TABLE public.app_settings (
    key         text PRIMARY KEY,
    value       text NOT NULL,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Feature flags; value is jsonb such as {"enabled": false}.
CREATE TABLE public.feature_flags (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL DEFAULT '{"enabled": false}'::jsonb,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Append-only pause history; the newest row is the state, no row = active.
CREATE TABLE public.julia_status (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status       text NOT NULL CHECK (status IN ('ativo', 'pausado')),
    motivo       text NOT NULL,
    alterado_via text NOT NULL CHECK (alterado_via IN ('slack', 'sistema', 'api', 'manual')),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX julia_status_newest_idx ON public.julia_status (id DESC);

------------------------------------------------------------
-- Doctors and conversations
------------------------------------------------------------

-- A doctor (or anyone who writes to the company number).
CREATE TABLE public.clientes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    telefone    text UNIQUE CHECK (telefone ~ '^[0-9]{8,15}$'),
    nome        text,
    lid         text UNIQUE CHECK (lid LIKE '%@lid'),
    opt_out     boolean NOT NULL DEFAULT false,
    opt_out_em  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clientes_has_address CHECK (telefone IS NOT NULL OR lid IS NOT NULL)
);

-- A conversation with one doctor; at most one open at a time.
CREATE TABLE public.conversations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cliente_id       bigint NOT NULL REFERENCES public.clientes (id),
    status           text NOT NULL DEFAULT 'aberta' CHECK (status IN ('aberta', 'encerrada')),
    reply_jid        text NOT NULL,
    last_inbound_at  timestamptz,
    last_outbound_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX conversations_one_open_per_cliente
    ON public.conversations (cliente_id) WHERE status = 'aberta';

-- One row per WhatsApp message in or out.
CREATE TABLE public.interacoes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id bigint NOT NULL REFERENCES public.conversations (id),
    cliente_id      bigint NOT NULL REFERENCES public.clientes (id),
    message_id      text NOT NULL,
    direcao         text NOT NULL CHECK (direcao IN ('entrada', 'saida')),
    autor           text NOT NULL CHECK (autor IN ('medico', 'julia', 'humano')),
    tipo            text NOT NULL DEFAULT 'texto',
    texto           text,
    remote_jid      text,
    payload         jsonb,
    message_at      timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT interacoes_message_id_key UNIQUE (message_id)
);
CREATE INDEX interacoes_conversation_idx ON public.interacoes (conversation_id, id DESC);
CREATE INDEX interacoes_cliente_idx ON public.interacoes (cliente_id);

------------------------------------------------------------
-- Outbox: every outbound message is a row before it is sent
------------------------------------------------------------

CREATE TABLE public.outbox (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key      text NOT NULL UNIQUE,
    kind                 text NOT NULL CHECK (kind IN ('reply', 'campaign', 'follow_up', 'human', 'alert')),
    conversation_id      bigint REFERENCES public.conversations (id),
    cliente_id           bigint REFERENCES public.clientes (id),
    number               text NOT NULL,
    texto                text NOT NULL CHECK (length(texto) > 0),
    state                text NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'claimed', 'sent', 'failed', 'deferred')),
    reply_to_id          bigint REFERENCES public.interacoes (id),
    attempts             integer NOT NULL DEFAULT 0,
    claimed_by_job       bigint,
    claimed_at           timestamptz,
    not_before           timestamptz,
    evolution_message_id text,
    last_error           text,
    sent_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_pending_idx ON public.outbox (state) WHERE state IN ('queued', 'deferred', 'claimed');
CREATE INDEX outbox_conversation_idx ON public.outbox (conversation_id);

------------------------------------------------------------
-- Inbound messages that could not be processed (poison)
------------------------------------------------------------

CREATE TABLE public.inbound_failures (
    msg_id      bigint PRIMARY KEY,
    read_ct     integer NOT NULL,
    error       text NOT NULL,
    message     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
