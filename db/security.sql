-- What keeps the schema clean for the Supabase database linter (db/lint.sql):
-- RLS on every table in `public`, nothing granted to the API roles (anon,
-- authenticated) on our tables or on pgmq, a fixed search_path on every
-- function. The app connects as the table owner (or service_role, which has
-- BYPASSRLS), so RLS without policies shuts out only the Data API.
--
-- Idempotent. `julia db upgrade` calls it last, after every revision and
-- replaceable file (app/schema.py finish_upgrade).

------------------------------------------------------------
-- Securing
------------------------------------------------------------

-- RLS on every table in `public` (without policies: only the owner and
-- BYPASSRLS roles such as service_role see rows).
CREATE OR REPLACE FUNCTION public._enable_public_rls()
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _table regclass;
BEGIN
    FOR _table IN
        SELECT c.oid::regclass
          FROM pg_catalog.pg_class AS c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relkind IN ('r', 'p')
           AND NOT c.relrowsecurity
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', _table);
    END LOOP;
END;
$$;

-- A fixed search_path on every function in `public` and `pgmq` that lacks one.
CREATE OR REPLACE FUNCTION public._fix_search_paths()
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _function regprocedure;
    _fixed_path text;
BEGIN
    -- Functions added without a search_path, and pgmq/procrastinate functions a
    -- package upgrade re-created (CREATE OR REPLACE drops SET clauses).
    -- Extension members are the extension's to fix.
    FOR _function, _fixed_path IN
        SELECT p.oid::regprocedure,
               CASE n.nspname WHEN 'pgmq' THEN 'pgmq, pg_catalog' ELSE 'public, pg_catalog' END
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('public', 'pgmq')
           AND p.prokind IN ('f', 'p', 'w')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                            WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                              AND d.deptype = 'e')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) AS s (setting)
                            WHERE s.setting LIKE 'search\_path=%')
    LOOP
        EXECUTE pg_catalog.format('ALTER ROUTINE %s SET search_path = %s', _function, _fixed_path);
    END LOOP;
END;
$$;

-- EXECUTE on routines in `public` and `pgmq` only for their owner and
-- service_role: not PUBLIC's, anon's or authenticated's, now and for
-- routines created later.
CREATE OR REPLACE FUNCTION public._revoke_routine_execute()
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _function regprocedure;
    _role text;
BEGIN
    -- SECURITY DEFINER functions run as their owner: only the owner (and
    -- whoever it grants explicitly) may call them.
    FOR _function IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('public', 'pgmq')
           AND p.prosecdef
           AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', _function);
    END LOOP;

    -- No function is callable by whoever connects: EXECUTE is the owner's
    -- (and service_role's, below). Routines this role owns; others (an
    -- extension's, on a managed server) are reported, not fatal.
    FOR _function IN
        SELECT p.oid::regprocedure
          FROM pg_catalog.pg_proc AS p
          JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('public', 'pgmq')
           AND (pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
                OR EXISTS (SELECT 1 FROM public._api_roles() AS r
                            WHERE pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE')))
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', _function);
            FOR _role IN
                SELECT r.rolname FROM public._api_roles() AS r
            LOOP
                EXECUTE pg_catalog.format('REVOKE EXECUTE ON ROUTINE %s FROM %I', _function, _role);
            END LOOP;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'cannot revoke EXECUTE on % (not its owner)', _function;
        END;
    END LOOP;
    -- ... and functions created later by this role start that way too.
    ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON ROUTINES FROM PUBLIC;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles AS r WHERE r.rolname = 'service_role') THEN
        GRANT EXECUTE ON ALL ROUTINES IN SCHEMA public TO service_role;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON ROUTINES TO service_role;
    END IF;
END;
$$;

-- Nothing for the API roles (anon, authenticated) on the tables,
-- sequences and routines of `public` and `pgmq`, now and by default.
CREATE OR REPLACE FUNCTION public._revoke_api_roles()
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _function regprocedure;
    _role text;
    _has_pgmq boolean := pg_catalog.to_regnamespace('pgmq') IS NOT NULL;
BEGIN
    -- The API roles exist on Supabase, not necessarily elsewhere.
    FOR _role IN
        SELECT r.rolname FROM public._api_roles() AS r
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', _role);
        EXECUTE pg_catalog.format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', _role);
        EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM %I', _role);
        EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM %I', _role);
        EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON ROUTINES FROM %I', _role);
        FOR _function IN
            SELECT p.oid::regprocedure
              FROM pg_catalog.pg_proc AS p
             WHERE p.pronamespace = 'public'::regnamespace
               AND p.prosecdef
        LOOP
            EXECUTE pg_catalog.format('REVOKE EXECUTE ON ROUTINE %s FROM %I', _function, _role);
        END LOOP;

        IF _has_pgmq THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA pgmq FROM %I', _role);
            EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA pgmq FROM %I', _role);
            EXECUTE pg_catalog.format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgmq FROM %I', _role);
            EXECUTE pg_catalog.format('REVOKE ALL ON ALL ROUTINES IN SCHEMA pgmq FROM %I', _role);
            EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq REVOKE ALL ON TABLES FROM %I', _role);
            EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq REVOKE ALL ON SEQUENCES FROM %I', _role);
            EXECUTE pg_catalog.format('ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq REVOKE ALL ON ROUTINES FROM %I', _role);
        END IF;
    END LOOP;
END;
$$;

-- Enable RLS on every table in `public`, revoke the API roles' privileges on
-- `public` and `pgmq` (now and by default for new objects), take EXECUTE on
-- every function there from PUBLIC, anon and authenticated (on Supabase each
-- function in `public` is otherwise callable as /rest/v1/rpc/<name>), keep
-- service_role's, and fix the search_path of functions in `public` and `pgmq`
-- that lack one. Must run as the owner of those objects.
CREATE OR REPLACE FUNCTION public.secure_public_schema()
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    -- Two migrations running at once must not interleave their ALTERs.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('julia.secure_public_schema'));
    PERFORM public._enable_public_rls();
    PERFORM public._fix_search_paths();
    PERFORM public._revoke_routine_execute();
    PERFORM public._revoke_api_roles();
END;
$$;

------------------------------------------------------------
-- Applying
------------------------------------------------------------

-- The two maintenance functions are for migrations and operators, not the Data API.
REVOKE ALL ON FUNCTION public.secure_public_schema() FROM PUBLIC;
REVOKE ALL ON FUNCTION public.lint_schema() FROM PUBLIC;

DO $$
DECLARE
    _role text;
BEGIN
    FOR _role IN
        SELECT r.rolname FROM public._api_roles() AS r
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION public.secure_public_schema() FROM %I', _role);
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION public.lint_schema() FROM %I', _role);
    END LOOP;
END $$;

