-- Doctor identity: one person, one clientes row, whatever address WhatsApp
-- uses. Brazil's mobiles exist in two forms (55 + DDD + 9 + 8 digits, and
-- the 12-digit form of accounts created before the ninth digit); JIDs carry
-- domains and device suffixes; LIDs stand for a phone that may be unknown.
-- Every path that names a doctor (inbound, import, campaigns, opt-out,
-- merge, ops lookups) matches through phone_key() here, nowhere else.
--
-- phone_key() is also indexed (clientes_phone_key_idx, revision 0012): a
-- change to its result needs a revision that rebuilds the index.

------------------------------------------------------------
-- Addresses
------------------------------------------------------------

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
-- else are their own key. PL/pgSQL: a SQL function with SET cannot be
-- inlined, and one with a FROM ran a query per call (~4x the time; the index
-- computes it for every stored doctor, `julia db copy` for 30k at once).
CREATE OR REPLACE FUNCTION public.phone_key(p_address text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
DECLARE
    _digits text := public.jid_phone(p_address);
BEGIN
    IF _digits ~ '^55[1-9][1-9][6-9][0-9]{7}$' THEN
        RETURN pg_catalog.substr(_digits, 1, 4) || '9' || pg_catalog.substr(_digits, 5);
    END IF;
    RETURN _digits;
END;
$$;

-- Serialise everything that may create or fold the row of one person
-- (by phone key or LID) until the transaction ends.
CREATE OR REPLACE FUNCTION public._lock_identity(p_key text)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('julia.identity:' || p_key, 0))
     WHERE p_key IS NOT NULL;
$$;

------------------------------------------------------------
-- Finding a doctor
------------------------------------------------------------

-- The doctor a phone (any form, any JID) and/or LID names, or NULL. The
-- phone decides when both are given; among rows of one person not merged
-- yet, the oldest wins.
CREATE OR REPLACE FUNCTION public.find_cliente(p_phone text, p_lid text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _id bigint;
    _key text := public.phone_key(p_phone);
BEGIN
    IF _key IS NOT NULL THEN
        SELECT c.id INTO _id FROM public.clientes AS c
         WHERE public.phone_key(c.telefone) = _key
         ORDER BY c.id LIMIT 1;
    END IF;
    IF _id IS NULL AND nullif(p_lid, '') IS NOT NULL THEN
        SELECT c.id INTO _id FROM public.clientes AS c WHERE c.lid = p_lid;
    END IF;
    RETURN _id;
END;
$$;

-- Every row that is the same person as p_cliente_id (itself included):
-- same phone key or same LID. More than one only until they are merged.
CREATE OR REPLACE FUNCTION public.same_person_ids(p_cliente_id bigint)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
BEGIN
    RETURN QUERY
    SELECT o.id
      FROM public.clientes AS c
      JOIN public.clientes AS o
        ON o.id = c.id
        OR public.phone_key(o.telefone) = public.phone_key(c.telefone)
        OR o.lid = c.lid
     WHERE c.id = p_cliente_id;
END;
$$;

-- Has any address of this person opted out? Opt-out is about the person.
CREATE OR REPLACE FUNCTION public.person_opted_out(p_cliente_id bigint)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM public.clientes AS c
                    WHERE c.id IN (SELECT public.same_person_ids(p_cliente_id)) AND c.opt_out);
END;
$$;

-- The conversation p_conversation_id; JU404 naming p_caller when there is none.
CREATE OR REPLACE FUNCTION public._conversation_or_404(p_caller text, p_conversation_id bigint)
RETURNS public.conversations
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _conv public.conversations;
BEGIN
    SELECT * INTO _conv FROM public.conversations AS c WHERE c.id = p_conversation_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: conversation % not found', p_caller, p_conversation_id USING ERRCODE = 'JU404';
    END IF;
    RETURN _conv;
END;
$$;

------------------------------------------------------------
-- Inbound: find or create, learning what an event adds
------------------------------------------------------------

-- Find or create the cliente for a phone and/or LID. Two first messages of
-- one new doctor in two forms at once make one row (identity lock). An
-- event that carries both a phone and a LID proves they are one person: a
-- LID-only row learned earlier is folded into the phone's row.
CREATE OR REPLACE FUNCTION public.resolve_cliente(p_phone text, p_lid text, p_nome text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _phone text := public.jid_phone(p_phone);
    _lid text := nullif(p_lid, '');
    _key text := public.phone_key(p_phone);
    _id bigint;
    _lid_id bigint;
BEGIN
    IF _phone IS NULL AND _lid IS NULL THEN
        RAISE EXCEPTION 'resolve_cliente: neither phone nor LID given (phone %, lid %)', p_phone, p_lid
            USING ERRCODE = 'JU400';
    END IF;
    -- Phone first, then LID: every caller takes them in this order.
    PERFORM public._lock_identity('phone:' || _key);
    PERFORM public._lock_identity('lid:' || _lid);

    _id := public.find_cliente(_phone, NULL);
    IF _lid IS NOT NULL THEN
        SELECT c.id INTO _lid_id FROM public.clientes AS c WHERE c.lid = _lid;
    END IF;

    IF _id IS NULL AND _lid_id IS NULL THEN
        INSERT INTO public.clientes (telefone, lid, nome)
        VALUES (_phone, _lid, nullif(p_nome, ''))
        RETURNING id INTO _id;
        RETURN _id;
    ELSIF _id IS NULL THEN
        _id := _lid_id;
    ELSIF _lid_id IS NOT NULL AND _lid_id <> _id THEN
        IF (SELECT c.telefone IS NULL FROM public.clientes AS c WHERE c.id = _lid_id) THEN
            -- The LID-only row is this phone's person: fold it in.
            PERFORM public.merge_clientes(_id, _lid_id, 'LID ' || _lid || ' e telefone ' || _phone || ' no mesmo evento');
        END IF;
        -- A LID tied to a different phone is left alone (it is that row's).
    END IF;

    -- Learn what this event adds, never overwriting a known value.
    UPDATE public.clientes AS c
       SET telefone = coalesce(c.telefone, _phone),
           lid = CASE WHEN c.lid IS NULL AND _lid IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM public.clientes AS o WHERE o.lid = _lid)
                      THEN _lid ELSE c.lid END,
           nome = coalesce(c.nome, nullif(p_nome, '')),
           updated_at = now()
     WHERE c.id = _id
       AND ((c.telefone IS NULL AND _phone IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM public.clientes AS o WHERE o.telefone = _phone))
            OR (c.lid IS NULL AND _lid IS NOT NULL)
            OR (c.nome IS NULL AND nullif(p_nome, '') IS NOT NULL));
    RETURN _id;
