-- Proactive outreach: campaigns (a template, a filter, a period), their
-- audience, dispatching their rows to the gate a window at a time, and
-- the one follow-up a silent interested doctor gets. Every message still
-- passes claim_send_slot() (db/sendgate.sql).

------------------------------------------------------------
-- Templates and audience
------------------------------------------------------------

-- Raise naming the first {variable} of a campaign template that
-- render_template() does not fill.
CREATE OR REPLACE FUNCTION public._check_template(p_template text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = ''
AS $$
DECLARE
    _unknown text := substring(replace(replace(replace(replace(replace(
                         p_template, '{nome}', ''), '{primeiro_nome}', ''), '{especialidade}', ''), '{regiao}', ''),
                         '{cidade}', '') FROM '\{[a-z_]+\}');
BEGIN
    IF _unknown IS NOT NULL THEN
        RAISE EXCEPTION 'template variable % is unknown (known: {nome}, {primeiro_nome}, {especialidade}, {regiao}, {cidade})', _unknown
            USING ERRCODE = 'JU400';
    END IF;
END;
$$;

-- Fill a campaign template for one doctor: {nome}, {primeiro_nome},
-- {especialidade}, {regiao}, {cidade}. Unknown {variables} RAISE.
CREATE OR REPLACE FUNCTION public.render_template(p_template text, p_cliente_id bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _c record;
    _out text := p_template;
BEGIN
    PERFORM public._check_template(p_template);
    SELECT cl.nome, split_part(coalesce(cl.nome, ''), ' ', 1) AS primeiro_nome, e.nome AS especialidade,
           cl.regiao, cl.cidade
      INTO _c
      FROM public.clientes AS cl LEFT JOIN public.especialidades AS e ON e.id = cl.especialidade_id
     WHERE cl.id = p_cliente_id;
    _out := replace(_out, '{nome}', coalesce(_c.nome, 'doutor(a)'));
    _out := replace(_out, '{primeiro_nome}', coalesce(nullif(_c.primeiro_nome, ''), 'doutor(a)'));
    _out := replace(_out, '{especialidade}', coalesce(_c.especialidade, 'sua especialidade'));
    _out := replace(_out, '{regiao}', coalesce(_c.regiao, 'sua região'));
    _out := replace(_out, '{cidade}', coalesce(_c.cidade, 'sua cidade'));
    RETURN _out;
END;
$$;

-- Doctors a campaign's filter selects: with a phone, not opted out (on
-- any of their addresses), not blocked, not known to be off WhatsApp,
-- matching specialty/region/tags and untouched for N days; one row per
-- person (the oldest, until duplicates are merged).
CREATE OR REPLACE FUNCTION public.campaign_audience(p_campanha_id bigint)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _f jsonb;
BEGIN
    SELECT k.filtro INTO _f FROM public.campanhas AS k WHERE k.id = p_campanha_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'campaign_audience: campaign % not found', p_campanha_id USING ERRCODE = 'JU404';
    END IF;
    RETURN QUERY
    SELECT cl.id
      FROM public.clientes AS cl
     WHERE cl.telefone IS NOT NULL AND NOT cl.opt_out AND cl.bloqueado_em IS NULL AND cl.sem_whatsapp_em IS NULL
       AND NOT EXISTS (SELECT 1 FROM public.clientes AS o
                        WHERE o.id <> cl.id AND public.phone_key(o.telefone) = public.phone_key(cl.telefone)
                          AND (o.opt_out OR o.id < cl.id))
       AND (NOT _f ? 'especialidades' OR cl.especialidade_id IN (
                SELECT public.resolve_especialidade(x) FROM jsonb_array_elements_text(_f -> 'especialidades') AS x))
       AND (NOT _f ? 'regioes' OR public.normalize_text(cl.regiao) IN (
                SELECT public.normalize_text(x) FROM jsonb_array_elements_text(_f -> 'regioes') AS x))
       AND (NOT _f ? 'tags' OR cl.tags && ARRAY(SELECT jsonb_array_elements_text(_f -> 'tags')))
       AND (NOT _f ? 'sem_contato_ha_dias' OR cl.ultimo_contato_em IS NULL
            OR cl.ultimo_contato_em < clock_timestamp() - make_interval(days => (_f ->> 'sem_contato_ha_dias')::integer))
     ORDER BY cl.id;
END;
$$;

------------------------------------------------------------
-- Campaigns
------------------------------------------------------------

-- Create a campaign (status rascunho); the template is checked now.
CREATE OR REPLACE FUNCTION public.create_campaign(
    p_nome text, p_template text, p_filtro jsonb, p_inicio timestamptz, p_fim timestamptz
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _id bigint;
    _unknown text;
BEGIN
    PERFORM public._check_template(p_template);
    SELECT x INTO _unknown
      FROM pg_catalog.jsonb_array_elements_text(coalesce(p_filtro -> 'especialidades', '[]'::jsonb)) AS x
     WHERE public.resolve_especialidade(x) IS NULL
     LIMIT 1;
    IF _unknown IS NOT NULL THEN
        RAISE EXCEPTION 'create_campaign: especialidade ''%'' not found (known: %)', _unknown,
            coalesce((SELECT string_agg(e.nome, ', ' ORDER BY e.nome) FROM public.especialidades AS e), 'none')
            USING ERRCODE = 'JU404';
    END IF;
    INSERT INTO public.campanhas (nome, template, filtro, inicio, fim)
    VALUES (p_nome, p_template, coalesce(p_filtro, '{}'::jsonb), p_inicio, p_fim)
    RETURNING id INTO _id;
    RETURN _id;
END;
$$;

-- Start (or restart) a campaign: one outbox row per doctor of the audience,
-- idempotently. Sends trickle out through dispatch_outreach() and the gate.
CREATE OR REPLACE FUNCTION public.start_campaign(p_campanha_id bigint)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _k public.campanhas;
    _n integer;
BEGIN
    SELECT * INTO _k FROM public.campanhas AS k WHERE k.id = p_campanha_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'start_campaign: campaign % not found', p_campanha_id USING ERRCODE = 'JU404';
    ELSIF _k.status IN ('concluida', 'cancelada') THEN
        RAISE EXCEPTION 'start_campaign: campaign % is %', p_campanha_id, _k.status USING ERRCODE = 'JU409';
    END IF;
    UPDATE public.campanhas SET status = 'ativa', updated_at = now() WHERE id = p_campanha_id;
    INSERT INTO public.outbox (idempotency_key, kind, campanha_id, cliente_id, number, texto)
    SELECT format('campaign:%s:%s', p_campanha_id, cl.id), 'campaign', p_campanha_id, cl.id,
           coalesce(cl.whatsapp_numero, cl.telefone),
           public.render_template(_k.template, cl.id)
      FROM public.campaign_audience(p_campanha_id) AS a (id)
      JOIN public.clientes AS cl ON cl.id = a.id
    ON CONFLICT (idempotency_key) DO NOTHING;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

-- Pause a campaign: its queued rows stay queued; in-flight send jobs find
-- the campaign inactive at the gate and step back.
CREATE OR REPLACE FUNCTION public.pause_campaign(p_campanha_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    UPDATE public.campanhas SET status = 'pausada', updated_at = now()
     WHERE id = p_campanha_id AND status IN ('ativa', 'rascunho');
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pause_campaign: campaign % is not active', p_campanha_id USING ERRCODE = 'JU409';
    END IF;
END;
$$;

------------------------------------------------------------
-- Dispatching
------------------------------------------------------------

-- How many proactive messages may still go in the current hour and day,
-- over every available number (the policy is the database's; p_policy is
-- ignored, kept for the previous release's calls).
CREATE OR REPLACE FUNCTION public.proactive_capacity(p_policy jsonb, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (hour_left integer, day_left integer, in_hours boolean, next_opening timestamptz)
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH t AS (SELECT coalesce(p_now, clock_timestamp()) AS now, public.current_send_policy() AS p),
         g AS (SELECT public.next_business_opening(t.p, t.now) AS opening, t.now FROM t),
         n AS (SELECT c.* FROM public.number_capacity(p_now) AS c WHERE c.unavailable IS NULL)
    SELECT greatest(0, (t.p ->> 'hour_limit')::integer - coalesce((
               SELECT c.claims FROM public.send_counters AS c
                WHERE c.window_kind = 'hour'
                  AND c.window_start = date_trunc('hour', t.now AT TIME ZONE 'America/Sao_Paulo')), 0)),
           greatest(0, (t.p ->> 'day_limit')::integer - coalesce((
               SELECT c.claims FROM public.send_counters AS c
                WHERE c.window_kind = 'day'
                  AND c.window_start = date_trunc('day', t.now AT TIME ZONE 'America/Sao_Paulo')), 0)),
           g.opening = t.now, g.opening
      FROM t, g
     WHERE NOT EXISTS (SELECT 1 FROM public.whatsapp_numbers)
    UNION ALL
    SELECT coalesce(sum(greatest(0, least(n.hour_limit - n.hour_sent, n.day_limit - n.day_sent)))
                        FILTER (WHERE n.in_hours), 0)::integer,
           coalesce(sum(greatest(0, n.day_limit - n.day_sent)), 0)::integer,
           g.opening = g.now AND coalesce(bool_or(n.in_hours), false),
           greatest(g.opening, coalesce(min(n.next_opening), g.opening))
      FROM g LEFT JOIN n ON true
     WHERE EXISTS (SELECT 1 FROM public.whatsapp_numbers)
     GROUP BY g.opening, g.now;
$$;

-- Defer send jobs for queued proactive rows, no more than the current
-- window can take (minus what is already dispatched and unclaimed), oldest
-- first. Returns the outbox ids dispatched. Run every minute. (p_policy is
-- ignored: the database's policy and numbers decide.)
CREATE OR REPLACE FUNCTION public.dispatch_outreach(p_policy jsonb, p_now timestamptz DEFAULT NULL)
RETURNS SETOF bigint
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _cap record;
    _in_flight integer;
    _room integer;
    _id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('julia.dispatch_outreach'));
    -- Capacity and in-flight rows from one snapshot: a claim committing in
    -- between would otherwise count neither as in flight nor in the counters.
    SELECT c.*, (SELECT count(*) FROM public.outbox AS o
                  WHERE o.kind IN ('campaign', 'follow_up') AND o.state IN ('queued', 'deferred')
                    AND o.dispatched_at IS NOT NULL
                    AND (o.not_before IS NULL OR o.not_before <= coalesce(p_now, clock_timestamp())))::integer AS in_flight
      INTO _cap
      FROM public.proactive_capacity(p_policy, p_now) AS c;
    IF NOT _cap.in_hours THEN
        RETURN;
    END IF;
    _in_flight := _cap.in_flight;
    _room := least(_cap.hour_left, _cap.day_left) - _in_flight;
    FOR _id IN
        SELECT o.id FROM public.outbox AS o
          LEFT JOIN public.campanhas AS k ON k.id = o.campanha_id
         WHERE o.kind IN ('campaign', 'follow_up') AND o.state = 'queued' AND o.dispatched_at IS NULL
           AND (o.campanha_id IS NULL OR (k.status = 'ativa' AND (k.inicio IS NULL OR k.inicio <= coalesce(p_now, clock_timestamp()))
                                          AND (k.fim IS NULL OR k.fim > coalesce(p_now, clock_timestamp()))))
         ORDER BY o.id
         LIMIT greatest(_room, 0)
         FOR UPDATE OF o SKIP LOCKED
    LOOP
        UPDATE public.outbox SET dispatched_at = clock_timestamp(), updated_at = now() WHERE id = _id;
        PERFORM public.defer_send(_id);
        RETURN NEXT _id;
    END LOOP;
    -- Campaigns whose every row is settled are done.
    UPDATE public.campanhas AS k SET status = 'concluida', updated_at = now()
     WHERE k.status = 'ativa'
       AND ((k.fim IS NOT NULL AND k.fim <= coalesce(p_now, clock_timestamp()))
            OR (EXISTS (SELECT 1 FROM public.outbox AS o WHERE o.campanha_id = k.id)
                AND NOT EXISTS (SELECT 1 FROM public.outbox AS o
                                 WHERE o.campanha_id = k.id AND o.state IN ('queued', 'claimed', 'deferred'))));
END;
$$;

-- How many sending days p_pending messages need: today's room, then each
-- allowed weekday's caps over the available numbers (warm-up ramps grow),
-- up to a year; NULL when they never all go (no capacity, or over a year).
CREATE OR REPLACE FUNCTION public._sending_days_needed(
    p_pending integer, p_today_room integer, p_policy jsonb, p_now timestamptz
)
RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _left integer := p_pending - least(p_pending, p_today_room);
    _days integer := CASE WHEN p_pending > 0 THEN 1 ELSE 0 END;
    _day_capacity integer;
    _at timestamptz := p_now;
BEGIN
    WHILE _left > 0 AND _days < 366 LOOP
        _at := _at + interval '1 day';
        CONTINUE WHEN NOT (p_policy -> 'weekdays')
                          @> to_jsonb(extract(isodow FROM _at AT TIME ZONE 'America/Sao_Paulo')::integer);
        IF EXISTS (SELECT 1 FROM public.whatsapp_numbers) THEN
            SELECT coalesce(sum(public.number_day_limit(n, p_policy, _at)), 0) INTO _day_capacity
              FROM public.whatsapp_numbers AS n WHERE public.number_unavailable(n) IS NULL;
        ELSE
            _day_capacity := (p_policy ->> 'day_limit')::integer;
        END IF;
        EXIT WHEN _day_capacity <= 0;
        _left := _left - _day_capacity;
        _days := _days + 1;
    END LOOP;
    RETURN CASE WHEN _left > 0 THEN NULL ELSE _days END;
END;
$$;

-- What a campaign would do today: audience size, already queued/sent, how
-- many could go today given the limits, each number's capacity today and
-- how many sending days the audience needs (warm-up ramps and weekdays
-- counted). p_policy is ignored (the database's policy decides).
CREATE OR REPLACE FUNCTION public.preview_campaign(p_campanha_id bigint, p_policy jsonb, p_now timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = ''
AS $$
DECLARE
    _now timestamptz := coalesce(p_now, clock_timestamp());
    _p jsonb := public.current_send_policy();
    _audience integer;
    _pending integer;
    _cap record;
    _sample text;
    _k public.campanhas;
BEGIN
    SELECT * INTO _k FROM public.campanhas AS k WHERE k.id = p_campanha_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'preview_campaign: campaign % not found', p_campanha_id USING ERRCODE = 'JU404';
    END IF;
    SELECT count(*) INTO _audience FROM public.campaign_audience(p_campanha_id);
    SELECT count(*) INTO _pending FROM public.campaign_audience(p_campanha_id) AS a (id)
     WHERE NOT EXISTS (SELECT 1 FROM public.outbox AS o
                        WHERE o.campanha_id = p_campanha_id AND o.cliente_id = a.id AND o.state IN ('sent', 'failed'));
    SELECT * INTO _cap FROM public.proactive_capacity(NULL, _now);
    SELECT public.render_template(_k.template, a.id) INTO _sample FROM public.campaign_audience(p_campanha_id) AS a (id) LIMIT 1;
    RETURN jsonb_build_object(
        'campanha', _k.nome, 'status', _k.status, 'audiencia', _audience, 'a_enviar', _pending,
        'hoje_possiveis', least(_pending, _cap.day_left),
        'limite_hora_restante', _cap.hour_left, 'limite_dia_restante', _cap.day_left,
        'em_horario', _cap.in_hours, 'proxima_abertura', _cap.next_opening, 'exemplo', _sample,
        'dias_necessarios', public._sending_days_needed(_pending, _cap.day_left, _p, _now),
        'numeros', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'instance', c.instance, 'disponivel', c.unavailable IS NULL, 'motivo', c.unavailable,
                        'hoje_limite', c.day_limit, 'hoje_enviadas', c.day_sent,
                        'hoje_restam', CASE WHEN c.unavailable IS NULL THEN greatest(c.day_limit - c.day_sent, 0) ELSE 0 END,
                        'dia_aquecimento', c.warmup_day) ORDER BY c.number_id), '[]'::jsonb)
                      FROM public.number_capacity(_now) AS c));
END;
$$;

-- A campaign's sends per number (julia campaign status).
CREATE OR REPLACE FUNCTION public.campaign_numbers(p_campanha_id bigint)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'instance', coalesce(x.instance, '-'), 'enviadas', x.enviadas, 'pendentes', x.pendentes,
               'falhas', x.falhas) ORDER BY x.instance), '[]'::jsonb)
      FROM (SELECT n.instance,
                   count(*) FILTER (WHERE o.state = 'sent') AS enviadas,
                   count(*) FILTER (WHERE o.state IN ('queued', 'deferred', 'claimed')) AS pendentes,
                   count(*) FILTER (WHERE o.state = 'failed') AS falhas
              FROM public.outbox AS o
              LEFT JOIN public.whatsapp_numbers AS n ON n.id = o.number_id
             WHERE o.campanha_id = p_campanha_id
             GROUP BY n.instance) AS x;
