-- One doctor, one record: the send address WhatsApp confirmed, the not-on-WhatsApp
-- mark, the phone-key index the identity rule matches through, and the log of
-- merged duplicate rows. Existing duplicates are not merged here: an operator
-- reviews them with `julia doctors merge --dry-run` and folds them with --yes.

-- The index below needs phone_key() when it is built: this revision creates its
-- own copy (db/identity.sql keeps the same definition; a change to its result
-- needs a revision that rebuilds clientes_phone_key_idx).

-- The phone digits of an address: '5511...', '+55 (11) 9...', '5511...@s.whatsapp.net'
-- and a JID with a device suffix (a colon and the device number before the '@')
-- give the digits; a LID, a group or any other domain gives NULL.
CREATE OR REPLACE FUNCTION public.jid_phone(p_address text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
    SELECT CASE
        WHEN p_address IS NULL THEN NULL
        WHEN pg_catalog.strpos(p_address, '@') > 0
             AND pg_catalog.split_part(p_address, '@', 2) NOT IN ('s.whatsapp.net', 'c.us') THEN NULL
        ELSE nullif(pg_catalog.regexp_replace(
                 pg_catalog.split_part(pg_catalog.split_part(p_address, '@', 1), ':', 1), '[^0-9]', '', 'g'), '')
    END;
$$;

-- The identity key of a phone address: the same text for every form of one
-- number. A Brazilian mobile in its 12-digit form (55 + DDD + 8 digits
-- starting 6-9, the pre-ninth-digit mobile ranges) gets its ninth digit
-- back; landlines (8 digits starting 2-5), other countries and anything
-- else are their own key.
CREATE OR REPLACE FUNCTION public.phone_key(p_address text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
    SELECT CASE
        WHEN d ~ '^55[1-9][1-9][6-9][0-9]{7}$' THEN pg_catalog.substr(d, 1, 4) || '9' || pg_catalog.substr(d, 5)
        ELSE d
    END
      FROM (SELECT public.jid_phone(p_address) AS d) AS a;
$$;

ALTER TABLE public.clientes
    ADD COLUMN IF NOT EXISTS whatsapp_numero        text CHECK (whatsapp_numero ~ '^[0-9]{8,15}$'),
    ADD COLUMN IF NOT EXISTS whatsapp_verificado_em timestamptz,
    ADD COLUMN IF NOT EXISTS sem_whatsapp_em        timestamptz;

CREATE INDEX IF NOT EXISTS clientes_phone_key_idx ON public.clientes (public.phone_key(telefone));

CREATE TABLE IF NOT EXISTS public.clientes_fusoes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mantido_id     bigint NOT NULL,
    removido_id    bigint NOT NULL UNIQUE,
    motivo         text NOT NULL,
    removido       jsonb NOT NULL,
    linhas_movidas integer NOT NULL DEFAULT 0,
    fundido_em     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS clientes_fusoes_mantido_idx ON public.clientes_fusoes (mantido_id);
