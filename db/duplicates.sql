-- Rows of one person that are not merged yet (two forms of one number,
-- a LID learned before the phone): finding them and folding one into the
-- other (`julia doctors merge`, and resolve_cliente when one event proves
-- a LID and a phone are the same person). Matching is db/identity.sql's.

------------------------------------------------------------
-- Merging rows of one person
------------------------------------------------------------

-- Fold the row p_drop into p_keep: every reference (conversations,
-- interacoes, outbox, reservations, metrics, Chatwoot contact, and any
-- other foreign key to clientes) moves to p_keep, empty fields are filled
-- from p_drop, an opt-out or block on either row wins, the dropped row is
-- kept as JSON in clientes_fusoes and deleted. Two open conversations
-- become one open (the most recent) and one closed: no message is lost.
-- A queued proactive message p_keep also has for the same campaign fails
-- as 'duplicate_person'. Returns how many rows were moved.
CREATE OR REPLACE FUNCTION public.merge_clientes(p_keep bigint, p_drop bigint, p_motivo text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _k public.clientes;
    _d public.clientes;
    _fk record;
    _n integer;
    _moved integer := 0;
BEGIN
    IF p_keep = p_drop THEN
        RAISE EXCEPTION 'merge_clientes: cannot merge cliente % into itself', p_keep;
    END IF;
    SELECT * INTO _k FROM public.clientes AS c WHERE c.id = p_keep FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'merge_clientes: cliente % (to keep) not found', p_keep;
    END IF;
    SELECT * INTO _d FROM public.clientes AS c WHERE c.id = p_drop FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'merge_clientes: cliente % (to merge) not found', p_drop;
    END IF;

    -- One open conversation per doctor: the most recently active stays open.
    UPDATE public.conversations AS c
       SET status = 'encerrada', updated_at = now()
     WHERE c.cliente_id IN (p_keep, p_drop) AND c.status = 'aberta'
       AND c.id <> (SELECT o.id FROM public.conversations AS o
                     WHERE o.cliente_id IN (p_keep, p_drop) AND o.status = 'aberta'
                     ORDER BY greatest(o.last_inbound_at, o.last_outbound_at, o.created_at) DESC, o.id DESC
                     LIMIT 1);

    -- The same campaign queued for both rows goes once.
    UPDATE public.outbox AS o
       SET state = 'failed', refusal = 'duplicate_person', claimed_by_job = NULL, updated_at = now()
     WHERE o.cliente_id = p_drop AND o.kind = 'campaign' AND o.state IN ('queued', 'deferred')
       AND EXISTS (SELECT 1 FROM public.outbox AS k WHERE k.cliente_id = p_keep AND k.campanha_id = o.campanha_id);

    -- The Chatwoot contact: p_keep's if it has one.
    IF pg_catalog.to_regclass('public.chatwoot_contatos') IS NOT NULL THEN
        DELETE FROM public.chatwoot_contatos AS w
         WHERE w.cliente_id = p_drop AND EXISTS (SELECT 1 FROM public.chatwoot_contatos AS k WHERE k.cliente_id = p_keep);
        UPDATE public.chatwoot_contatos SET cliente_id = p_keep WHERE cliente_id = p_drop;
    END IF;

    -- Every other reference, whichever table holds it.
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

    INSERT INTO public.clientes_fusoes (mantido_id, removido_id, motivo, removido, linhas_movidas)
    VALUES (p_keep, p_drop, p_motivo, pg_catalog.to_jsonb(_d), _moved);
    -- Unique addresses move only once the dropped row is gone.
    DELETE FROM public.clientes WHERE id = p_drop;

    UPDATE public.clientes AS c
       SET telefone = coalesce(_k.telefone, _d.telefone),
           lid = coalesce(_k.lid, _d.lid),
           nome = coalesce(_k.nome, _d.nome),
           crm = coalesce(_k.crm, _d.crm),
           especialidade_id = coalesce(_k.especialidade_id, _d.especialidade_id),
           regiao = coalesce(_k.regiao, _d.regiao),
           cidade = coalesce(_k.cidade, _d.cidade),
           preferencias = _d.preferencias || _k.preferencias,
           tags = ARRAY(SELECT DISTINCT t FROM pg_catalog.unnest(_k.tags || _d.tags) AS t ORDER BY t),
           opt_out = _k.opt_out OR _d.opt_out,
           opt_out_em = CASE WHEN _k.opt_out AND _d.opt_out THEN least(_k.opt_out_em, _d.opt_out_em)
                             WHEN _k.opt_out THEN _k.opt_out_em ELSE _d.opt_out_em END,
           opt_out_motivo = CASE WHEN _k.opt_out THEN _k.opt_out_motivo ELSE coalesce(_d.opt_out_motivo, _k.opt_out_motivo) END,
           bloqueado_em = least(_k.bloqueado_em, _d.bloqueado_em),
           bloqueio_motivo = coalesce(_k.bloqueio_motivo, _d.bloqueio_motivo),
           ultimo_contato_em = greatest(_k.ultimo_contato_em, _d.ultimo_contato_em),
           -- The form she was last confirmed on.
           whatsapp_numero = CASE WHEN _d.whatsapp_verificado_em > coalesce(_k.whatsapp_verificado_em, '-infinity')
                                       AND _d.whatsapp_numero IS NOT NULL
                                  THEN _d.whatsapp_numero ELSE coalesce(_k.whatsapp_numero, _d.whatsapp_numero) END,
           whatsapp_verificado_em = greatest(_k.whatsapp_verificado_em, _d.whatsapp_verificado_em),
           sem_whatsapp_em = CASE WHEN coalesce(_k.whatsapp_numero, _d.whatsapp_numero) IS NULL
                                  THEN least(_k.sem_whatsapp_em, _d.sem_whatsapp_em) END,
           created_at = least(_k.created_at, _d.created_at),
           updated_at = now()
     WHERE c.id = p_keep;
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
