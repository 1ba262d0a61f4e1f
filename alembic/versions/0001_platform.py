"""Platform: extensions schema, pgvector/unaccent, pgmq with the inbound queue, procrastinate.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Extensions live in their own schema (Supabase linter 0014).
EXTENSIONS = ("vector", "unaccent", "pg_trgm")


def upgrade() -> None:
    from pgmq.install import get_embedded_install_sql
    from procrastinate.schema import SchemaManager

    op.execute("CREATE SCHEMA IF NOT EXISTS extensions")
    op.execute("GRANT USAGE ON SCHEMA extensions TO PUBLIC")
    for name in EXTENSIONS:
        op.execute(
            f"""
            DO $$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = '{name}') THEN
                    CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA extensions;
                ELSE
                    RAISE WARNING 'extension {name} is not available on this server';
                END IF;
            END $$;
            """
        )

    # pgmq: the extension where the server has it (Supabase), else the SQL
    # bundled with the pgmq package.
    bind = op.get_bind()
    has_pgmq_extension = bind.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgmq')"
    ).scalar()
    already = bind.exec_driver_sql("SELECT to_regnamespace('pgmq') IS NOT NULL").scalar()
    if has_pgmq_extension:
        op.execute("CREATE EXTENSION IF NOT EXISTS pgmq")
    elif not already:
        bind.exec_driver_sql(get_embedded_install_sql().replace("%", "%%"))
    op.execute("SELECT pgmq.create('inbound')")

    bind.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))
    # Fixed search_path on procrastinate's functions: our SQL functions run
    # with an empty search_path and call them (and the linter wants it).
    op.execute(
        """
        DO $$
        DECLARE _f regprocedure;
        BEGIN
            FOR _f IN SELECT p.oid::regprocedure FROM pg_proc AS p
                       WHERE p.pronamespace = 'public'::regnamespace
                         AND p.proname LIKE 'procrastinate\\_%'
            LOOP
                EXECUTE format('ALTER FUNCTION %s SET search_path = public, pg_catalog', _f);
            END LOOP;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS procrastinate_events, procrastinate_periodic_defers,
            procrastinate_jobs, procrastinate_workers CASCADE;
        DROP TYPE IF EXISTS procrastinate_job_event_type, procrastinate_job_status,
            procrastinate_job_to_defer_v1 CASCADE;
        """
    )
    op.execute("SELECT pgmq.drop_queue('inbound')")
