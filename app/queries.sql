-- File format (procrastinate's convention):
--   -- query_name --
--   -- one-line description
--   SQL with %(param)s placeholders

-- enqueue_inbound --
-- Put one parsed webhook message on pgmq 'inbound'
SELECT public.enqueue_inbound(%(message)s::jsonb) AS msg_id;

-- read_inbound --
-- Long-poll pgmq 'inbound' for a batch of messages
SELECT msg_id, read_ct, message
  FROM pgmq.read_with_poll('inbound', %(vt)s, %(qty)s, %(max_poll_seconds)s, %(poll_interval_ms)s);

-- process_inbound --
-- Store one inbound message, defer its reply job and archive it
SELECT conversation_id, interacao_id, duplicate, reply_job_id
  FROM public.process_inbound(%(msg_id)s, %(body)s::jsonb);

-- archive_poison_inbound --
-- Record an unprocessable inbound message with its error and archive it
SELECT public.archive_poison_inbound(%(msg_id)s, %(read_ct)s, %(error)s, %(body)s::jsonb);

-- reply_context --
-- What a reply job needs: pause state, message to answer, doctor, history
SELECT public.reply_context(%(conversation_id)s) AS context;

-- enqueue_reply --
-- Write a reply's parts to the outbox and defer their send jobs
SELECT public.enqueue_reply(%(conversation_id)s, %(reply_to_id)s, %(parts)s::text[]) AS outbox_id;

-- claim_outbox --
-- Claim one outbox row for this job, checking pause and environment guard
SELECT claimed, reason, number, texto, attempts
  FROM public.claim_outbox(%(outbox_id)s, %(job_id)s, %(app_env)s, %(project_ref)s);

-- mark_outbox_sent --
-- Record a successful send
SELECT public.mark_outbox_sent(%(outbox_id)s, %(job_id)s, %(evolution_id)s);

-- mark_outbox_failed --
-- Record a failed send attempt (final or to be retried)
SELECT public.mark_outbox_failed(%(outbox_id)s, %(job_id)s, %(error)s, %(final)s);

-- release_held_work --
-- Re-defer sends held back (and, with replies, replies owed to doctors)
SELECT public.release_held_work(%(replies)s) AS deferred;

-- julia_state --
-- Current pause state
SELECT status, motivo, alterado_via, since FROM public.julia_state();

-- pause_julia --
-- Pause Julia
SELECT public.pause_julia(%(motivo)s, %(via)s) AS id;

-- resume_julia --
-- Resume Julia and release held work
SELECT public.resume_julia(%(motivo)s, %(via)s) AS id;

-- bootstrap_database --
-- Write environment markers, feature flags and the first pause state
SELECT item, action FROM public.bootstrap_database(%(app_env)s, %(project_ref)s, %(force)s);

-- check_environment --
-- Compare the database markers with what this process declares
SELECT marker, expected, actual, ok FROM public.check_environment(%(app_env)s, %(project_ref)s);

-- ping --
-- Is the database reachable
SELECT 1 AS ok;

-- record_periodic_run --
-- Log one run of a periodic task for its tick
SELECT public.record_periodic_run(%(task_name)s, %(tick)s, %(result)s::jsonb);

-- health_report --
-- Deep health: markers, queues, jobs, required relations, schema revision
SELECT public.health_report(%(app_env)s, %(project_ref)s, %(expected_revision)s, %(known_revisions)s) AS report;

-- rate_limit_status --
-- Proactive sends this hour and today vs the limits
SELECT public.rate_limit_status(%(hour_limit)s, %(day_limit)s) AS status;

-- execute_tool --
-- Run one of Julia's tools for a conversation
SELECT public.execute_tool(%(conversation_id)s, %(name)s, %(input)s::jsonb) AS result;

-- feature_enabled --
-- Is a feature flag on
SELECT public.feature_enabled(%(key)s) AS enabled;

-- record_job_failure --
-- Record a failed reply/send job with its classification
SELECT public.record_job_failure(%(task_name)s, %(job_id)s, %(conversation_id)s, %(outbox_id)s,
                                 %(classification)s, %(error)s) AS id;

-- transferir_para_humano --
-- Hand a conversation to a human
SELECT public.transferir_para_humano(%(conversation_id)s, %(motivo)s) AS result;

-- search_knowledge --
-- Hybrid knowledge search (vector + full-text, reciprocal rank fusion)
SELECT id, fonte, titulo, conteudo, tags, score, fts_rank, vector_rank
  FROM public.buscar_conhecimento(%(query)s, %(embedding)s::extensions.vector, %(model)s, %(limit)s);

-- knowledge_to_embed --
-- Chunks whose embedding is missing, stale or of another model
SELECT id, titulo, conteudo, content_hash FROM public.knowledge_to_embed(%(model)s, %(limit)s);

-- count_knowledge_to_embed --
-- How many chunks need (re-)embedding with a model
SELECT count(*)::integer AS due FROM public.knowledge_to_embed(%(model)s, NULL);

-- store_embedding --
-- Store a chunk's embedding if its content is still what was embedded
SELECT public.store_embedding(%(id)s, %(model)s, %(hash)s, %(embedding)s::extensions.vector) AS stored;

-- import_especialidade --
-- Upsert one especialidade and its aliases from an imported row
SELECT public.import_especialidade(%(row)s::jsonb) AS action;

-- import_hospital --
-- Upsert one hospital and its aliases from an imported row
SELECT public.import_hospital(%(row)s::jsonb) AS action;

-- import_lookup --
-- Add one name to a lookup table (setores, tipos_vaga, formas_recebimento, periodos)
SELECT public.import_lookup(%(table)s, %(row)s::jsonb ->> 'nome') AS action;

-- import_periodo --
-- Upsert one periodo with its hours from an imported row
SELECT public.import_periodo(%(row)s::jsonb) AS action;

-- import_medico --
-- Upsert one doctor (clientes) by telefone from an imported row
SELECT public.import_medico(%(row)s::jsonb) AS action;

-- import_vaga --
-- Insert one vaga from an imported row unless the same shift exists
SELECT public.import_vaga(%(row)s::jsonb) AS action;

-- import_conhecimento --
-- Upsert one knowledge chunk on (fonte, titulo) from an imported row
SELECT public.import_conhecimento(%(row)s::jsonb) AS action;

-- import_diretriz --
-- Upsert one rule on titulo from an imported row
SELECT public.import_diretriz(%(row)s::jsonb) AS action;

-- import_prompt --
-- Add one prompt version, activating it (and deactivating the others) when asked
SELECT public.import_prompt(%(row)s::jsonb) AS action;
