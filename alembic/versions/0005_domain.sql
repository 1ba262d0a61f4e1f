-- The recruiter's domain: specialties, hospitals, shifts (vagas), what Julia
-- knows (conhecimento_julia), the rules she follows (diretrizes), versioned
-- prompts, and per-conversation metrics. Names from the seed.

------------------------------------------------------------
-- Text normalization
------------------------------------------------------------

-- Lower-case, unaccented, single-spaced text for alias matching.
-- unaccent's two-argument form names its dictionary, so this is immutable.
CREATE OR REPLACE FUNCTION public.normalize_text(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
    SELECT nullif(regexp_replace(lower(extensions.unaccent('extensions.unaccent'::regdictionary, coalesce(p_text, ''))),
                                 '\s+', ' ', 'g'), '');
$$;

-- Portuguese full-text search that ignores accents ("plantão" = "plantao").
DO $$
BEGIN
    IF to_regclass('public.portuguese_unaccent') IS NULL
       AND NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'portuguese_unaccent'
                          AND cfgnamespace = 'public'::regnamespace) THEN
        CREATE TEXT SEARCH CONFIGURATION public.portuguese_unaccent (COPY = pg_catalog.portuguese);
        ALTER TEXT SEARCH CONFIGURATION public.portuguese_unaccent
            ALTER MAPPING FOR hword, hword_part, word WITH extensions.unaccent, pg_catalog.portuguese_stem;
    END IF;
END $$;

------------------------------------------------------------
-- Reference data
------------------------------------------------------------

CREATE TABLE public.especialidades (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.especialidades_alias (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    especialidade_id bigint NOT NULL REFERENCES public.especialidades (id) ON DELETE CASCADE,
    alias            text NOT NULL,
    alias_norm       text GENERATED ALWAYS AS (public.normalize_text(alias)) STORED UNIQUE
);

CREATE TABLE public.hospitais (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome       text NOT NULL UNIQUE,
    cidade     text NOT NULL,
    regiao     text NOT NULL,
    endereco   text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.hospitais_alias (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hospital_id bigint NOT NULL REFERENCES public.hospitais (id) ON DELETE CASCADE,
    alias       text NOT NULL,
    alias_norm  text GENERATED ALWAYS AS (public.normalize_text(alias)) STORED UNIQUE
);

CREATE TABLE public.setores (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome text NOT NULL UNIQUE
);

CREATE TABLE public.periodos (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome        text NOT NULL UNIQUE,
    hora_inicio time,
    hora_fim    time
);

CREATE TABLE public.tipos_vaga (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome text NOT NULL UNIQUE
);

CREATE TABLE public.formas_recebimento (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome text NOT NULL UNIQUE
);

------------------------------------------------------------
-- Shifts
------------------------------------------------------------

CREATE TABLE public.vagas (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hospital_id          bigint NOT NULL REFERENCES public.hospitais (id),
    especialidade_id     bigint NOT NULL REFERENCES public.especialidades (id),
    setor_id             bigint REFERENCES public.setores (id),
    periodo_id           bigint NOT NULL REFERENCES public.periodos (id),
    tipo_vaga_id         bigint REFERENCES public.tipos_vaga (id),
    forma_recebimento_id bigint REFERENCES public.formas_recebimento (id),
    data                 date NOT NULL,
    valor                numeric(10, 2) NOT NULL CHECK (valor >= 0),
    status               text NOT NULL DEFAULT 'aberta'
                         CHECK (status IN ('aberta', 'reservada', 'preenchida', 'cancelada')),
    reservada_por        bigint REFERENCES public.clientes (id),
    reservada_em         timestamptz,
    observacoes          text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT vagas_reserva_consistente CHECK ((status = 'reservada') = (reservada_por IS NOT NULL) OR status = 'preenchida')
);
CREATE INDEX vagas_abertas_idx ON public.vagas (especialidade_id, data) WHERE status = 'aberta';
CREATE INDEX vagas_hospital_idx ON public.vagas (hospital_id);

------------------------------------------------------------
-- Doctors: profile columns
------------------------------------------------------------

ALTER TABLE public.clientes
    ADD COLUMN crm              text,
    ADD COLUMN especialidade_id bigint REFERENCES public.especialidades (id),
    ADD COLUMN regiao           text,
    ADD COLUMN cidade           text,
    ADD COLUMN preferencias     jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN tags             text[] NOT NULL DEFAULT '{}',
    ADD COLUMN opt_out_motivo   text;

------------------------------------------------------------
-- Conversations: handoff and human takeover
------------------------------------------------------------

ALTER TABLE public.conversations
    ADD COLUMN handoff_ativo   boolean NOT NULL DEFAULT false,
    ADD COLUMN handoff_motivo  text,
    ADD COLUMN handoff_em      timestamptz,
    -- A human typed on the company phone: Julia stays quiet until then.
    ADD COLUMN julia_pausada_ate timestamptz;

------------------------------------------------------------
-- Knowledge, rules, prompts
------------------------------------------------------------

CREATE TABLE public.conhecimento_julia (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fonte           text NOT NULL,
    titulo          text NOT NULL,
    conteudo        text NOT NULL CHECK (length(conteudo) > 0),
    tags            text[] NOT NULL DEFAULT '{}',
    content_hash    text GENERATED ALWAYS AS (md5(titulo || E'\n' || conteudo)) STORED,
    embedding       extensions.vector(1024),
    embedding_model text,
    embedded_hash   text,
    tsv             tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('public.portuguese_unaccent', titulo), 'A')
                        || setweight(to_tsvector('public.portuguese_unaccent', conteudo), 'B')) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conhecimento_embedding_model CHECK ((embedding IS NULL) = (embedding_model IS NULL)),
    CONSTRAINT conhecimento_fonte_titulo UNIQUE (fonte, titulo)
);
CREATE INDEX conhecimento_tsv_idx ON public.conhecimento_julia USING gin (tsv);
CREATE INDEX conhecimento_embedding_idx ON public.conhecimento_julia
    USING hnsw (embedding extensions.vector_cosine_ops);

CREATE TABLE public.diretrizes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    titulo     text NOT NULL UNIQUE,
    texto      text NOT NULL,
    ativa      boolean NOT NULL DEFAULT true,
    prioridade integer NOT NULL DEFAULT 100,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.prompts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    nome       text NOT NULL,
    versao     integer NOT NULL CHECK (versao > 0),
    conteudo   text NOT NULL,
    ativo      boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT prompts_nome_versao UNIQUE (nome, versao)
);
CREATE UNIQUE INDEX prompts_one_active ON public.prompts (nome) WHERE ativo;

------------------------------------------------------------
-- Per-conversation metrics, kept current by a trigger on interacoes
------------------------------------------------------------

CREATE TABLE public.metricas_conversa (
    conversation_id            bigint PRIMARY KEY REFERENCES public.conversations (id) ON DELETE CASCADE,
    cliente_id                 bigint NOT NULL REFERENCES public.clientes (id),
    total_mensagens            integer NOT NULL DEFAULT 0,
    total_mensagens_medico     integer NOT NULL DEFAULT 0,
    total_mensagens_julia      integer NOT NULL DEFAULT 0,
    total_mensagens_humano     integer NOT NULL DEFAULT 0,
    primeira_mensagem_em       timestamptz,
    ultima_mensagem_em         timestamptz,
    primeira_resposta_segundos integer,
    houve_handoff              boolean NOT NULL DEFAULT false,
    motivo_handoff             text,
    duracao_total_minutos      integer,
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