END;
$$;

-- The doctor wrote from this phone form: it exists on WhatsApp, and it is
-- where Julia answers and sends from now on.
CREATE OR REPLACE FUNCTION public.learn_whatsapp_number(p_cliente_id bigint, p_phone text)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _phone text := public.jid_phone(p_phone);
BEGIN
    IF _phone IS NULL THEN
        RETURN;
    END IF;
    UPDATE public.clientes AS c
       SET whatsapp_numero = _phone, whatsapp_verificado_em = clock_timestamp(), sem_whatsapp_em = NULL,
           updated_at = now()
     WHERE c.id = p_cliente_id
       AND (c.whatsapp_numero IS DISTINCT FROM _phone OR c.sem_whatsapp_em IS NOT NULL
            OR c.whatsapp_verificado_em IS NULL);
END;
$$;

------------------------------------------------------------
-- Outbound: where a proactive message goes
------------------------------------------------------------

-- The number a proactive message to this doctor goes to: the form WhatsApp
-- confirmed (she wrote from it, or the onWhatsApp check found it), or NULL
-- when that is not known yet (check first) or she is not on WhatsApp.
CREATE OR REPLACE FUNCTION public.send_address(p_cliente_id bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
BEGIN
    RETURN (SELECT c.whatsapp_numero FROM public.clientes AS c
             WHERE c.id = p_cliente_id AND c.sem_whatsapp_em IS NULL);
END;
$$;

-- Record Evolution's onWhatsApp answer (POST /chat/whatsappNumbers) for a
-- doctor: the JID that exists becomes her send address; a number that does
-- not exist is marked and never checked or messaged proactively again.
-- Returns the address to send to, NULL when she is not on WhatsApp.
CREATE OR REPLACE FUNCTION public.record_whatsapp_check(p_cliente_id bigint, p_jid text, p_exists boolean)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _c public.clientes;
    _phone text := public.jid_phone(p_jid);
BEGIN
    SELECT * INTO _c FROM public.clientes AS c WHERE c.id = p_cliente_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'record_whatsapp_check: cliente % not found', p_cliente_id USING ERRCODE = 'JU404';
    END IF;
    IF p_exists THEN
        -- A LID, or a JID that is not a form of her number: the stored number exists.
        IF _phone IS NULL OR public.phone_key(_phone) IS DISTINCT FROM public.phone_key(_c.telefone) THEN
            _phone := _c.telefone;
        END IF;
        UPDATE public.clientes
           SET whatsapp_numero = _phone, whatsapp_verificado_em = clock_timestamp(), sem_whatsapp_em = NULL,
               updated_at = now()
         WHERE id = p_cliente_id;
        RETURN _phone;
    END IF;
    UPDATE public.clientes
       SET sem_whatsapp_em = coalesce(sem_whatsapp_em, clock_timestamp()), whatsapp_verificado_em = clock_timestamp(),
           updated_at = now()
     WHERE id = p_cliente_id;
    -- Nothing proactive waits for her any more.
    UPDATE public.outbox AS o
       SET state = 'failed', refusal = 'not_on_whatsapp', claimed_by_job = NULL, updated_at = now()
     WHERE o.cliente_id = p_cliente_id AND o.kind IN ('campaign', 'follow_up')
       AND o.state IN ('queued', 'deferred', 'claimed');
    RETURN NULL;
END;
$$;

------------------------------------------------------------
-- Copies between databases (julia db copy)
------------------------------------------------------------

-- The row that already is this doctor under another id (same phone key or
-- LID), or NULL: a copied row must not become a second record of a person.
CREATE OR REPLACE FUNCTION public.other_row_of_person(p_id bigint, p_telefone text, p_lid text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
BEGIN
    RETURN (SELECT c.id FROM public.clientes AS c
             WHERE c.id <> p_id
               AND (public.phone_key(c.telefone) = public.phone_key(p_telefone) OR c.lid = p_lid)
             ORDER BY c.id LIMIT 1);
END;
$$;
