-- The Supabase database linter's security checks, as one SQL function, so
-- "the schema is linter clean" is something a test and `julia db lint` can
-- assert on any Postgres, not only on a Supabase project.
--
-- Codes and names follow https://supabase.com/docs/guides/database/database-linter
-- (supabase/splinter). Deliberate differences:
--   0010 flags every view in `public` without security_invoker (Supabase only
--        flags views anon/authenticated can already read);
--   0011 also checks `pgmq`, because here it is our bundled SQL, not an extension;
--   0019 looks at archive tables (a_*) as well as queue tables (q_*) and does
--        not depend on `pgmq_public` being exposed through PostgREST.
-- The API roles (anon, authenticated) may not exist on a plain Postgres: the
-- checks that need them find nothing then.

------------------------------------------------------------
-- Linting
------------------------------------------------------------

-- The schemas that are ours to lint: every one but those owned by
-- Postgres, Supabase or an extension's installer (skipped by Supabase's
-- linter too) and temporary ones.
CREATE OR REPLACE FUNCTION public._lint_schemas()
RETURNS TABLE (oid oid, nspname name)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH managed (nspname) AS (
        -- Schemas owned by Postgres, Supabase or an extension's installer:
        -- not ours to fix, and skipped by Supabase's linter too.
        VALUES ('pg_catalog'), ('information_schema'), ('pg_toast'), ('extensions'),
               ('auth'), ('storage'), ('realtime'), ('graphql'), ('graphql_public'),
               ('vault'), ('pgsodium'), ('pgsodium_masks'), ('pgbouncer'), ('pgtle'),
               ('net'), ('cron'), ('supabase_functions'), ('supabase_migrations'),
               ('_realtime'), ('_analytics'), ('pgmq_public'), ('repack'), ('pgroonga'),
               ('tiger'), ('topology')
    )
    SELECT n.oid, n.nspname
      FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname NOT IN (SELECT m.nspname FROM managed AS m)
       AND n.nspname NOT LIKE 'pg\_temp\_%'
       AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
       AND n.nspname NOT LIKE '\_timescaledb\_%';
$$;

-- The Data API's roles (anon, authenticated) present in this cluster (also
-- db/security.sql's).
CREATE OR REPLACE FUNCTION public._api_roles()
RETURNS TABLE (oid oid, rolname name)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT r.oid, r.rolname FROM pg_catalog.pg_roles AS r WHERE r.rolname IN ('anon', 'authenticated');
$$;

-- Does object p_objid of catalog p_classid belong to an extension?
CREATE OR REPLACE FUNCTION public._lint_extension_member(p_classid regclass, p_objid oid)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                    WHERE d.deptype = 'e' AND d.classid = p_classid AND d.objid = p_objid);
$$;

-- Findings about tables, views and queues (0013, 0010, 0019, 0008).
CREATE OR REPLACE FUNCTION public._lint_relations()
RETURNS TABLE (level text, code text, name text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH ours AS (SELECT * FROM public._lint_schemas()),
    api_roles AS (SELECT * FROM public._api_roles())
    -- 0013: a table in `public` is reachable through the Data API; without
    -- RLS every row is readable by whoever holds a grant.
    SELECT 'ERROR', '0013', 'rls_disabled_in_public', c.oid::regclass::text,
           format('Table %s is in the public schema but RLS has not been enabled.', c.oid::regclass)
      FROM pg_catalog.pg_class AS c
     WHERE c.relnamespace = 'public'::regnamespace
       AND c.relkind IN ('r', 'p')
       AND NOT c.relrowsecurity

    UNION ALL
    -- 0010: a view runs with its owner's rights (bypassing RLS) unless it is
    -- security_invoker.
    SELECT 'ERROR', '0010', 'security_definer_view', c.oid::regclass::text,
           format('View %s is SECURITY DEFINER (security_invoker is not on).', c.oid::regclass)
      FROM pg_catalog.pg_class AS c
      JOIN ours AS n ON n.oid = c.relnamespace
     WHERE c.relkind = 'v'
       AND (n.nspname = 'public'
            OR EXISTS (SELECT 1 FROM api_roles AS r
                        WHERE pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT')))
       AND NOT public._lint_extension_member('pg_catalog.pg_class'::regclass, c.oid)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(c.reloptions) AS o
                        WHERE o.option_name = 'security_invoker'
                          AND lower(o.option_value) IN ('on', 'true', 'yes', '1'))

    UNION ALL
    -- 0019: pgmq's tables have no RLS; a grant to an API role exposes every message.
    SELECT 'ERROR', '0019', 'insecure_queue_exposed_in_api', c.oid::regclass::text,
           format('Queue table %s is accessible to %s and has no RLS.', c.oid::regclass,
                  string_agg(r.rolname, ', ' ORDER BY r.rolname))
      FROM pg_catalog.pg_class AS c
      JOIN api_roles AS r
        ON pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
     WHERE c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'pgmq')
       AND c.relkind IN ('r', 'p')
       AND (c.relname LIKE 'q\_%' OR c.relname LIKE 'a\_%')
       AND NOT c.relrowsecurity
     GROUP BY c.oid

    UNION ALL
    -- 0008: RLS on and no policy means only the owner and BYPASSRLS roles
    -- (service_role) see rows; this is how our tables are meant to be.
    SELECT 'INFO', '0008', 'rls_enabled_no_policy', c.oid::regclass::text,
           format('Table %s has RLS enabled, but no policies exist.', c.oid::regclass)
      FROM pg_catalog.pg_class AS c
      JOIN ours AS n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND n.nspname <> 'pgmq'
       AND c.relrowsecurity
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy AS pol WHERE pol.polrelid = c.oid)
       AND NOT public._lint_extension_member('pg_catalog.pg_class'::regclass, c.oid);
