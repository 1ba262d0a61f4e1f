-- Numbers about the work: metricas_conversa kept current by a trigger (and
-- repaired by a rollup), campaign results, the day's summary and the send
-- counters of /health/rate-limit.

------------------------------------------------------------
-- Conversation metrics
------------------------------------------------------------

-- Count one new message into its conversation's metrics.
CREATE OR REPLACE FUNCTION public.count_interacao_in_metrics()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
BEGIN
    INSERT INTO public.metricas_conversa AS m
        (conversation_id, cliente_id, total_mensagens, total_mensagens_medico, total_mensagens_julia,
         total_mensagens_humano, primeira_mensagem_em, ultima_mensagem_em, duracao_total_minutos)
    VALUES (NEW.conversation_id, NEW.cliente_id, 1,
            (NEW.autor = 'medico')::integer, (NEW.autor = 'julia')::integer, (NEW.autor = 'humano')::integer,
            NEW.message_at, NEW.message_at, 0)
    ON CONFLICT (conversation_id) DO UPDATE SET
        total_mensagens = m.total_mensagens + 1,
        total_mensagens_medico = m.total_mensagens_medico + (NEW.autor = 'medico')::integer,
        total_mensagens_julia = m.total_mensagens_julia + (NEW.autor = 'julia')::integer,
        total_mensagens_humano = m.total_mensagens_humano + (NEW.autor = 'humano')::integer,
        primeira_mensagem_em = least(m.primeira_mensagem_em, NEW.message_at),
        ultima_mensagem_em = greatest(m.ultima_mensagem_em, NEW.message_at),
        duracao_total_minutos = floor(extract(epoch FROM greatest(m.ultima_mensagem_em, NEW.message_at)
                                               - least(m.primeira_mensagem_em, NEW.message_at)) / 60)::integer,
        updated_at = now();
    -- First response: the first answer (Julia or a human) after the first doctor message.
    IF NEW.autor <> 'medico' THEN
        UPDATE public.metricas_conversa AS m
           SET primeira_resposta_segundos = greatest(0, extract(epoch FROM NEW.message_at - first_in.at))::integer
          FROM (SELECT min(i.message_at) AS at FROM public.interacoes AS i
                 WHERE i.conversation_id = NEW.conversation_id AND i.autor = 'medico') AS first_in
         WHERE m.conversation_id = NEW.conversation_id
           AND m.primeira_resposta_segundos IS NULL
           AND first_in.at IS NOT NULL AND first_in.at <= NEW.message_at;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS interacoes_count_in_metrics ON public.interacoes;
CREATE TRIGGER interacoes_count_in_metrics
    AFTER INSERT ON public.interacoes
    FOR EACH ROW EXECUTE FUNCTION public.count_interacao_in_metrics();

-- Recount metricas_conversa from the history for conversations active since
-- p_since (the trigger keeps them current; this repairs any drift).
CREATE OR REPLACE FUNCTION public.rollup_metricas_conversa(p_since interval DEFAULT '1 day')
RETURNS integer
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _n integer;
BEGIN
    WITH agg AS (
        SELECT i.conversation_id, min(i.cliente_id) AS cliente_id, count(*) AS total,
               count(*) FILTER (WHERE i.autor = 'medico') AS medico,
               count(*) FILTER (WHERE i.autor = 'julia') AS julia,
               count(*) FILTER (WHERE i.autor = 'humano') AS humano,
               min(i.message_at) AS primeira, max(i.message_at) AS ultima,
               min(i.message_at) FILTER (WHERE i.autor = 'medico') AS primeira_medico
          FROM public.interacoes AS i
         WHERE i.conversation_id IN (SELECT DISTINCT i2.conversation_id FROM public.interacoes AS i2
                                      WHERE i2.message_at > clock_timestamp() - p_since)
         GROUP BY i.conversation_id
    )
    INSERT INTO public.metricas_conversa AS m
        (conversation_id, cliente_id, total_mensagens, total_mensagens_medico, total_mensagens_julia,
         total_mensagens_humano, primeira_mensagem_em, ultima_mensagem_em, duracao_total_minutos,
         primeira_resposta_segundos, houve_handoff, motivo_handoff)
    SELECT a.conversation_id, a.cliente_id, a.total, a.medico, a.julia, a.humano, a.primeira, a.ultima,
           floor(extract(epoch FROM a.ultima - a.primeira) / 60)::integer,
           (SELECT greatest(0, extract(epoch FROM min(r.message_at) - a.primeira_medico))::integer
              FROM public.interacoes AS r
             WHERE r.conversation_id = a.conversation_id AND r.autor <> 'medico' AND r.message_at >= a.primeira_medico),
           c.handoff_em IS NOT NULL OR c.handoff_ativo, c.handoff_motivo
      FROM agg AS a JOIN public.conversations AS c ON c.id = a.conversation_id
    ON CONFLICT (conversation_id) DO UPDATE SET
        total_mensagens = excluded.total_mensagens, total_mensagens_medico = excluded.total_mensagens_medico,
        total_mensagens_julia = excluded.total_mensagens_julia, total_mensagens_humano = excluded.total_mensagens_humano,
        primeira_mensagem_em = excluded.primeira_mensagem_em, ultima_mensagem_em = excluded.ultima_mensagem_em,
        duracao_total_minutos = excluded.duracao_total_minutos,
        primeira_resposta_segundos = excluded.primeira_resposta_segundos,
        houve_handoff = m.houve_handoff OR excluded.houve_handoff,
        motivo_handoff = coalesce(m.motivo_handoff, excluded.motivo_handoff), updated_at = now();
    GET DIAGNOSTICS _n = ROW_COUNT;
    RETURN _n;
