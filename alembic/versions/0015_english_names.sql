-- One naming language: the seed's tables keep their Portuguese names
-- (clientes, interacoes, vagas, ...); Julia's own tables are English.
-- Each table is renamed with the constraints, indexes and identity
-- sequences that carry its old name; a database without the old table
-- (already renamed) is left alone.

DO $$
DECLARE
    _pair record;
    _table regclass;
    _c record;
BEGIN
    FOR _pair IN
        SELECT * FROM (VALUES
            ('chatwoot_contatos', 'chatwoot_contacts'),
            ('chatwoot_conversas', 'chatwoot_conversations'),
            ('chatwoot_mensagens', 'chatwoot_messages'),
            ('chatwoot_eventos', 'chatwoot_events'),
            ('notificacoes', 'notifications')
        ) AS p (old, new)
    LOOP
        CONTINUE WHEN pg_catalog.to_regclass('public.' || _pair.old) IS NULL;
        EXECUTE pg_catalog.format('ALTER TABLE public.%I RENAME TO %I', _pair.old, _pair.new);
        _table := pg_catalog.to_regclass('public.' || _pair.new);
        -- Constraints (a primary key or unique constraint renames its index with it).
        FOR _c IN
            SELECT con.conname AS name FROM pg_catalog.pg_constraint AS con
             WHERE con.conrelid = _table AND pg_catalog.starts_with(con.conname, _pair.old || '_')
        LOOP
            EXECUTE pg_catalog.format('ALTER TABLE public.%I RENAME CONSTRAINT %I TO %I', _pair.new, _c.name,
                                      _pair.new || pg_catalog.substr(_c.name, pg_catalog.length(_pair.old) + 1));
        END LOOP;
        -- The other indexes.
        FOR _c IN
            SELECT i.relname AS name FROM pg_catalog.pg_index AS x JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
             WHERE x.indrelid = _table AND pg_catalog.starts_with(i.relname, _pair.old || '_')
        LOOP
            EXECUTE pg_catalog.format('ALTER INDEX public.%I RENAME TO %I', _c.name,
                                      _pair.new || pg_catalog.substr(_c.name, pg_catalog.length(_pair.old) + 1));
        END LOOP;
        -- Identity sequences.
        FOR _c IN
            SELECT s.relname AS name FROM pg_catalog.pg_depend AS d JOIN pg_catalog.pg_class AS s ON s.oid = d.objid
             WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refobjid = _table AND s.relkind = 'S'
               AND pg_catalog.starts_with(s.relname, _pair.old || '_')
        LOOP
            EXECUTE pg_catalog.format('ALTER SEQUENCE public.%I RENAME TO %I', _c.name,
                                      _pair.new || pg_catalog.substr(_c.name, pg_catalog.length(_pair.old) + 1));
        END LOOP;
    END LOOP;
END $$;
