-- Importing reference and content data (`julia db import DIR`, `julia dev`).
-- One function per entity: it takes one row as jsonb (a CSV row, all
-- strings, or a JSON object), resolves names to ids by name or normalized
-- alias (db/import_values.sql), upserts, and returns what it did:
-- 'inserted', 'updated' or 'skipped' (already there, nothing to change). An
-- unknown reference or a bad value raises an error that names the
-- offending value.
--
-- Imports add and update; they never delete rows, aliases or tags, and never
-- clear a doctor's opt-out. Empty cells leave existing values alone.

------------------------------------------------------------
-- What an import did
------------------------------------------------------------

-- The outcome of one row's upsert from its RETURNING xmax = 0: true
-- 'inserted', false 'updated', NULL (nothing returned) 'skipped'; with
-- p_also_changed (aliases added, say) a skipped row counts as 'updated'.
CREATE OR REPLACE FUNCTION public._import_outcome(p_inserted boolean, p_also_changed boolean DEFAULT false)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = ''
AS $$
    SELECT CASE WHEN p_inserted THEN 'inserted'
                WHEN p_inserted IS NOT NULL OR p_also_changed THEN 'updated'
                ELSE 'skipped' END;
$$;

------------------------------------------------------------
-- Reference data
------------------------------------------------------------

