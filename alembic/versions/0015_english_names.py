"""One naming language for Julia's own tables: the seed's keep their
Portuguese names; chatwoot_contatos, chatwoot_conversas, chatwoot_mensagens,
chatwoot_eventos and notificacoes become chatwoot_contacts,
chatwoot_conversations, chatwoot_messages, chatwoot_events and
notifications (with their constraints, indexes and sequences).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# Frozen: what this revision does never changes once landed.
SQL = Path(__file__).with_suffix(".sql")

# The same renames, back (new names to the old ones).
DOWNGRADE = """
DO $$
DECLARE
    _pair record;
    _table regclass;
    _c record;
BEGIN
    FOR _pair IN
        SELECT * FROM (VALUES
            ('chatwoot_contacts', 'chatwoot_contatos'),
            ('chatwoot_conversations', 'chatwoot_conversas'),
            ('chatwoot_messages', 'chatwoot_mensagens'),
            ('chatwoot_events', 'chatwoot_eventos'),
            ('notifications', 'notificacoes')
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
"""


def upgrade() -> None:
    op.execute(SQL.read_text(encoding="utf-8"))


def downgrade() -> None:
    op.execute(DOWNGRADE)
