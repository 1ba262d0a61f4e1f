-- Health and readiness, decided in SQL: one call answers /health/deep
-- (markers, queues, jobs, required tables and views, schema revision) and
-- says whether a deploy is safe.

------------------------------------------------------------
-- What must exist
------------------------------------------------------------

-- Relations the running code needs. A migration that adds one edits this
-- list and re-applies this file.
CREATE OR REPLACE FUNCTION public.required_relations()
RETURNS TABLE (kind text, name text)
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    VALUES ('table', 'clientes'), ('table', 'conversations'), ('table', 'interacoes'),
           ('table', 'outbox'), ('table', 'app_settings'), ('table', 'feature_flags'),
           ('table', 'julia_status'), ('table', 'inbound_failures'),
           ('table', 'procrastinate_jobs'), ('table', 'procrastinate_periodic_defers'),
           ('table', 'vagas'), ('table', 'conhecimento_julia'), ('table', 'campanhas'),
           ('table', 'send_counters'), ('table', 'metricas_conversa'),
           ('table', 'chatwoot_messages'), ('table', 'notifications'), ('table', 'clientes_fusoes'),
           ('table', 'whatsapp_numbers'), ('table', 'send_policy_settings'), ('table', 'send_policy_changes'),
           ('table', 'number_send_counters'), ('table', 'number_health_events'), ('table', 'unknown_instances'),
           ('view', 'campaign_sends'), ('view', 'campaign_metrics');
$$;

------------------------------------------------------------
-- Deep health
------------------------------------------------------------

-- The environment and project_ref checks: each marker against what the
-- process declared.
CREATE OR REPLACE FUNCTION public._health_markers(p_app_env text, p_project_ref text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _env record;
    _ref record;
BEGIN
    SELECT * INTO _env FROM public.check_environment(p_app_env, p_project_ref) AS c WHERE c.marker = 'environment';
    SELECT * INTO _ref FROM public.check_environment(p_app_env, p_project_ref) AS c WHERE c.marker = 'supabase_project_ref';
    RETURN jsonb_build_object(
        'environment', jsonb_strip_nulls(jsonb_build_object(
            'status', CASE WHEN _env.ok THEN 'ok' ELSE 'critical' END,
            'value', _env.actual,
            'expected', CASE WHEN NOT _env.ok THEN coalesce(_env.expected, '') END,
            'detail', CASE WHEN _env.actual IS NULL THEN 'marker missing: run julia db bootstrap' END)),
        'project_ref', jsonb_strip_nulls(jsonb_build_object(
            'status', CASE WHEN _ref.ok THEN 'ok' ELSE 'critical' END,
            'value', nullif(_ref.actual, ''),
            'expected', CASE WHEN NOT _ref.ok THEN coalesce(_ref.expected, '') END)));
END;
$$;

-- The tables and views checks: which required relations are missing.
CREATE OR REPLACE FUNCTION public._health_relations()
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT jsonb_build_object(
        'tables', jsonb_build_object('status', CASE WHEN cardinality(m.tables) = 0 THEN 'ok' ELSE 'critical' END,
                                     'missing', to_jsonb(m.tables)),
        'views', jsonb_build_object('status', CASE WHEN cardinality(m.views) = 0 THEN 'ok' ELSE 'critical' END,
                                    'missing', to_jsonb(m.views)))
      FROM (SELECT coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.kind = 'table'), '{}') AS tables,
                   coalesce(array_agg(r.name ORDER BY r.name) FILTER (WHERE r.kind = 'view'), '{}') AS views
              FROM public.required_relations() AS r
             WHERE to_regclass('public.' || quote_ident(r.name)) IS NULL) AS m;
$$;

-- The schema_version check: the database's revision is the one the code
-- needs, or one it does not know (a newer release migrated it: fine).
CREATE OR REPLACE FUNCTION public._health_schema_version(p_expected_revision text, p_known_revisions text[])
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _revision text;
    _ahead boolean;
BEGIN
    IF to_regclass('public.alembic_version') IS NOT NULL THEN
        SELECT v.version_num INTO _revision FROM public.alembic_version AS v LIMIT 1;
    END IF;
    _ahead := _revision IS NOT NULL AND p_known_revisions IS NOT NULL AND NOT _revision = ANY (p_known_revisions);
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'status', CASE WHEN _revision = p_expected_revision OR _ahead THEN 'ok' ELSE 'critical' END,
        'detail', CASE WHEN _ahead THEN 'database is ahead of this code (newer release migrated it)' END,
        'version', _revision, 'expected', p_expected_revision));
END;
$$;

-- The /health/deep report: every check with its status, and deploy_safe.
-- p_expected_revision is the alembic head the calling code needs.
-- p_known_revisions lists every revision the code knows: a database at a
-- revision outside it is ahead (a newer release migrated it), which is fine.
CREATE OR REPLACE FUNCTION public.health_report(
    p_app_env text, p_project_ref text, p_expected_revision text, p_known_revisions text[] DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _queue record;
    _jobs jsonb;
    _checks jsonb;
    _critical boolean;
BEGIN
    SELECT m.queue_length, m.oldest_msg_age_sec INTO _queue FROM pgmq.metrics('inbound') AS m;
    SELECT jsonb_object_agg(s.status, s.n) INTO _jobs
      FROM (SELECT j.status::text AS status, count(*) AS n
              FROM public.procrastinate_jobs AS j
             WHERE j.status IN ('todo', 'doing', 'failed')
             GROUP BY j.status) AS s;

    _checks := public._health_markers(p_app_env, p_project_ref)
        || jsonb_build_object(
            'database', jsonb_build_object('status', 'ok'),
            'queues', jsonb_build_object(
                'status', 'ok',
                'inbound', jsonb_build_object('depth', _queue.queue_length,
                                              'oldest_age_seconds', _queue.oldest_msg_age_sec)),
            'procrastinate', jsonb_build_object('status', 'ok', 'jobs', coalesce(_jobs, '{}'::jsonb)))
        || public._health_relations()
        || jsonb_build_object('schema_version', public._health_schema_version(p_expected_revision, p_known_revisions));

    SELECT bool_or(c.value ->> 'status' = 'critical') INTO _critical FROM jsonb_each(_checks) AS c;
    RETURN jsonb_build_object(
        'status', CASE WHEN _critical THEN 'critical' ELSE 'healthy' END,
        'checks', _checks,
        'deploy_safe', NOT _critical);
END;
$$;
