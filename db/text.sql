-- Text normalization shared by alias matching and the importer.
-- The generated alias_norm columns call it: a change to its result needs a
-- revision that recomputes them (UPDATE ... SET alias = alias).

-- Lower-case, unaccented, single-spaced text for alias matching.
-- unaccent's two-argument form names its dictionary, so this is immutable.
CREATE OR REPLACE FUNCTION public.normalize_text(p_text text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = ''
AS $$
    SELECT nullif(regexp_replace(lower(extensions.unaccent('extensions.unaccent'::regdictionary, coalesce(p_text, ''))),
                                 '\s+', ' ', 'g'), '');
$$;