-- Upsert one especialidade: {nome, aliases}.
CREATE OR REPLACE FUNCTION public.import_especialidade(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _nome text := public._import_required('import_especialidade', p, 'nome');
    _id bigint;
    _inserted boolean;
BEGIN
    INSERT INTO public.especialidades (nome) VALUES (_nome)
    ON CONFLICT (nome) DO NOTHING
    RETURNING id, true INTO _id, _inserted;
    IF _id IS NULL THEN
        SELECT e.id INTO STRICT _id FROM public.especialidades AS e WHERE e.nome = _nome;
    END IF;
    RETURN public._import_outcome(_inserted,
        public._import_aliases('import_especialidade', 'especialidade', _id, public._import_list(p, 'aliases')) > 0);
END;
$$;

-- Upsert one hospital: {nome, cidade, regiao, endereco, aliases}.
CREATE OR REPLACE FUNCTION public.import_hospital(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _nome text := public._import_required('import_hospital', p, 'nome');
    _cidade text := public._import_required('import_hospital', p, 'cidade');
    _regiao text := public._import_required('import_hospital', p, 'regiao');
    _endereco text := public._import_text(p, 'endereco');
    _id bigint;
    _inserted boolean;
BEGIN
    INSERT INTO public.hospitais AS h (nome, cidade, regiao, endereco)
    VALUES (_nome, _cidade, _regiao, _endereco)
    ON CONFLICT (nome) DO UPDATE
       SET cidade = excluded.cidade, regiao = excluded.regiao, endereco = coalesce(excluded.endereco, h.endereco)
     WHERE (h.cidade, h.regiao, h.endereco) IS DISTINCT FROM (excluded.cidade, excluded.regiao,
                                                             coalesce(excluded.endereco, h.endereco))
    -- xmax = 0 only on a freshly inserted row version.
    RETURNING h.id, h.xmax = 0 INTO _id, _inserted;
    IF _id IS NULL THEN
        SELECT h.id INTO STRICT _id FROM public.hospitais AS h WHERE h.nome = _nome;
    END IF;
    RETURN public._import_outcome(_inserted,
        public._import_aliases('import_hospital', 'hospital', _id, public._import_list(p, 'aliases')) > 0);
END;
$$;

-- Add one name to a lookup table (setores, periodos, tipos_vaga,
-- formas_recebimento) unless it is there.
CREATE OR REPLACE FUNCTION public.import_lookup(p_table text, p_nome text)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _nome text := nullif(pg_catalog.btrim(p_nome), '');
    _inserted boolean;
BEGIN
    PERFORM public._import_check_lookup('import_lookup', p_table);
    IF _nome IS NULL THEN
        RAISE EXCEPTION 'import_lookup: nome is required (table %)', p_table USING ERRCODE = 'JU400';
    END IF;
    EXECUTE pg_catalog.format(
        'INSERT INTO public.%I (nome) VALUES ($1) ON CONFLICT (nome) DO NOTHING RETURNING true', p_table)
       INTO _inserted
      USING _nome;
    RETURN public._import_outcome(_inserted);
END;
$$;

-- Upsert one periodo with its hours: {nome, hora_inicio, hora_fim}.
CREATE OR REPLACE FUNCTION public.import_periodo(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _nome text := public._import_required('import_periodo', p, 'nome');
    _inicio time := public._import_time('import_periodo', 'hora_inicio', p ->> 'hora_inicio');
    _fim time := public._import_time('import_periodo', 'hora_fim', p ->> 'hora_fim');
    _inserted boolean;
BEGIN
    INSERT INTO public.periodos AS t (nome, hora_inicio, hora_fim) VALUES (_nome, _inicio, _fim)
    ON CONFLICT (nome) DO UPDATE
       SET hora_inicio = coalesce(excluded.hora_inicio, t.hora_inicio),
           hora_fim = coalesce(excluded.hora_fim, t.hora_fim)
     WHERE (t.hora_inicio, t.hora_fim) IS DISTINCT FROM (coalesce(excluded.hora_inicio, t.hora_inicio),
                                                         coalesce(excluded.hora_fim, t.hora_fim))
    RETURNING t.xmax = 0 INTO _inserted;
    RETURN public._import_outcome(_inserted);
END;
$$;

------------------------------------------------------------
-- Doctors
------------------------------------------------------------

-- Upsert one doctor by telefone, in any of its forms: {telefone, nome, crm, especialidade, regiao,
-- cidade, tags, preferencias, opt_out}. Tags are added, preferencias merged;
-- opt_out = sim opts the doctor out, and nothing here ever opts one back in.
CREATE OR REPLACE FUNCTION public.import_medico(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _telefone text := public._import_phone('import_medico', p, 'telefone');
    _nome text := public._import_text(p, 'nome');
    _crm text := public._import_text(p, 'crm');
    _especialidade_id bigint := public._import_especialidade_id('import_medico', public._import_text(p, 'especialidade'));
    _regiao text := public._import_text(p, 'regiao');
    _cidade text := public._import_text(p, 'cidade');
    _tags text[] := public._import_list(p, 'tags');
    _opt_out boolean := coalesce(public._import_boolean('import_medico', 'opt_out', p ->> 'opt_out'), false);
    _preferencias jsonb := public._import_object('import_medico', p, 'preferencias');
    _inserted boolean := true;
    _existing bigint;
BEGIN
    -- The same person in another form (12/13 digits) is this row (db/identity.sql).
    PERFORM public._lock_identity('phone:' || public.phone_key(_telefone));
    _existing := public.find_cliente(_telefone);
    IF _existing IS NULL THEN
        INSERT INTO public.clientes (telefone, nome, crm, especialidade_id, regiao, cidade, tags, preferencias,
                                     opt_out, opt_out_em, opt_out_motivo)
        VALUES (_telefone, _nome, _crm, _especialidade_id, _regiao, _cidade, _tags, coalesce(_preferencias, '{}'),
                _opt_out, CASE WHEN _opt_out THEN pg_catalog.now() END, CASE WHEN _opt_out THEN 'importação' END);
        RETURN public._import_outcome(_inserted);
    END IF;
    UPDATE public.clientes AS c
       SET nome = coalesce(_nome, c.nome),
           crm = coalesce(_crm, c.crm),
           especialidade_id = coalesce(_especialidade_id, c.especialidade_id),
           regiao = coalesce(_regiao, c.regiao),
           cidade = coalesce(_cidade, c.cidade),
           tags = c.tags || ARRAY(SELECT t.tag FROM pg_catalog.unnest(_tags) WITH ORDINALITY AS t (tag, pos)
                                   WHERE t.tag <> ALL (c.tags) ORDER BY t.pos),
           preferencias = c.preferencias || coalesce(_preferencias, '{}'),
           opt_out = c.opt_out OR _opt_out,
           opt_out_em = CASE WHEN _opt_out AND NOT c.opt_out THEN pg_catalog.now() ELSE c.opt_out_em END,
           opt_out_motivo = CASE WHEN _opt_out AND NOT c.opt_out THEN 'importação' ELSE c.opt_out_motivo END,
           updated_at = pg_catalog.now()
     WHERE c.id = _existing
       AND ((c.nome, c.crm, c.especialidade_id, c.regiao, c.cidade, c.opt_out)
            IS DISTINCT FROM (coalesce(_nome, c.nome), coalesce(_crm, c.crm),
                              coalesce(_especialidade_id, c.especialidade_id), coalesce(_regiao, c.regiao),
                              coalesce(_cidade, c.cidade), c.opt_out OR _opt_out)
            OR NOT (c.tags @> _tags)
            OR NOT (c.preferencias @> coalesce(_preferencias, '{}')))
    RETURNING false INTO _inserted;
    RETURN public._import_outcome(_inserted);
END;
$$;

------------------------------------------------------------
-- Shifts
------------------------------------------------------------

-- A vaga's status (default aberta) and the doctor it is reserved for
-- (reservada_por: her telefone, in any form), which must agree: reservada
-- needs her, and only reservada or preenchida may name her.
CREATE OR REPLACE FUNCTION public._import_vaga_status(p jsonb, OUT status text, OUT reservada_por bigint)
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _status text := lower(coalesce(public._import_text(p, 'status'), 'aberta'));
    _reservada text := public._import_text(p, 'reservada_por');
    _cliente_id bigint;
BEGIN
    IF _status NOT IN ('aberta', 'reservada', 'preenchida', 'cancelada') THEN
        RAISE EXCEPTION 'import_vaga: status ''%'' is not aberta, reservada, preenchida or cancelada', p ->> 'status'
            USING ERRCODE = 'JU400';
    END IF;
    IF _reservada IS NOT NULL THEN
        _cliente_id := public.find_cliente(_reservada);
        IF _cliente_id IS NULL THEN
            RAISE EXCEPTION 'import_vaga: reservada_por ''%'' is not a known doctor telefone', _reservada
                USING ERRCODE = 'JU404';
        END IF;
    END IF;
    IF _status = 'reservada' AND _cliente_id IS NULL THEN
        RAISE EXCEPTION 'import_vaga: status reservada needs reservada_por (the doctor''s telefone)'
            USING ERRCODE = 'JU400';
    END IF;
    IF _status NOT IN ('reservada', 'preenchida') AND _cliente_id IS NOT NULL THEN
        RAISE EXCEPTION 'import_vaga: reservada_por ''%'' given for a vaga with status %', _reservada, _status
            USING ERRCODE = 'JU400';
    END IF;
    status := _status;
    reservada_por := _cliente_id;
END;
$$;

-- Insert one vaga unless the same shift exists. {hospital, especialidade,
-- setor, periodo, tipo_vaga, forma_recebimento, data | dias_a_partir_de_hoje,
-- valor, status, reservada_por (telefone), observacoes}. Natural key:
-- hospital + especialidade + data + periodo + setor (any status); an existing
-- shift is left as it is (skipped), so re-importing never duplicates or
-- overwrites a shift someone already reserved.
CREATE OR REPLACE FUNCTION public.import_vaga(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _hospital_id bigint := public._import_hospital_id('import_vaga', public._import_required('import_vaga', p, 'hospital'));
    _especialidade_id bigint := public._import_especialidade_id(
        'import_vaga', public._import_required('import_vaga', p, 'especialidade'));
    _periodo_id bigint := public._import_lookup_id(
        'import_vaga', 'periodos', public._import_required('import_vaga', p, 'periodo'));
    _setor_id bigint := public._import_lookup_id('import_vaga', 'setores', public._import_text(p, 'setor'));
    _tipo_vaga_id bigint := public._import_lookup_id(
        'import_vaga', 'tipos_vaga', coalesce(public._import_text(p, 'tipo_vaga'), public._import_text(p, 'tipo')));
    _forma_id bigint := public._import_lookup_id(
        'import_vaga', 'formas_recebimento', public._import_text(p, 'forma_recebimento'));
    _dias integer := public._import_integer('import_vaga', 'dias_a_partir_de_hoje', p ->> 'dias_a_partir_de_hoje');
    _data date := public._import_date('import_vaga', 'data', p ->> 'data');
    _valor numeric := public._import_numeric('import_vaga', 'valor', public._import_required('import_vaga', p, 'valor'));
    _status text;
    _reservada_por bigint;
    _inserted boolean;
BEGIN
    IF _data IS NULL AND _dias IS NULL THEN
        RAISE EXCEPTION 'import_vaga: data or dias_a_partir_de_hoje is required' USING ERRCODE = 'JU400';
    END IF;
    -- Shift dates are Brazilian calendar days, whatever the session time zone.
    _data := coalesce(_data, (pg_catalog.now() AT TIME ZONE 'America/Sao_Paulo')::date + _dias);
    IF _valor < 0 THEN
        RAISE EXCEPTION 'import_vaga: valor ''%'' is negative', p ->> 'valor' USING ERRCODE = 'JU400';
    END IF;
    SELECT * INTO _status, _reservada_por FROM public._import_vaga_status(p);

    -- Two imports of the same shift at once: the second waits, then skips.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
        pg_catalog.format('import_vaga:%s:%s:%s:%s:%s', _hospital_id, _especialidade_id, _data, _periodo_id, _setor_id),
        0));
    INSERT INTO public.vagas (hospital_id, especialidade_id, setor_id, periodo_id, tipo_vaga_id, forma_recebimento_id,
                              data, valor, status, reservada_por, reservada_em, observacoes)
    SELECT _hospital_id, _especialidade_id, _setor_id, _periodo_id, _tipo_vaga_id, _forma_id,
           _data, _valor, _status, _reservada_por, CASE WHEN _reservada_por IS NOT NULL THEN pg_catalog.now() END,
           public._import_text(p, 'observacoes')
     WHERE NOT EXISTS (SELECT 1 FROM public.vagas AS v
                        WHERE v.hospital_id = _hospital_id AND v.especialidade_id = _especialidade_id
                          AND v.data = _data AND v.periodo_id = _periodo_id
                          AND v.setor_id IS NOT DISTINCT FROM _setor_id)
    RETURNING true INTO _inserted;
    RETURN public._import_outcome(_inserted);
END;
$$;

------------------------------------------------------------
-- Knowledge, rules, prompts
------------------------------------------------------------

-- Upsert one knowledge chunk on (fonte, titulo): {fonte, titulo, conteudo,
-- tags}. New conteudo changes content_hash, so `julia kb reindex` re-embeds it.
CREATE OR REPLACE FUNCTION public.import_conhecimento(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _inserted boolean;
BEGIN
    INSERT INTO public.conhecimento_julia AS k (fonte, titulo, conteudo, tags)
    VALUES (public._import_required('import_conhecimento', p, 'fonte'),
            public._import_required('import_conhecimento', p, 'titulo'),
            public._import_required('import_conhecimento', p, 'conteudo'),
            public._import_list(p, 'tags'))
    ON CONFLICT ON CONSTRAINT conhecimento_fonte_titulo DO UPDATE
       SET conteudo = excluded.conteudo, tags = excluded.tags, updated_at = pg_catalog.now()
     WHERE (k.conteudo, k.tags) IS DISTINCT FROM (excluded.conteudo, excluded.tags)
    RETURNING k.xmax = 0 INTO _inserted;
    RETURN public._import_outcome(_inserted);
END;
$$;

-- Upsert one rule on titulo: {titulo, texto, ativa (default sim), prioridade
-- (default 100; lower comes first)}.
CREATE OR REPLACE FUNCTION public.import_diretriz(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _ativa boolean := public._import_boolean('import_diretriz', 'ativa', p ->> 'ativa');
    _prioridade integer := public._import_integer('import_diretriz', 'prioridade', p ->> 'prioridade');
    _inserted boolean;
BEGIN
    INSERT INTO public.diretrizes AS d (titulo, texto, ativa, prioridade)
    VALUES (public._import_required('import_diretriz', p, 'titulo'),
            public._import_required('import_diretriz', p, 'texto'),
            coalesce(_ativa, true), coalesce(_prioridade, 100))
    ON CONFLICT (titulo) DO UPDATE
       SET texto = excluded.texto,
           ativa = coalesce(_ativa, d.ativa),
           prioridade = coalesce(_prioridade, d.prioridade)
     WHERE (d.texto, d.ativa, d.prioridade)
           IS DISTINCT FROM (excluded.texto, coalesce(_ativa, d.ativa), coalesce(_prioridade, d.prioridade))
    RETURNING d.xmax = 0 INTO _inserted;
    RETURN public._import_outcome(_inserted);
END;
$$;

-- Add one prompt version: {nome, versao, conteudo, ativo}. Versions are
-- immutable: the same (nome, versao) with other conteudo is an error.
-- ativo = sim activates this version and deactivates the others of the same
-- nome; ativo absent or não never deactivates anything.
CREATE OR REPLACE FUNCTION public.import_prompt(p jsonb)
RETURNS text
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _nome text := public._import_required('import_prompt', p, 'nome');
    _versao integer := public._import_integer('import_prompt', 'versao',
                                              public._import_required('import_prompt', p, 'versao'));
    _conteudo text := public._import_required('import_prompt', p, 'conteudo');
    _ativo boolean := coalesce(public._import_boolean('import_prompt', 'ativo', p ->> 'ativo'), false);
    _old public.prompts;
BEGIN
    IF _versao < 1 THEN
        RAISE EXCEPTION 'import_prompt: versao ''%'' must be 1 or more', p ->> 'versao' USING ERRCODE = 'JU400';
    END IF;
    -- One activation per nome at a time (prompts_one_active allows one active row).
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('import_prompt:' || _nome, 0));
    SELECT * INTO _old FROM public.prompts AS r WHERE r.nome = _nome AND r.versao = _versao;
    IF FOUND AND _old.conteudo IS DISTINCT FROM _conteudo THEN
        RAISE EXCEPTION 'import_prompt: prompt ''%'' versao % already exists with other conteudo; import it as a new versao',
            _nome, _versao USING ERRCODE = 'JU409';
    END IF;
    IF FOUND AND (_old.ativo OR NOT _ativo) THEN
        RETURN 'skipped';
    END IF;
    IF _ativo THEN
        UPDATE public.prompts AS r SET ativo = false WHERE r.nome = _nome AND r.ativo;
    END IF;
    IF _old.id IS NULL THEN
        INSERT INTO public.prompts (nome, versao, conteudo, ativo) VALUES (_nome, _versao, _conteudo, _ativo);
        RETURN 'inserted';
    END IF;
    UPDATE public.prompts AS r SET ativo = true WHERE r.id = _old.id;
    RETURN 'updated';
END;
$$;
