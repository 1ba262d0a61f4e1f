-- Outreach: counters, campaigns, delivery events, outbox/clientes/conversations columns.

------------------------------------------------------------
-- Tables
------------------------------------------------------------

-- Fixed-window counters of proactive claims (Sao Paulo local windows).
CREATE TABLE public.send_counters (
    window_kind  text NOT NULL CHECK (window_kind IN ('hour', 'day')),
    window_start timestamp NOT NULL,
    claims       integer NOT NULL DEFAULT 0 CHECK (claims >= 0),
    PRIMARY KEY (window_kind, window_start)
);

CREATE TABLE public.campanhas (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome       text NOT NULL UNIQUE,
    -- {"especialidades": [...], "regioes": [...], "tags": [...], "sem_contato_ha_dias": N}
    filtro     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(filtro) = 'object'),
    template   text NOT NULL CHECK (length(template) > 0),
    inicio     timestamptz,
    fim        timestamptz,
    status     text NOT NULL DEFAULT 'rascunho'
               CHECK (status IN ('rascunho', 'ativa', 'pausada', 'concluida', 'cancelada')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT campanhas_periodo CHECK (fim IS NULL OR inicio IS NULL OR fim > inicio)
);

-- Delivery status reported by Evolution (messages.update), kept even when
-- it arrives before the send is recorded.
CREATE TABLE public.delivery_events (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    evolution_message_id text NOT NULL,
    status               text NOT NULL,
    error_code           integer,
    remote_jid           text,
    received_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX delivery_events_message_idx ON public.delivery_events (evolution_message_id);

ALTER TABLE public.outbox
    ADD COLUMN campanha_id     bigint REFERENCES public.campanhas (id),
    ADD COLUMN dispatched_at   timestamptz,
    ADD COLUMN refusal         text,
    ADD COLUMN delivery_status text,
    ADD COLUMN delivered_at    timestamptz,
    ADD COLUMN read_at         timestamptz;
CREATE INDEX outbox_evolution_id_idx ON public.outbox (evolution_message_id) WHERE evolution_message_id IS NOT NULL;
CREATE INDEX outbox_campaign_idx ON public.outbox (campanha_id) WHERE campanha_id IS NOT NULL;
CREATE INDEX outbox_proactive_sent_idx ON public.outbox (cliente_id, sent_at)
    WHERE kind IN ('campaign', 'follow_up') AND state = 'sent';
CREATE UNIQUE INDEX outbox_one_follow_up_per_conversation ON public.outbox (conversation_id) WHERE kind = 'follow_up';

ALTER TABLE public.clientes
    ADD COLUMN bloqueado_em      timestamptz,
    ADD COLUMN bloqueio_motivo   text,
    ADD COLUMN ultimo_contato_em timestamptz;

ALTER TABLE public.conversations
    ADD COLUMN interesse_em  timestamptz,
    ADD COLUMN follow_up_em  timestamptz;

