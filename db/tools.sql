-- Julia's tools: what Claude may do in a conversation, each a function here.
-- execute_tool() is the one entry point the worker calls with the tool name
-- and the model's input; errors come back as RAISE messages for the model.

------------------------------------------------------------
-- Lookups
------------------------------------------------------------

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

-- The especialidade named by a name or an alias ("GO", "gineco"), or NULL.
CREATE OR REPLACE FUNCTION public.resolve_especialidade(p_text text)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(
        (SELECT e.id FROM public.especialidades AS e
          WHERE public.normalize_text(e.nome) = public.normalize_text(p_text)),
        (SELECT a.especialidade_id FROM public.especialidades_alias AS a
          WHERE a.alias_norm = public.normalize_text(p_text)),
        (SELECT e.id FROM public.especialidades AS e
          WHERE length(public.normalize_text(p_text)) >= 4
            AND public.normalize_text(e.nome) LIKE public.normalize_text(p_text) || '%'
          ORDER BY length(e.nome) LIMIT 1));
$$;

------------------------------------------------------------
-- buscar_vagas
------------------------------------------------------------

-- Open future shifts matching the filters (a NULL filter matches all), as
-- a jsonb array, most relevant for this doctor first: her region or city,
-- her preferred periods and hospitals, then soonest, then best paid.
CREATE OR REPLACE FUNCTION public._open_vagas(
    p_cliente public.clientes, p_especialidade_id bigint, p_regiao text, p_periodo text,
    p_data_inicio date, p_data_fim date, p_limite integer
)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(to_jsonb(v) - 'relevancia' ORDER BY v.relevancia DESC, v.data, v.valor DESC), '[]'::jsonb)
      FROM (
        SELECT va.id AS vaga_id, h.nome AS hospital, h.cidade, h.regiao, e.nome AS especialidade,
               s.nome AS setor, va.data, p.nome AS periodo, va.valor, f.nome AS forma_recebimento,
               t.nome AS tipo, va.observacoes,
               (CASE WHEN public.normalize_text(h.regiao) = public.normalize_text(p_cliente.regiao)
                       OR public.normalize_text(h.cidade) = public.normalize_text(p_cliente.cidade) THEN 2 ELSE 0 END
                + CASE WHEN p_cliente.preferencias -> 'periodos' ? p.nome THEN 1 ELSE 0 END
                + CASE WHEN p_cliente.preferencias -> 'hospitais' ? h.nome THEN 1 ELSE 0 END) AS relevancia
          FROM public.vagas AS va
          JOIN public.hospitais AS h ON h.id = va.hospital_id
          JOIN public.especialidades AS e ON e.id = va.especialidade_id
          JOIN public.periodos AS p ON p.id = va.periodo_id
          LEFT JOIN public.setores AS s ON s.id = va.setor_id
          LEFT JOIN public.formas_recebimento AS f ON f.id = va.forma_recebimento_id
          LEFT JOIN public.tipos_vaga AS t ON t.id = va.tipo_vaga_id
         WHERE va.status = 'aberta'
           AND va.data >= coalesce(p_data_inicio, current_date)
           AND va.data >= current_date
           AND (p_data_fim IS NULL OR va.data <= p_data_fim)
           AND (p_especialidade_id IS NULL OR va.especialidade_id = p_especialidade_id)
           AND (nullif(trim(p_regiao), '') IS NULL
                OR public.normalize_text(h.regiao) LIKE '%' || public.normalize_text(p_regiao) || '%'
                OR public.normalize_text(h.cidade) LIKE '%' || public.normalize_text(p_regiao) || '%'
                OR EXISTS (SELECT 1 FROM public.hospitais_alias AS ha
                            WHERE ha.hospital_id = h.id AND ha.alias_norm = public.normalize_text(p_regiao)))
           AND (nullif(trim(p_periodo), '') IS NULL
                OR public.normalize_text(p.nome) LIKE '%' || public.normalize_text(p_periodo) || '%')
         ORDER BY relevancia DESC, va.data, va.valor DESC
         LIMIT greatest(1, least(coalesce(p_limite, 5), 20))
      ) AS v;
$$;

