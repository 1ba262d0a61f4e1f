-- Rows of one person that are not merged yet (two forms of one number,
-- a LID learned before the phone): finding them and folding one into the
-- other (`julia doctors merge`, and resolve_cliente when one event proves
-- a LID and a phone are the same person). Matching is db/identity.sql's.

------------------------------------------------------------
-- Merging rows of one person
------------------------------------------------------------

-- Before p_drop's rows move to p_keep: one open conversation per doctor
-- (the most recently active stays open, the other is closed: no message is
-- lost), the same campaign queued for both rows goes once (the dropped
-- row's fails as 'duplicate_person'), and the Chatwoot contact is p_keep's
-- if it has one.
CREATE OR REPLACE FUNCTION public._merge_conflicts(p_keep bigint, p_drop bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    UPDATE public.conversations AS c
       SET status = 'encerrada', updated_at = now()
     WHERE c.cliente_id IN (p_keep, p_drop) AND c.status = 'aberta'
       AND c.id <> (SELECT o.id FROM public.conversations AS o
                     WHERE o.cliente_id IN (p_keep, p_drop) AND o.status = 'aberta'
                     ORDER BY greatest(o.last_inbound_at, o.last_outbound_at, o.created_at) DESC, o.id DESC
                     LIMIT 1);
    UPDATE public.outbox AS o
       SET state = 'failed', refusal = 'duplicate_person', claimed_by_job = NULL, updated_at = now()
     WHERE o.cliente_id = p_drop AND o.kind = 'campaign' AND o.state IN ('queued', 'deferred')
       AND EXISTS (SELECT 1 FROM public.outbox AS k WHERE k.cliente_id = p_keep AND k.campanha_id = o.campanha_id);
    IF pg_catalog.to_regclass('public.chatwoot_contacts') IS NOT NULL THEN
        DELETE FROM public.chatwoot_contacts AS w
         WHERE w.cliente_id = p_drop AND EXISTS (SELECT 1 FROM public.chatwoot_contacts AS k WHERE k.cliente_id = p_keep);
        UPDATE public.chatwoot_contacts SET cliente_id = p_keep WHERE cliente_id = p_drop;
    END IF;
END;
$$;

-- Point every single-column foreign key to clientes, whichever table holds
-- it, from p_drop to p_keep. Returns how many rows were moved.
CREATE OR REPLACE FUNCTION public._move_cliente_references(p_keep bigint, p_drop bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _fk record;
    _n integer;
    _moved integer := 0;
BEGIN
    FOR _fk IN
        SELECT cl.relnamespace::regnamespace::text AS nsp, cl.relname AS tbl, a.attname AS col
          FROM pg_catalog.pg_constraint AS con
          JOIN pg_catalog.pg_class AS cl ON cl.oid = con.conrelid
          JOIN pg_catalog.pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
         WHERE con.contype = 'f' AND con.confrelid = 'public.clientes'::regclass
           AND pg_catalog.array_length(con.conkey, 1) = 1
         ORDER BY cl.relname, a.attname
    LOOP
        EXECUTE pg_catalog.format('UPDATE %I.%I SET %I = $1 WHERE %I = $2', _fk.nsp, _fk.tbl, _fk.col, _fk.col)
          USING p_keep, p_drop;
        GET DIAGNOSTICS _n = ROW_COUNT;
        _moved := _moved + _n;
    END LOOP;
    RETURN _moved;
END;
$$;

-- The kept row after a merge: empty fields filled from the dropped row
-- (p_d), tags and preferencias joined, an opt-out or block on either row
-- wins, the WhatsApp form she was last confirmed on, the earliest creation.
CREATE OR REPLACE FUNCTION public._fold_cliente(p_k public.clientes, p_d public.clientes)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    UPDATE public.clientes AS c
       SET telefone = coalesce(p_k.telefone, p_d.telefone),
           lid = coalesce(p_k.lid, p_d.lid),
           nome = coalesce(p_k.nome, p_d.nome),
           crm = coalesce(p_k.crm, p_d.crm),
           especialidade_id = coalesce(p_k.especialidade_id, p_d.especialidade_id),
           regiao = coalesce(p_k.regiao, p_d.regiao),
           cidade = coalesce(p_k.cidade, p_d.cidade),
           preferencias = p_d.preferencias || p_k.preferencias,
           tags = ARRAY(SELECT DISTINCT t FROM pg_catalog.unnest(p_k.tags || p_d.tags) AS t ORDER BY t),
           opt_out = p_k.opt_out OR p_d.opt_out,
           opt_out_em = CASE WHEN p_k.opt_out AND p_d.opt_out THEN least(p_k.opt_out_em, p_d.opt_out_em)
                             WHEN p_k.opt_out THEN p_k.opt_out_em ELSE p_d.opt_out_em END,
           opt_out_motivo = CASE WHEN p_k.opt_out THEN p_k.opt_out_motivo
                                 ELSE coalesce(p_d.opt_out_motivo, p_k.opt_out_motivo) END,
           bloqueado_em = least(p_k.bloqueado_em, p_d.bloqueado_em),
           bloqueio_motivo = coalesce(p_k.bloqueio_motivo, p_d.bloqueio_motivo),
           ultimo_contato_em = greatest(p_k.ultimo_contato_em, p_d.ultimo_contato_em),
           whatsapp_numero = CASE WHEN p_d.whatsapp_verificado_em > coalesce(p_k.whatsapp_verificado_em, '-infinity')
                                       AND p_d.whatsapp_numero IS NOT NULL
                                  THEN p_d.whatsapp_numero ELSE coalesce(p_k.whatsapp_numero, p_d.whatsapp_numero) END,
           whatsapp_verificado_em = greatest(p_k.whatsapp_verificado_em, p_d.whatsapp_verificado_em),
           sem_whatsapp_em = CASE WHEN coalesce(p_k.whatsapp_numero, p_d.whatsapp_numero) IS NULL
                                  THEN least(p_k.sem_whatsapp_em, p_d.sem_whatsapp_em) END,
           created_at = least(p_k.created_at, p_d.created_at),
           updated_at = now()
     WHERE c.id = p_k.id;
$$;

-- Fold the row p_drop into p_keep: every reference (conversations,
-- interacoes, outbox, reservations, metrics, Chatwoot contact, and any
-- other foreign key to clientes) moves to p_keep, empty fields are filled
-- from p_drop, an opt-out or block on either row wins, the dropped row is
-- kept as JSON in clientes_fusoes and deleted. Returns how many rows were moved.
CREATE OR REPLACE FUNCTION public.merge_clientes(p_keep bigint, p_drop bigint, p_motivo text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _k public.clientes;
    _d public.clientes;
    _moved integer;
BEGIN
    IF p_keep = p_drop THEN
        RAISE EXCEPTION 'merge_clientes: cannot merge cliente % into itself', p_keep USING ERRCODE = 'JU400';
    END IF;
    SELECT * INTO _k FROM public.clientes AS c WHERE c.id = p_keep FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'merge_clientes: cliente % (to keep) not found', p_keep USING ERRCODE = 'JU404';
    END IF;
    SELECT * INTO _d FROM public.clientes AS c WHERE c.id = p_drop FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'merge_clientes: cliente % (to merge) not found', p_drop USING ERRCODE = 'JU404';
    END IF;
    PERFORM public._merge_conflicts(p_keep, p_drop);
    _moved := public._move_cliente_references(p_keep, p_drop);
    INSERT INTO public.clientes_fusoes (mantido_id, removido_id, motivo, removido, linhas_movidas)
    VALUES (p_keep, p_drop, p_motivo, pg_catalog.to_jsonb(_d), _moved);
    -- Unique addresses move only once the dropped row is gone.
    DELETE FROM public.clientes WHERE id = p_drop;
    PERFORM public._fold_cliente(_k, _d);
    RETURN _moved;
END;
$$;

------------------------------------------------------------
-- Finding and merging every duplicate
------------------------------------------------------------

-- Rows that are one person and not merged yet: each row to merge with the
-- row it goes into (the oldest of its phone key) and why.
CREATE OR REPLACE FUNCTION public.duplicate_clientes()
RETURNS TABLE (mantido_id bigint, removido_id bigint, mantido_telefone text, removido_telefone text,
               mantido_nome text, removido_nome text, motivo text)
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
BEGIN
    RETURN QUERY
    WITH keyed AS (
        SELECT c.id, c.telefone, c.nome, public.phone_key(c.telefone) AS k,
               min(c.id) OVER (PARTITION BY public.phone_key(c.telefone)) AS keep_id
          FROM public.clientes AS c
         WHERE c.telefone IS NOT NULL
    )
    SELECT d.keep_id, d.id, k.telefone, d.telefone, k.nome, d.nome,
           CASE WHEN d.telefone = k.telefone THEN 'mesmo telefone'
                ELSE 'mesmo número (' || d.telefone || ' = ' || k.telefone || ')' END
      FROM keyed AS d JOIN keyed AS k ON k.id = d.keep_id
     WHERE d.id <> d.keep_id
     ORDER BY d.keep_id, d.id;
END;
$$;

-- Merge every pair duplicate_clientes() lists (with p_apply), or only list
-- them. Idempotent: a second run finds nothing. Returns what it merged (or
-- would merge) with the conversations and messages each pair moves.
CREATE OR REPLACE FUNCTION public.merge_duplicate_clientes(p_apply boolean)
RETURNS TABLE (mantido_id bigint, removido_id bigint, mantido_telefone text, removido_telefone text,
               mantido_nome text, removido_nome text, motivo text, conversas integer, mensagens integer,
               opt_out boolean, linhas_movidas integer)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _d record;
BEGIN
    FOR _d IN SELECT * FROM public.duplicate_clientes() LOOP
        mantido_id := _d.mantido_id; removido_id := _d.removido_id;
        mantido_telefone := _d.mantido_telefone; removido_telefone := _d.removido_telefone;
        mantido_nome := _d.mantido_nome; removido_nome := _d.removido_nome; motivo := _d.motivo;
        SELECT count(*) INTO conversas FROM public.conversations AS c WHERE c.cliente_id = _d.removido_id;
        SELECT count(*) INTO mensagens FROM public.interacoes AS i WHERE i.cliente_id = _d.removido_id;
        SELECT bool_or(c.opt_out) INTO opt_out FROM public.clientes AS c
         WHERE c.id IN (_d.mantido_id, _d.removido_id);
        linhas_movidas := NULL;
        IF p_apply THEN
            PERFORM public._lock_identity('phone:' || public.phone_key(_d.mantido_telefone));
            -- A concurrent merge may have folded this pair while we waited.
            CONTINUE WHEN (SELECT count(*) FROM public.clientes AS c
                            WHERE c.id IN (_d.mantido_id, _d.removido_id)) < 2;
            linhas_movidas := public.merge_clientes(_d.mantido_id, _d.removido_id, _d.motivo);
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
