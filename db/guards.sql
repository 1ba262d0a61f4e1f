-- Environment hard guards: the database carries markers (environment,
-- supabase_project_ref) and every process declares what it expects. A
-- mismatch makes /health/deep answer 503 and blocks every send. Also the
-- operator settings and feature flags every other file reads.

------------------------------------------------------------
-- Checking markers
------------------------------------------------------------

-- One row per marker: what the process declared, what the database holds.
CREATE OR REPLACE FUNCTION public.check_environment(p_app_env text, p_project_ref text)
RETURNS TABLE (marker text, expected text, actual text, ok boolean)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH declared (marker, expected) AS (
        VALUES ('environment', nullif(p_app_env, '')),
               ('supabase_project_ref', nullif(p_project_ref, ''))
    )
    SELECT d.marker, d.expected, s.value,
           CASE d.marker
               -- The environment marker must exist and match.
               WHEN 'environment' THEN s.value IS NOT NULL AND s.value = d.expected
               -- A project ref is compared when either side has one.
               ELSE coalesce(nullif(s.value, ''), '') = coalesce(d.expected, '')
           END
      FROM declared AS d
      LEFT JOIN public.app_settings AS s ON s.key = d.marker;
$$;

-- True when every marker agrees with what the process declared.
CREATE OR REPLACE FUNCTION public.environment_guard_ok(p_app_env text, p_project_ref text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT bool_and(c.ok) FROM public.check_environment(p_app_env, p_project_ref) AS c;
$$;

------------------------------------------------------------
-- Bootstrap
------------------------------------------------------------

-- Write the environment markers unless they are there; changing one needs
-- p_force, so nothing is overwritten silently.
CREATE OR REPLACE FUNCTION public._bootstrap_markers(p_app_env text, p_project_ref text, p_force boolean)
RETURNS TABLE (item text, action text)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _marker record;
    _current text;
BEGIN
    FOR _marker IN
        SELECT * FROM (VALUES
            ('environment', p_app_env, 'Environment marker - CRITICAL (hard guard)'),
            ('supabase_project_ref', coalesce(p_project_ref, ''), 'Project ref marker - CRITICAL (hard guard)')
        ) AS m (key, value, description)
    LOOP
        item := _marker.key;
        SELECT s.value INTO _current FROM public.app_settings AS s WHERE s.key = _marker.key;
        IF NOT FOUND THEN
            INSERT INTO public.app_settings (key, value, description)
            VALUES (_marker.key, _marker.value, _marker.description);
            action := 'created';
        ELSIF _current = _marker.value THEN
            action := 'unchanged';
        ELSIF p_force THEN
            UPDATE public.app_settings SET value = _marker.value, updated_at = now() WHERE key = _marker.key;
            action := format('changed from %L (forced)', _current);
        ELSE
            RAISE EXCEPTION 'bootstrap_database: marker % is % in the database, not %; use --force to change it',
                _marker.key, quote_literal(_current), quote_literal(_marker.value) USING ERRCODE = 'JU409';
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Write the feature flags Julia knows (all off) unless they are there.
CREATE OR REPLACE FUNCTION public._bootstrap_flags()
RETURNS TABLE (item text, action text)
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _flag record;
BEGIN
    FOR _flag IN
        SELECT * FROM (VALUES
            ('external_handoff', 'Handoff to an external system through a signed link'),
            ('campaign_attribution', 'Attribute reservations to campaigns'),
            ('dynamic_lock', 'Dynamic per-conversation lock'),
            ('error_classifier', 'Classify LLM/Evolution errors as transient or permanent')
        ) AS f (key, description)
    LOOP
        INSERT INTO public.feature_flags (key, value, description)
        VALUES (_flag.key, '{"enabled": false}'::jsonb, _flag.description)
        ON CONFLICT (key) DO NOTHING;
        item := 'feature_flag:' || _flag.key;
        action := CASE WHEN FOUND THEN 'created' ELSE 'unchanged' END;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Write the first pause state: production starts paused (an operator
-- resumes it after checking), any other environment active.
CREATE OR REPLACE FUNCTION public._bootstrap_status(p_app_env text)
RETURNS TABLE (item text, action text)
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    item := 'julia_status';
    action := 'unchanged';
    IF NOT EXISTS (SELECT 1 FROM public.julia_status) THEN
        INSERT INTO public.julia_status (status, motivo, alterado_via)
        VALUES (
            CASE WHEN p_app_env = 'production' THEN 'pausado' ELSE 'ativo' END,
            CASE WHEN p_app_env = 'production'
                 THEN 'Deploy inicial - aguardando validação'
                 ELSE 'Bootstrap inicial' END,
            'manual');
        action := 'created';
    END IF;
    RETURN NEXT;
END;
$$;

-- Write the markers, feature flags and first pause state; idempotent.
-- Changing an existing marker needs p_force, so nothing is overwritten silently.
-- With p_policy / p_instance (the seed's env variables, EVOLUTION_INSTANCE)
-- it also writes the send policy row when absent and the first number.
CREATE OR REPLACE FUNCTION public.bootstrap_database(
    p_app_env text, p_project_ref text, p_force boolean DEFAULT false,
    p_policy jsonb DEFAULT NULL, p_instance text DEFAULT NULL
)
RETURNS TABLE (item text, action text)
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF coalesce(p_app_env, '') = '' THEN
        RAISE EXCEPTION 'bootstrap_database: APP_ENV is required' USING ERRCODE = 'JU400';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('julia.bootstrap'));
    RETURN QUERY SELECT b.item, b.action FROM public._bootstrap_markers(p_app_env, p_project_ref, p_force) AS b;
    RETURN QUERY SELECT b.item, b.action FROM public._bootstrap_flags() AS b;
    RETURN QUERY SELECT b.item, b.action FROM public._bootstrap_status(p_app_env) AS b;
    IF p_policy IS NOT NULL OR p_instance IS NOT NULL THEN
        RETURN QUERY SELECT b.item, b.action FROM public.bootstrap_sending(p_policy, p_instance) AS b;
    END IF;
END;
$$;

------------------------------------------------------------
-- Settings and feature flags
------------------------------------------------------------

-- An integer operator setting from app_settings, or p_default when it is
-- absent or not a whole number.
CREATE OR REPLACE FUNCTION public.setting_int(p_key text, p_default integer)
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce((SELECT s.value::integer FROM public.app_settings AS s
                      WHERE s.key = p_key AND s.value ~ '^[0-9]{1,9}$'), p_default);
$$;

-- Read a feature flag as a boolean ({"enabled": true}); unknown flags are off.
CREATE OR REPLACE FUNCTION public.feature_enabled(p_key text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce((SELECT (f.value ->> 'enabled')::boolean
                       FROM public.feature_flags AS f WHERE f.key = p_key), false);
$$;
