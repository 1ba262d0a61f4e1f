-- Julia's global pause state: append-only history in julia_status, the
-- newest row wins, no row means active.

------------------------------------------------------------
-- Reading the state
------------------------------------------------------------

-- The current state: status, motivo, alterado_via and since when.
CREATE OR REPLACE FUNCTION public.julia_state(
    OUT status text, OUT motivo text, OUT alterado_via text, OUT since timestamptz
)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(s.status, 'ativo'), s.motivo, s.alterado_via, s.created_at
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
          SELECT j.status, j.motivo, j.alterado_via, j.created_at
            FROM public.julia_status AS j
           ORDER BY j.id DESC
           LIMIT 1
      ) AS s ON true;
$$;

-- True when Julia must not send anything.
CREATE OR REPLACE FUNCTION public.julia_is_paused()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT (public.julia_state()).status = 'pausado';
$$;

------------------------------------------------------------
-- Changing the state
------------------------------------------------------------

-- Append a state change to the history; returns its id.
CREATE OR REPLACE FUNCTION public._set_julia_status(p_status text, p_motivo text, p_via text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF coalesce(trim(p_motivo), '') = '' THEN
        RAISE EXCEPTION 'a motivo (reason) is required to set Julia %', p_status USING ERRCODE = 'JU400';
    END IF;
    -- Already so: the first reason and "since" stand; NULL says nothing changed.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('julia_status'));
    IF (public.julia_state()).status = p_status THEN
        RETURN NULL;
    END IF;
    INSERT INTO public.julia_status (status, motivo, alterado_via)
    VALUES (p_status, p_motivo, p_via)
    RETURNING id INTO _id;
    RETURN _id;
END;
$$;

-- Pause Julia; returns the new history row id, or NULL when she was already paused.
CREATE OR REPLACE FUNCTION public.pause_julia(p_motivo text, p_via text)
RETURNS bigint
LANGUAGE sql
SET search_path = ''
AS $$
    SELECT public._set_julia_status('pausado', p_motivo, p_via);
$$;

-- Resume Julia and re-defer the work held back while paused: replies owed
-- to doctors who wrote meanwhile and outbox rows that were deferred. Returns
-- the new history row id, or NULL when she was already active.
CREATE OR REPLACE FUNCTION public.resume_julia(p_motivo text, p_via text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint := public._set_julia_status('ativo', p_motivo, p_via);
BEGIN
    PERFORM public.release_held_work(true);
    RETURN _id;
END;
$$;