END;
$$;

------------------------------------------------------------
-- Campaign views (security_invoker: they run with the caller's rights)
------------------------------------------------------------

-- One row per campaign message: its delivery, and whether the doctor
-- answered, opted out or reserved a shift after it.
CREATE OR REPLACE VIEW public.campaign_sends WITH (security_invoker = on) AS
SELECT o.id AS outbox_id, o.campanha_id, k.nome AS campanha, o.cliente_id, o.state, o.refusal,
       o.sent_at, o.delivery_status, o.delivered_at, o.read_at,
       EXISTS (SELECT 1 FROM public.interacoes AS i
                WHERE i.cliente_id = o.cliente_id AND i.autor = 'medico' AND i.message_at > o.sent_at) AS respondeu,
       (cl.opt_out AND cl.opt_out_em > o.sent_at) AS opt_out_depois,
       EXISTS (SELECT 1 FROM public.vagas AS v
                WHERE v.reservada_por = o.cliente_id AND v.reservada_em > o.sent_at
                  AND (k.fim IS NULL OR v.reservada_em < k.fim + interval '7 days')) AS reservou_depois
  FROM public.outbox AS o
  JOIN public.campanhas AS k ON k.id = o.campanha_id
  JOIN public.clientes AS cl ON cl.id = o.cliente_id
 WHERE o.kind = 'campaign';

-- One row per campaign: totals of campaign_sends (reservations only with
-- the campaign_attribution flag on).
CREATE OR REPLACE VIEW public.campaign_metrics WITH (security_invoker = on) AS
SELECT k.id AS campanha_id, k.nome AS campanha, k.status,
       count(s.outbox_id) AS total,
       count(*) FILTER (WHERE s.state = 'sent') AS enviadas,
       count(*) FILTER (WHERE s.state IN ('queued', 'deferred', 'claimed')) AS pendentes,
       count(*) FILTER (WHERE s.state = 'failed') AS falhas,
       count(*) FILTER (WHERE s.delivered_at IS NOT NULL) AS entregues,
       count(*) FILTER (WHERE s.read_at IS NOT NULL) AS lidas,
       count(*) FILTER (WHERE s.respondeu) AS respondidas,
       count(*) FILTER (WHERE s.opt_out_depois) AS opt_outs,
       CASE WHEN public.feature_enabled('campaign_attribution')
            THEN count(*) FILTER (WHERE s.reservou_depois) END AS reservas_atribuidas
  FROM public.campanhas AS k
  LEFT JOIN public.campaign_sends AS s ON s.campanha_id = k.id
 GROUP BY k.id, k.nome, k.status;

------------------------------------------------------------
-- Summaries
------------------------------------------------------------

-- The day's numbers for the daily summary.
CREATE OR REPLACE FUNCTION public.daily_summary(p_day date DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH d AS (SELECT coalesce(p_day, (clock_timestamp() AT TIME ZONE 'America/Sao_Paulo')::date) AS day),
         w AS (SELECT (d.day::timestamp AT TIME ZONE 'America/Sao_Paulo') AS lo,
                      ((d.day + 1)::timestamp AT TIME ZONE 'America/Sao_Paulo') AS hi, d.day FROM d)
    SELECT jsonb_build_object(
        'dia', w.day,
        'mensagens_recebidas', (SELECT count(*) FROM public.interacoes AS i
                                 WHERE i.autor = 'medico' AND i.message_at >= w.lo AND i.message_at < w.hi),
        'respostas_enviadas', (SELECT count(*) FROM public.outbox AS o
                                WHERE o.kind = 'reply' AND o.state = 'sent' AND o.sent_at >= w.lo AND o.sent_at < w.hi),
        'proativas_enviadas', (SELECT count(*) FROM public.outbox AS o WHERE o.kind IN ('campaign', 'follow_up')
                                 AND o.state = 'sent' AND o.sent_at >= w.lo AND o.sent_at < w.hi),
        'vagas_reservadas', (SELECT count(*) FROM public.vagas AS v WHERE v.reservada_em >= w.lo AND v.reservada_em < w.hi),
        'handoffs', (SELECT count(*) FROM public.conversations AS c WHERE c.handoff_em >= w.lo AND c.handoff_em < w.hi),
        'opt_outs', (SELECT count(*) FROM public.clientes AS cl WHERE cl.opt_out_em >= w.lo AND cl.opt_out_em < w.hi),
        'falhas', (SELECT count(*) FROM public.job_failures AS f WHERE f.created_at >= w.lo AND f.created_at < w.hi))
      FROM w;
$$;

-- Proactive sends this hour and today, from the gate's own counters and the
-- database's policy: totals over the available numbers and each number's.
-- The arguments are ignored (kept for the previous release's calls).
CREATE OR REPLACE FUNCTION public.rate_limit_status(p_hour_limit integer DEFAULT NULL, p_day_limit integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = ''
AS $$
    WITH t AS (SELECT clock_timestamp() AT TIME ZONE 'America/Sao_Paulo' AS local_now, public.current_send_policy() AS p),
         w AS (SELECT date_trunc('hour', t.local_now) AS hour_start, date_trunc('day', t.local_now) AS day_start, t.p FROM t),
         legacy AS (SELECT coalesce((SELECT s.claims FROM public.send_counters AS s, w
                                      WHERE s.window_kind = 'hour' AND s.window_start = w.hour_start), 0) AS hour_count,
                           coalesce((SELECT s.claims FROM public.send_counters AS s, w
                                      WHERE s.window_kind = 'day' AND s.window_start = w.day_start), 0) AS day_count,
                           (w.p ->> 'hour_limit')::integer AS hour_limit, (w.p ->> 'day_limit')::integer AS day_limit
                      FROM w),
         nums AS (SELECT coalesce(sum(c.hour_sent), 0)::integer AS hour_count,
                         coalesce(sum(c.day_sent), 0)::integer AS day_count,
                         coalesce(sum(c.hour_limit) FILTER (WHERE c.unavailable IS NULL), 0)::integer AS hour_limit,
                         coalesce(sum(c.day_limit) FILTER (WHERE c.unavailable IS NULL), 0)::integer AS day_limit
                    FROM public.number_capacity(NULL) AS c),
         c AS (SELECT * FROM legacy WHERE NOT EXISTS (SELECT 1 FROM public.whatsapp_numbers)
               UNION ALL
               SELECT * FROM nums WHERE EXISTS (SELECT 1 FROM public.whatsapp_numbers))
    SELECT jsonb_build_object(
        'timezone', 'America/Sao_Paulo',
        'source', 'database',
        'policy', w.p,
        'hour', jsonb_build_object('window_start', w.hour_start, 'sent', c.hour_count, 'limit', c.hour_limit,
                                   'remaining', greatest(c.hour_limit - c.hour_count, 0)),
        'day', jsonb_build_object('window_start', w.day_start, 'sent', c.day_count, 'limit', c.day_limit,
                                  'remaining', greatest(c.day_limit - c.day_count, 0)),
        'numbers', public.numbers_report(NULL))
      FROM w, c;
$$;
