-- metricas_conversa is kept current by SQL: every stored interacao updates
-- its conversation's counters in the same transaction.

------------------------------------------------------------
-- Trigger
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