-- Open future shifts for a doctor, filtered by specialty (name or alias;
-- default: the doctor's), region/city, period and date range, most relevant
-- first: the doctor's region, preferred periods, soonest, best paid.
CREATE OR REPLACE FUNCTION public.buscar_vagas(
    p_cliente_id bigint,
    p_especialidade text DEFAULT NULL,
    p_regiao text DEFAULT NULL,
    p_periodo text DEFAULT NULL,
    p_data_inicio date DEFAULT NULL,
    p_data_fim date DEFAULT NULL,
    p_limite integer DEFAULT 5
)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _cliente public.clientes;
    _especialidade_id bigint;
BEGIN
    SELECT * INTO _cliente FROM public.clientes AS c WHERE c.id = p_cliente_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'buscar_vagas: cliente % not found', p_cliente_id USING ERRCODE = 'JU404';
    END IF;
    IF nullif(trim(p_especialidade), '') IS NOT NULL THEN
        _especialidade_id := public.resolve_especialidade(p_especialidade);
        IF _especialidade_id IS NULL THEN
            RETURN jsonb_build_object(
                'vagas', '[]'::jsonb,
                'erro', format('Especialidade "%s" não encontrada.', p_especialidade),
                'especialidades_conhecidas', (SELECT jsonb_agg(e.nome ORDER BY e.nome) FROM public.especialidades AS e));
        END IF;
    ELSE
        _especialidade_id := _cliente.especialidade_id;
    END IF;
    RETURN jsonb_build_object(
        'vagas', public._open_vagas(_cliente, _especialidade_id, p_regiao, p_periodo, p_data_inicio, p_data_fim,
                                    p_limite),
        'especialidade', (SELECT e.nome FROM public.especialidades AS e WHERE e.id = _especialidade_id));
END;
$$;

------------------------------------------------------------
-- reservar_vaga
------------------------------------------------------------

-- Reserve an open shift for the doctor of a conversation. One statement
-- decides: of two doctors racing for one vaga, exactly one gets it.
CREATE OR REPLACE FUNCTION public.reservar_vaga(p_conversation_id bigint, p_vaga_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cliente_id bigint;
    _vaga public.vagas;
BEGIN
    _cliente_id := (public._conversation_or_404('reservar_vaga', p_conversation_id)).cliente_id;
    UPDATE public.vagas AS v
       SET status = 'reservada', reservada_por = _cliente_id, reservada_em = clock_timestamp(), updated_at = now()
     WHERE v.id = p_vaga_id AND v.status = 'aberta' AND v.data >= current_date
    RETURNING * INTO _vaga;
    IF FOUND THEN
        RETURN jsonb_build_object('ok', true, 'resultado', 'reservada', 'vaga_id', _vaga.id,
                                  'mensagem', 'Vaga reservada para o médico; a equipe confirma os detalhes.');
    END IF;
    SELECT * INTO _vaga FROM public.vagas AS v WHERE v.id = p_vaga_id;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('ok', false, 'resultado', 'nao_encontrada', 'vaga_id', p_vaga_id,
                                  'mensagem', 'Essa vaga não existe.');
    ELSIF _vaga.reservada_por = _cliente_id THEN
        RETURN jsonb_build_object('ok', true, 'resultado', 'ja_reservada_para_voce', 'vaga_id', p_vaga_id,
                                  'mensagem', 'Essa vaga já está reservada para este médico.');
    END IF;
    RETURN jsonb_build_object('ok', false, 'resultado', 'indisponivel', 'vaga_id', p_vaga_id, 'status', _vaga.status,
                              'mensagem', 'Essa vaga não está mais disponível.');
END;
$$;

------------------------------------------------------------
-- salvar_preferencias
------------------------------------------------------------

-- Save what the doctor told about himself: known profile fields go to their
-- columns (especialidade resolved through aliases), the rest merges into
-- preferencias.
CREATE OR REPLACE FUNCTION public.salvar_preferencias(p_conversation_id bigint, p_dados jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cliente_id bigint;
    _especialidade_id bigint;
    _prefs jsonb := coalesce(p_dados, '{}'::jsonb) - 'nome' - 'crm' - 'especialidade' - 'regiao' - 'cidade';
BEGIN
    IF jsonb_typeof(p_dados) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'salvar_preferencias: dados must be an object' USING ERRCODE = 'JU400';
    END IF;
    _cliente_id := (public._conversation_or_404('salvar_preferencias', p_conversation_id)).cliente_id;
    IF p_dados ? 'especialidade' THEN
        _especialidade_id := public.resolve_especialidade(p_dados ->> 'especialidade');
        IF _especialidade_id IS NULL THEN
            RAISE EXCEPTION 'especialidade "%" não encontrada', p_dados ->> 'especialidade' USING ERRCODE = 'JU404';
        END IF;
    END IF;
    UPDATE public.clientes AS c
       SET nome = coalesce(nullif(p_dados ->> 'nome', ''), c.nome),
           crm = coalesce(nullif(p_dados ->> 'crm', ''), c.crm),
           especialidade_id = coalesce(_especialidade_id, c.especialidade_id),
           regiao = coalesce(nullif(p_dados ->> 'regiao', ''), c.regiao),
           cidade = coalesce(nullif(p_dados ->> 'cidade', ''), c.cidade),
           preferencias = c.preferencias || _prefs,
           updated_at = now()
     WHERE c.id = _cliente_id;
    RETURN jsonb_build_object('ok', true, 'salvo', p_dados);
END;
$$;

------------------------------------------------------------
-- Handoff, hand-back, opt-out, human takeover
------------------------------------------------------------

-- Hand the conversation to a human: Julia stops replying in it until
-- devolver_para_julia(); the metrics record it.
CREATE OR REPLACE FUNCTION public.transferir_para_humano(p_conversation_id bigint, p_motivo text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    IF coalesce(trim(p_motivo), '') = '' THEN
        RAISE EXCEPTION 'transferir_para_humano: motivo is required' USING ERRCODE = 'JU400';
    END IF;
    UPDATE public.conversations AS c
       SET handoff_ativo = true, handoff_motivo = p_motivo, handoff_em = clock_timestamp(), updated_at = now()
     WHERE c.id = p_conversation_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transferir_para_humano: conversation % not found', p_conversation_id USING ERRCODE = 'JU404';
    END IF;
    INSERT INTO public.metricas_conversa AS m (conversation_id, cliente_id, houve_handoff, motivo_handoff)
    SELECT c.id, c.cliente_id, true, p_motivo FROM public.conversations AS c WHERE c.id = p_conversation_id
    ON CONFLICT (conversation_id) DO UPDATE SET houve_handoff = true, motivo_handoff = p_motivo, updated_at = now();
    RETURN jsonb_build_object('ok', true, 'mensagem', 'Conversa transferida para a equipe.');
END;
$$;

-- Give a handed-off conversation back to Julia.
CREATE OR REPLACE FUNCTION public.devolver_para_julia(p_conversation_id bigint)
RETURNS boolean
LANGUAGE sql
SET search_path = ''
AS $$
    UPDATE public.conversations AS c
       SET handoff_ativo = false, julia_pausada_ate = NULL, updated_at = now()
     WHERE c.id = p_conversation_id AND (c.handoff_ativo OR c.julia_pausada_ate IS NOT NULL)
    RETURNING true;
$$;

-- The doctor asked not to be contacted: never message him proactively again,
-- at any of his addresses (every row of the person, until they are merged).
CREATE OR REPLACE FUNCTION public.registrar_opt_out(p_conversation_id bigint, p_motivo text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _already boolean;
    _cliente_id bigint;
BEGIN
    _cliente_id := (public._conversation_or_404('registrar_opt_out', p_conversation_id)).cliente_id;
    _already := public.person_opted_out(_cliente_id);
    UPDATE public.clientes AS cl
       SET opt_out = true, opt_out_em = coalesce(cl.opt_out_em, clock_timestamp()),
           opt_out_motivo = coalesce(nullif(p_motivo, ''), cl.opt_out_motivo, 'pedido do médico'), updated_at = now()
     WHERE cl.id IN (SELECT public.same_person_ids(_cliente_id)) AND NOT cl.opt_out;
    RETURN jsonb_build_object('ok', true, 'ja_registrado', _already,
                              'mensagem', 'Opt-out registrado: nenhuma mensagem proativa será enviada.');
END;
$$;

-- Minutes Julia stays quiet after a human types on the company phone.
CREATE OR REPLACE FUNCTION public.takeover_minutes()
RETURNS integer
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT public.setting_int('takeover_minutes', 120);
$$;

------------------------------------------------------------
-- The one entry point
------------------------------------------------------------

-- Run a tool by name with the model's input (jsonb). Unknown tools and bad
-- input RAISE; the worker returns the message to the model as an error.
CREATE OR REPLACE FUNCTION public.execute_tool(p_conversation_id bigint, p_name text, p_input jsonb)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cliente_id bigint;
    _result jsonb;
    _in jsonb := coalesce(p_input, '{}'::jsonb);
BEGIN
    _cliente_id := (public._conversation_or_404('execute_tool', p_conversation_id)).cliente_id;
    CASE p_name
        WHEN 'buscar_vagas' THEN
            _result := public.buscar_vagas(_cliente_id, _in ->> 'especialidade', _in ->> 'regiao', _in ->> 'periodo',
                                           (_in ->> 'data_inicio')::date, (_in ->> 'data_fim')::date,
                                           coalesce((_in ->> 'limite')::integer, 5));
            IF jsonb_array_length(_result -> 'vagas') > 0 THEN
                -- Shifts were offered: the doctor showed interest (follow-ups key on it).
                UPDATE public.conversations SET interesse_em = coalesce(interesse_em, clock_timestamp())
                 WHERE id = p_conversation_id;
            END IF;
            RETURN _result;
        WHEN 'reservar_vaga' THEN
            IF NOT (_in ? 'vaga_id') THEN
                RAISE EXCEPTION 'reservar_vaga: vaga_id is required' USING ERRCODE = 'JU400';
            END IF;
            RETURN public.reservar_vaga(p_conversation_id, (_in ->> 'vaga_id')::bigint);
        WHEN 'salvar_preferencias' THEN
            RETURN public.salvar_preferencias(p_conversation_id, _in);
        WHEN 'transferir_para_humano' THEN
            RETURN public.transferir_para_humano(p_conversation_id, _in ->> 'motivo');
        WHEN 'registrar_opt_out' THEN
            RETURN public.registrar_opt_out(p_conversation_id, _in ->> 'motivo');
        ELSE
            RAISE EXCEPTION 'unknown tool %', p_name USING ERRCODE = 'JU404';
    END CASE;
END;
$$;