$$;

------------------------------------------------------------
-- Follow-ups
------------------------------------------------------------

-- Doctors who showed interest (were offered shifts) and went silent for
-- p_after get ONE follow-up, queued as a proactive message (gated).
CREATE OR REPLACE FUNCTION public.queue_follow_ups(p_after interval, p_now timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _now timestamptz := coalesce(p_now, clock_timestamp());
    _n integer;
BEGIN
    WITH due AS (
        SELECT c.id, c.cliente_id, coalesce(cl.whatsapp_numero, cl.telefone) AS telefone, cl.nome
          FROM public.conversations AS c
          JOIN public.clientes AS cl ON cl.id = c.cliente_id
         WHERE c.interesse_em IS NOT NULL AND c.follow_up_em IS NULL
           AND NOT c.handoff_ativo AND NOT public.person_opted_out(cl.id) AND cl.bloqueado_em IS NULL
           AND cl.sem_whatsapp_em IS NULL AND cl.telefone IS NOT NULL
           AND c.last_outbound_at IS NOT NULL AND c.last_outbound_at < _now - p_after
           AND (c.last_inbound_at IS NULL OR c.last_inbound_at < c.last_outbound_at)
           AND NOT EXISTS (SELECT 1 FROM public.vagas AS v WHERE v.reservada_por = c.cliente_id
                                                          AND v.reservada_em > c.interesse_em)
         FOR UPDATE OF c SKIP LOCKED
    ), marked AS (
        UPDATE public.conversations AS c SET follow_up_em = _now FROM due WHERE c.id = due.id RETURNING due.*
    )
    INSERT INTO public.outbox (idempotency_key, kind, conversation_id, cliente_id, number, texto)
    SELECT 'follow_up:' || m.id, 'follow_up', m.id, m.cliente_id, m.telefone,
           format('Oi%s! Conseguiu ver os plantões que te mandei? Se algum te interessar, eu reservo para você. 😊',
                  coalesce(', ' || nullif(split_part(m.nome, ' ', 1), ''), ''))
      FROM marked AS m
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;
