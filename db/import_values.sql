-- Reading the values of one imported row (db/importer.sql): a CSV row is
-- all strings, a JSON object may hold numbers and lists. Each reader names
-- the caller and the field in its error, so a bad cell is easy to find.

------------------------------------------------------------
-- Reading values out of a row
------------------------------------------------------------

-- The trimmed text of p->key, NULL when absent or blank.
CREATE OR REPLACE FUNCTION public._import_text(p jsonb, p_key text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT nullif(pg_catalog.btrim(p ->> p_key), '');
$$;

-- A list from a JSON array or a ';'-separated string ("GO;Gineco"): trimmed,
-- blanks dropped, first occurrence kept, order kept. Empty when absent.
CREATE OR REPLACE FUNCTION public._import_list(p jsonb, p_key text)
RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT coalesce(pg_catalog.array_agg(i.item ORDER BY i.pos), '{}')
      FROM (SELECT DISTINCT ON (t.item) t.item, t.pos
              FROM (SELECT nullif(pg_catalog.btrim(e.value), '') AS item, e.pos
                      FROM pg_catalog.jsonb_array_elements_text(
                               CASE pg_catalog.jsonb_typeof(p -> p_key) WHEN 'array' THEN p -> p_key END)
                           WITH ORDINALITY AS e (value, pos)
                    UNION ALL
                    SELECT nullif(pg_catalog.btrim(s.value), ''), s.pos
                      FROM pg_catalog.regexp_split_to_table(
                               CASE WHEN pg_catalog.jsonb_typeof(p -> p_key) = 'string' THEN p ->> p_key END, ';')
                           WITH ORDINALITY AS s (value, pos)) AS t
             WHERE t.item IS NOT NULL
             ORDER BY t.item, t.pos) AS i;
$$;

-- A number from "1500", "1500.50", "1.500,50" or "R$ 1.500,50"; NULL when blank.
CREATE OR REPLACE FUNCTION public._import_numeric(p_caller text, p_field text, p_value text)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _clean text := pg_catalog.regexp_replace(coalesce(p_value, ''), '^\s*R\$\s*|\s+', '', 'g');
BEGIN
    IF _clean = '' THEN
        RETURN NULL;
    END IF;
    IF _clean ~ ',' THEN
        -- Brazilian format: '.' groups thousands, ',' marks decimals.
        _clean := pg_catalog.replace(pg_catalog.replace(_clean, '.', ''), ',', '.');
    END IF;
    IF _clean !~ '^-?[0-9]+(\.[0-9]+)?$' THEN
        RAISE EXCEPTION '%: % ''%'' is not a number', p_caller, p_field, p_value USING ERRCODE = 'JU400';
    END IF;
    RETURN _clean::numeric;
END;
$$;

-- A whole number; NULL when blank.
CREATE OR REPLACE FUNCTION public._import_integer(p_caller text, p_field text, p_value text)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
BEGIN
    IF nullif(pg_catalog.btrim(p_value), '') IS NULL THEN
        RETURN NULL;
    END IF;
    IF pg_catalog.btrim(p_value) !~ '^-?[0-9]{1,9}$' THEN
        RAISE EXCEPTION '%: % ''%'' is not a whole number', p_caller, p_field, p_value USING ERRCODE = 'JU400';
    END IF;
    RETURN pg_catalog.btrim(p_value)::integer;
END;
$$;

-- A yes/no value (true/false, sim/não, s/n, yes/no, 1/0); NULL when blank.
CREATE OR REPLACE FUNCTION public._import_boolean(p_caller text, p_field text, p_value text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _norm text := public.normalize_text(pg_catalog.btrim(p_value));
BEGIN
    IF _norm IS NULL THEN
        RETURN NULL;
    ELSIF _norm IN ('true', 't', 'sim', 's', 'yes', 'y', '1') THEN
        RETURN true;
    ELSIF _norm IN ('false', 'f', 'nao', 'n', 'no', '0') THEN
        RETURN false;
    END IF;
    RAISE EXCEPTION '%: % ''%'' is not yes/no (sim/não, true/false)', p_caller, p_field, p_value
        USING ERRCODE = 'JU400';
END;
$$;

-- A date from "2025-03-01" or "01/03/2025"; NULL when blank.
CREATE OR REPLACE FUNCTION public._import_date(p_caller text, p_field text, p_value text)
RETURNS date
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _text text := pg_catalog.btrim(p_value);
BEGIN
    IF nullif(_text, '') IS NULL THEN
        RETURN NULL;
    END IF;
    IF _text ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
        RETURN pg_catalog.to_date(_text, 'YYYY-MM-DD');
    ELSIF _text ~ '^[0-9]{2}/[0-9]{2}/[0-9]{4}$' THEN
        RETURN pg_catalog.to_date(_text, 'DD/MM/YYYY');
    END IF;
    RAISE EXCEPTION '%: % ''%'' is not a date (AAAA-MM-DD or DD/MM/AAAA)', p_caller, p_field, p_value
        USING ERRCODE = 'JU400';
EXCEPTION
    WHEN datetime_field_overflow OR invalid_datetime_format THEN
        RAISE EXCEPTION '%: % ''%'' is not a valid date', p_caller, p_field, p_value USING ERRCODE = 'JU400';
END;
$$;

-- A time of day from "07:00" or "7:00:00"; NULL when blank.
CREATE OR REPLACE FUNCTION public._import_time(p_caller text, p_field text, p_value text)
RETURNS time
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _text text := pg_catalog.btrim(p_value);
BEGIN
    IF nullif(_text, '') IS NULL THEN
        RETURN NULL;
    END IF;
    IF _text ~ '^[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?$' THEN
        RETURN _text::time;
    END IF;
    RAISE EXCEPTION '%: % ''%'' is not a time (HH:MM)', p_caller, p_field, p_value USING ERRCODE = 'JU400';
EXCEPTION
    WHEN datetime_field_overflow OR invalid_datetime_format THEN
        RAISE EXCEPTION '%: % ''%'' is not a valid time', p_caller, p_field, p_value USING ERRCODE = 'JU400';
END;
$$;

-- p->key, which must be present and not blank.
CREATE OR REPLACE FUNCTION public._import_required(p_caller text, p jsonb, p_key text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _value text := public._import_text(p, p_key);
BEGIN
    IF _value IS NULL THEN
        RAISE EXCEPTION '%: % is required', p_caller, p_key USING ERRCODE = 'JU400';
    END IF;
    RETURN _value;
END;
$$;

-- The digits of a phone number in p->key (required): 8 to 15 of them, and
-- no letters ("+55 (11) 99999-0001" is fine).
CREATE OR REPLACE FUNCTION public._import_phone(p_caller text, p jsonb, p_key text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _raw text := public._import_required(p_caller, p, p_key);
    _digits text := pg_catalog.regexp_replace(_raw, '[^0-9]', '', 'g');
BEGIN
    IF _digits !~ '^[0-9]{8,15}$' OR _raw ~ '[A-Za-z]' THEN
        RAISE EXCEPTION '%: % ''%'' must have 8 to 15 digits', p_caller, p_key, _raw USING ERRCODE = 'JU400';
    END IF;
    RETURN _digits;
END;
$$;

-- A JSON object from p->key: an object, or a string holding one (a CSV
-- cell); NULL when absent or blank.
CREATE OR REPLACE FUNCTION public._import_object(p_caller text, p jsonb, p_key text)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _value jsonb;
BEGIN
    BEGIN
        _value := CASE pg_catalog.jsonb_typeof(p -> p_key)
                      WHEN 'object' THEN p -> p_key
                      WHEN 'string' THEN nullif(pg_catalog.btrim(p ->> p_key), '')::jsonb
                  END;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION '%: % ''%'' is not JSON', p_caller, p_key, p ->> p_key USING ERRCODE = 'JU400';
    END;
    IF _value IS NOT NULL AND pg_catalog.jsonb_typeof(_value) <> 'object' THEN
        RAISE EXCEPTION '%: % ''%'' is not a JSON object', p_caller, p_key, p ->> p_key USING ERRCODE = 'JU400';
    END IF;
    RETURN _value;
END;
$$;

------------------------------------------------------------
-- Resolving names to ids
------------------------------------------------------------

-- The especialidade named (or aliased) p_nome, by the same rule Julia's
-- tools use (resolve_especialidade); NULL for a blank name.
CREATE OR REPLACE FUNCTION public._import_especialidade_id(p_caller text, p_nome text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    IF public.normalize_text(p_nome) IS NULL THEN
        RETURN NULL;
    END IF;
    _id := public.resolve_especialidade(p_nome);
    IF _id IS NULL THEN
        RAISE EXCEPTION '%: especialidade ''%'' not found', p_caller, p_nome USING ERRCODE = 'JU404';
    END IF;
    RETURN _id;
END;
$$;

-- The hospital named (or aliased) p_nome; NULL for a blank name.
CREATE OR REPLACE FUNCTION public._import_hospital_id(p_caller text, p_nome text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _norm text := public.normalize_text(p_nome);
    _id bigint;
BEGIN
    IF _norm IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT h.id INTO _id FROM public.hospitais AS h WHERE public.normalize_text(h.nome) = _norm
     ORDER BY h.id LIMIT 1;
    IF _id IS NULL THEN
        SELECT a.hospital_id INTO _id FROM public.hospitais_alias AS a WHERE a.alias_norm = _norm;
    END IF;
    IF _id IS NULL THEN
        RAISE EXCEPTION '%: hospital ''%'' not found', p_caller, p_nome USING ERRCODE = 'JU404';
    END IF;
    RETURN _id;
END;
$$;

-- Raise unless p_table is one of the name-only lookup tables.
CREATE OR REPLACE FUNCTION public._import_check_lookup(p_caller text, p_table text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
BEGIN
    IF p_table IS NULL OR p_table NOT IN ('setores', 'periodos', 'tipos_vaga', 'formas_recebimento') THEN
        RAISE EXCEPTION '%: ''%'' is not a lookup table (setores, periodos, tipos_vaga, formas_recebimento)',
            p_caller, p_table USING ERRCODE = 'JU400';
    END IF;
END;
$$;

-- The row of lookup table p_table named p_nome (accents and case ignored);
-- NULL for a blank name.
CREATE OR REPLACE FUNCTION public._import_lookup_id(p_caller text, p_table text, p_nome text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _id bigint;
BEGIN
    PERFORM public._import_check_lookup(p_caller, p_table);
    IF public.normalize_text(p_nome) IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT t.id FROM public.%I AS t WHERE public.normalize_text(t.nome) = public.normalize_text($1)
          ORDER BY t.id LIMIT 1', p_table)
       INTO _id
      USING p_nome;
    IF _id IS NULL THEN
        -- "setores" -> "setor", "tipos_vaga" -> "tipo_vaga": the column name people write.
        RAISE EXCEPTION '%: % ''%'' not found', p_caller,
            CASE p_table WHEN 'setores' THEN 'setor' WHEN 'periodos' THEN 'periodo'
                         WHEN 'tipos_vaga' THEN 'tipo_vaga' ELSE 'forma_recebimento' END,
            p_nome USING ERRCODE = 'JU404';
    END IF;
    RETURN _id;
END;
$$;

------------------------------------------------------------
-- Aliases
------------------------------------------------------------

-- Add aliases to an especialidade or hospital; returns how many were new.
-- An alias already used by another row is an error naming both.
CREATE OR REPLACE FUNCTION public._import_aliases(p_caller text, p_kind text, p_id bigint, p_aliases text[])
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _alias text;
    _new bigint;
    _owner text;
    _added integer := 0;
BEGIN
    FOREACH _alias IN ARRAY p_aliases LOOP
        IF p_kind = 'especialidade' THEN
            INSERT INTO public.especialidades_alias (especialidade_id, alias) VALUES (p_id, _alias)
            ON CONFLICT (alias_norm) DO NOTHING
            RETURNING id INTO _new;
            IF _new IS NULL THEN
                SELECT e.nome INTO _owner
                  FROM public.especialidades_alias AS a
                  JOIN public.especialidades AS e ON e.id = a.especialidade_id
                 WHERE a.alias_norm = public.normalize_text(_alias) AND a.especialidade_id <> p_id;
            END IF;
        ELSE
            INSERT INTO public.hospitais_alias (hospital_id, alias) VALUES (p_id, _alias)
            ON CONFLICT (alias_norm) DO NOTHING
            RETURNING id INTO _new;
            IF _new IS NULL THEN
                SELECT h.nome INTO _owner
                  FROM public.hospitais_alias AS a
                  JOIN public.hospitais AS h ON h.id = a.hospital_id
                 WHERE a.alias_norm = public.normalize_text(_alias) AND a.hospital_id <> p_id;
            END IF;
        END IF;
        IF _owner IS NOT NULL THEN
            RAISE EXCEPTION '%: alias ''%'' already belongs to % ''%''', p_caller, _alias, p_kind, _owner
                USING ERRCODE = 'JU409';
        END IF;
        _added := _added + (_new IS NOT NULL)::integer;
        _new := NULL;
    END LOOP;
    RETURN _added;
END;
$$;