$$;

-- Findings about functions and extensions (0011, 0014, 0028/0029).
CREATE OR REPLACE FUNCTION public._lint_routines()
RETURNS TABLE (level text, code text, name text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH ours AS (SELECT * FROM public._lint_schemas()),
    api_roles AS (SELECT * FROM public._api_roles())
    -- 0011: a function without a fixed search_path resolves names through the
    -- caller's search_path, which the caller controls.
    SELECT 'WARN', '0011', 'function_search_path_mutable', p.oid::regprocedure::text,
           format('Function %s has a role mutable search_path.', p.oid::regprocedure)
      FROM pg_catalog.pg_proc AS p
      JOIN ours AS n ON n.oid = p.pronamespace
     WHERE p.prokind <> 'a'
       AND NOT public._lint_extension_member('pg_catalog.pg_proc'::regclass, p.oid)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(p.proconfig) AS s (setting)
                        WHERE s.setting LIKE 'search\_path=%')

    UNION ALL
    -- 0014: objects of an extension in `public` are exposed through the Data API.
    SELECT 'WARN', '0014', 'extension_in_public', x.extname::text,
           format('Extension %s is installed in the public schema; move it to another schema.', x.extname)
      FROM pg_catalog.pg_extension AS x
     WHERE x.extnamespace = 'public'::regnamespace
       AND x.extname <> 'plpgsql'

    UNION ALL
    -- 0028 / 0029: a SECURITY DEFINER function bypasses RLS; an API role that
    -- may execute it reaches it through /rest/v1/rpc.
    SELECT 'WARN', CASE r.rolname WHEN 'anon' THEN '0028' ELSE '0029' END,
           r.rolname || '_security_definer_function_executable', p.oid::regprocedure::text,
           format('SECURITY DEFINER function %s is executable by the %s role.', p.oid::regprocedure, r.rolname)
      FROM pg_catalog.pg_proc AS p
      JOIN ours AS n ON n.oid = p.pronamespace
      JOIN api_roles AS r ON pg_catalog.has_function_privilege(r.oid, p.oid, 'EXECUTE')
     WHERE p.prosecdef;
$$;

-- Every finding in the current database: level (ERROR, WARN, INFO), the
-- linter's code and name, the object (schema-qualified) and a sentence.
CREATE OR REPLACE FUNCTION public.lint_schema()
RETURNS TABLE (level text, code text, name text, object text, detail text)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT f.level, f.code, f.name, f.object, f.detail
      FROM (SELECT * FROM public._lint_relations() UNION ALL SELECT * FROM public._lint_routines()) AS f
     ORDER BY CASE f.level WHEN 'ERROR' THEN 0 WHEN 'WARN' THEN 1 ELSE 2 END, f.code, f.object;
$$;
