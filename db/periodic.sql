-- Periodic jobs leave a trace: one row per run, so operators (and tests)
-- can see that each tick ran once, whatever the number of schedulers.

-- Record that a periodic task ran for a tick (unix seconds of the schedule).
CREATE OR REPLACE FUNCTION public.record_periodic_run(p_task_name text, p_tick bigint, p_result jsonb)
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    INSERT INTO public.periodic_runs (task_name, tick, result) VALUES (p_task_name, p_tick, p_result);
$$;

-- Forget runs older than p_keep (the log stays small).
CREATE OR REPLACE FUNCTION public.prune_periodic_runs(p_keep interval DEFAULT '14 days')
RETURNS integer
LANGUAGE sql
SET search_path = ''
AS $$
    WITH gone AS (
        DELETE FROM public.periodic_runs WHERE ran_at < clock_timestamp() - p_keep RETURNING 1
    )
    SELECT count(*)::integer FROM gone;
$$;
