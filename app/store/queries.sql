-- File format (procrastinate's convention):
--   -- query_name --
--   -- one-line description
--   SQL with %(param)s placeholders

-- enqueue_inbound --
-- Put one parsed webhook message on pgmq 'inbound'
SELECT public.enqueue_inbound(%(message)s::jsonb) AS msg_id;

-- enqueue_inbound_batch --
-- Put several parsed webhook messages on pgmq 'inbound' in one transaction (group commit)
SELECT public.enqueue_inbound_batch(%(messages)s::jsonb) AS msg_ids;

-- read_inbound --
-- Long-poll pgmq 'inbound' for a batch of messages
SELECT msg_id, read_ct, message
  FROM pgmq.read_with_poll('inbound', %(vt)s, %(qty)s, %(max_poll_seconds)s, %(poll_interval_ms)s);

-- process_inbound --
-- Store one inbound message, defer its reply job and archive it
SELECT conversation_id, interacao_id, duplicate, reply_job_id
  FROM public.process_inbound(%(msg_id)s, %(body)s::jsonb);

-- process_inbound_batch --
-- Store a batch of inbound messages in one transaction, in order (one row per message)
SELECT msg_id, conversation_id, interacao_id, duplicate, reply_job_id
  FROM public.process_inbound_batch(%(msg_ids)s::bigint[], %(bodies)s::jsonb[]);

-- archive_poison_inbound --
-- Record an unprocessable inbound message with its error and archive it
SELECT public.archive_poison_inbound(%(msg_id)s, %(read_ct)s, %(error)s, %(body)s::jsonb);

-- reply_context --
-- What a reply job needs: pause state, message to answer, doctor, history
SELECT public.reply_context(%(conversation_id)s) AS context;

-- enqueue_reply --
-- Write a reply's parts to the outbox and defer their send jobs
SELECT public.enqueue_reply(%(conversation_id)s, %(reply_to_id)s, %(parts)s::text[]) AS outbox_id;

-- enqueue_reply_recorded --
-- enqueue_reply and record_llm_call of the model call that wrote the reply: one statement and one commit
-- (the call is recorded first, also when the reply is dropped because a human answered meanwhile)
WITH llm_call AS MATERIALIZED (
    SELECT public.record_llm_call(%(conversation_id)s, %(reply_to_id)s, %(job_id)s, %(model)s, %(outcome)s,
                                  %(input_tokens)s, %(output_tokens)s, %(stop_reason)s, %(error)s,
                                  %(started_at)s) AS llm_call_id
)
SELECT public.enqueue_reply(%(conversation_id)s, %(reply_to_id)s, %(parts)s::text[]) AS outbox_id
  FROM llm_call;

-- claim_send_slot --
-- The send gate: may this outbox row go now? Claims it if so
-- Committed without waiting for its WAL flush (synchronous_commit off for this transaction only):
-- a claim holds its number's counter rows until its commit, and every claim of the number would
-- otherwise wait for each one's flush in turn. Nothing is sent before await_durable returns.
SELECT g.claimed, g.reason, g.next_at, g.number, g.texto, g.attempts, g.conversation_id, g.cliente_id, g.instance,
       g.media
  FROM public.claim_send_slot(%(outbox_id)s, %(job_id)s, %(app_env)s, %(project_ref)s, NULL, %(now)s) AS g,
       pg_catalog.set_config('synchronous_commit', 'off', true) AS async_commit;

-- await_durable --
-- Returns once every transaction committed before it is durable: this one takes a transaction id,
-- so its own commit (synchronous, whatever the role's or database's default) flushes the WAL
-- through its commit record, after theirs
SELECT pg_catalog.pg_current_xact_id() AS xact_id, pg_catalog.set_config('synchronous_commit', 'on', true) AS sync_commit;

-- mark_outbox_sent --
-- Record a successful send
SELECT public.mark_outbox_sent(%(outbox_id)s, %(job_id)s, %(evolution_id)s);

-- reconcile_send --
-- A re-attempted send: mark the row sent when Evolution lists its earlier send
SELECT public.reconcile_send(%(outbox_id)s, %(job_id)s, %(found)s::jsonb) AS evolution_id;

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
-- Write environment markers, feature flags, the first pause state, the send policy (when absent) and the first number
SELECT item, action
  FROM public.bootstrap_database(%(app_env)s, %(project_ref)s, %(force)s, %(policy)s::jsonb, %(instance)s);

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
-- Proactive sends this hour and today vs the database's limits, in total and per number
SELECT public.rate_limit_status() AS status;

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

-- record_delivery_status --
-- Apply a messages.update (delivery ack or error) to its outbox row
SELECT public.record_delivery_status(%(message_id)s, %(status)s, %(error_code)s, %(remote_jid)s, %(instance)s) AS outbox_id;

-- record_whatsapp_check --
-- Record Evolution's onWhatsApp answer for a doctor; the address to send to (NULL: not on WhatsApp)
SELECT public.record_whatsapp_check(%(cliente_id)s, %(jid)s, %(exists)s) AS address;

-- ops_doctor --
-- The doctor an address names in any form (13/12 digits, JID, LID), for operators
SELECT public.ops_doctor(%(address)s) AS result;

-- merge_duplicate_clientes --
-- Rows that are one person (12/13-digit forms): list them, or with apply merge them
SELECT mantido_id, removido_id, mantido_telefone, removido_telefone, mantido_nome, removido_nome, motivo,
       conversas, mensagens, opt_out, linhas_movidas
  FROM public.merge_duplicate_clientes(%(apply)s);

-- dispatch_outreach --
-- Defer send jobs for queued proactive rows, within the window's capacity
SELECT outbox_id FROM public.dispatch_outreach(NULL, %(now)s) AS d (outbox_id);

-- queue_follow_ups --
-- One follow-up for doctors who showed interest and went silent
SELECT public.queue_follow_ups(make_interval(hours => %(hours)s)) AS queued;

-- reconcile_touches --
-- Recompute each doctor's last touch
SELECT public.reconcile_touches() AS updated;

-- prune_history --
-- Forget archived queue messages, old counters and run logs
SELECT public.prune_history(make_interval(days => %(days)s)) AS pruned;

-- daily_summary --
-- The day's numbers
SELECT public.daily_summary() AS summary;

-- create_campaign --
-- Create a campaign in draft
SELECT public.create_campaign(%(nome)s, %(template)s, %(filtro)s::jsonb, %(inicio)s, %(fim)s) AS id;

-- start_campaign --
-- Start a campaign: queue one message per doctor of its audience
SELECT public.start_campaign(%(id)s) AS queued;

-- pause_campaign --
-- Pause a campaign
SELECT public.pause_campaign(%(id)s);

-- preview_campaign --
-- What a campaign would send today under the limits
SELECT public.preview_campaign(%(id)s, NULL, NULL) AS preview;

-- campaign_by_name --
-- A campaign's id by name or id
SELECT id FROM public.campanhas WHERE nome = %(ref)s OR id::text = %(ref)s;

-- campaign_numbers --
-- A campaign's sends per number
SELECT public.campaign_numbers(%(id)s) AS numbers;

-- campaign_metrics --
-- Metrics of all campaigns, or of one
SELECT * FROM public.campaign_metrics WHERE %(id)s::bigint IS NULL OR campanha_id = %(id)s ORDER BY campanha_id;

-- rollup_metricas_conversa --
-- Recount conversation metrics from the history (repairs drift)
SELECT public.rollup_metricas_conversa(make_interval(days => %(days)s)) AS updated;

-- ------------------------------------------------------------------
-- Humans in the loop (issue 7): Chatwoot mirror, handoff, Slack, ops API
-- ------------------------------------------------------------------

-- chatwoot_sync_work --
-- What a mirror job must post for a conversation (ids, doctor, pending messages and events)
SELECT public.chatwoot_sync_work(%(conversation_id)s, %(limit)s) AS work;

-- skip_chatwoot_sync --
-- Chatwoot is not configured: skip what waits for a conversation
SELECT public.skip_chatwoot_sync(%(conversation_id)s) AS skipped;

-- record_chatwoot_contact --
-- Remember a doctor's Chatwoot contact
SELECT public.record_chatwoot_contact(%(cliente_id)s, %(contact_id)s, %(source_id)s);

-- record_chatwoot_conversation --
-- Remember the Chatwoot conversation mirroring a conversation
SELECT public.record_chatwoot_conversation(%(conversation_id)s, %(chatwoot_conversation_id)s, %(contact_id)s);

-- forget_chatwoot_conversation --
-- Forget a Chatwoot conversation that no longer exists there
SELECT public.forget_chatwoot_conversation(%(conversation_id)s, %(chatwoot_conversation_id)s) AS forgotten;

-- begin_chatwoot_message --
-- Mark a message as being posted; its state before (NULL if already done)
SELECT public.begin_chatwoot_message(%(interacao_id)s) AS before;

-- mark_chatwoot_message_synced --
-- Record a message as mirrored under its Chatwoot id
SELECT public.mark_chatwoot_message_synced(%(interacao_id)s, %(chatwoot_message_id)s);

-- mark_chatwoot_event_done --
-- Record a handoff/hand-back event as shown in Chatwoot
SELECT public.mark_chatwoot_event_done(%(event_id)s);

-- record_chatwoot_sync_error --
-- Record a failed mirror attempt on the oldest waiting item
SELECT public.record_chatwoot_sync_error(%(conversation_id)s, %(error)s);

-- record_chatwoot_agent_message --
-- Queue an agent's Chatwoot message to the doctor once (outbox 'human')
SELECT status, outbox_id, conversation_id
  FROM public.record_chatwoot_agent_message(%(chatwoot_conversation_id)s, %(chatwoot_message_id)s, %(texto)s,
                                            %(media)s);

-- chatwoot_message_media --
-- The doctor's media of a stored message (base64 or URL), NULL if none
SELECT public.chatwoot_message_media(%(interacao_id)s) AS media;

-- note_chatwoot --
-- A private note for the agents in a conversation's Chatwoot mirror
SELECT public.note_chatwoot(%(conversation_id)s, %(texto)s) AS event_id;

-- conversation_of_chatwoot --
-- The conversation a Chatwoot conversation mirrors
SELECT public.conversation_of_chatwoot(%(chatwoot_conversation_id)s) AS conversation_id;

-- resolve_chatwoot_conversation --
-- A resolved Chatwoot conversation hands its conversation back to Julia
SELECT status, conversation_id FROM public.resolve_chatwoot_conversation(%(chatwoot_conversation_id)s);

-- handoff_context --
-- What an external system sees through a signed handoff link
SELECT public.handoff_context(%(conversation_id)s) AS context;

-- notify_humans --
-- Record an operator notification (Slack) and defer its job; NULL if the dedupe key exists
SELECT public.notify_humans(%(kind)s, %(payload)s::jsonb, %(dedupe_key)s) AS id;

-- claim_notification --
-- Take a pending notification for sending, with its links' data
SELECT known, state, kind, payload, critical, attempts, chatwoot_conversation_id, external_handoff
  FROM public.claim_notification(%(notification_id)s);

-- finish_notification --
-- Record a notification's outcome
SELECT public.finish_notification(%(notification_id)s, %(state)s, %(error)s);

-- claim_manager_alert --
-- Queue a rate-limited WhatsApp alert to the manager (NULL over the hourly limit)
SELECT public.claim_manager_alert(%(notification_id)s, %(number)s, %(texto)s) AS outbox_id;

-- claim_slack_request --
-- Accept a signed Slack request once (false for a replay)
SELECT public.claim_slack_request(%(signature)s, %(timestamp)s) AS fresh;

-- redefer_humans_work --
-- Re-defer mirror and notification jobs for work left waiting
SELECT public.redefer_humans_work() AS deferred;

-- ops_status --
-- Pause state, open handoffs and conversations, failures, queues
SELECT public.ops_status() AS status;

-- ops_queue_depths --
-- Inbound, jobs per queue and state, outbox, mirror and notification backlog
SELECT public.ops_queue_depths() AS result;

-- ops_recent_conversations --
-- The most recently active conversations
SELECT public.ops_recent_conversations(%(limit)s) AS result;

-- ops_open_handoffs --
-- Conversations a human owns now
SELECT public.ops_open_handoffs() AS result;

-- rescue_stalled_jobs --
-- Put the jobs of dead workers back to work (replacing a job waiting under the same queueing lock),
-- never those of the asking worker (except_worker: its procrastinate worker id, or NULL)
SELECT job_id, task_name, replaced_job_id
  FROM public.rescue_stalled_jobs(make_interval(secs => %(seconds)s), %(except_worker)s::bigint);

-- sweep_owed_replies --
-- Re-defer replies still owed after a while with no job for them
SELECT public.sweep_owed_replies(make_interval(mins => %(minutes)s), %(except_worker)s::bigint) AS deferred;

-- lint_schema --
-- Supabase-linter-equivalent findings for the connected database
SELECT level, code, name, object, detail FROM public.lint_schema();

-- dev_chat_state --
-- The local chat page: who owns the phone's conversation, opt-out, and whether Julia is "typing" (a reply owed or on its way)
SELECT public.julia_is_paused() AS paused,
       coalesce(c.opt_out, false) AS opt_out,
       public.silence_reason(conv.id) AS silence,
       (conv.id IS NOT NULL AND (
            EXISTS (SELECT 1 FROM public.procrastinate_jobs AS j
                     WHERE j.queue_name = 'replies' AND j.status IN ('todo', 'doing')
                       AND j.lock = 'conversation:' || conv.id)
         OR EXISTS (SELECT 1 FROM public.outbox AS o
                     WHERE o.conversation_id = conv.id AND o.state IN ('queued', 'claimed'))
       )) AS typing
  FROM (SELECT 1) AS one
  LEFT JOIN public.clientes AS c ON c.telefone = %(phone)s
  LEFT JOIN LATERAL (SELECT x.id FROM public.conversations AS x
                      WHERE x.cliente_id = c.id ORDER BY x.id DESC LIMIT 1) AS conv ON true;

-- dev_chat_history --
-- The local chat page: one phone's messages, oldest first (julia dev only)
SELECT i.autor, i.texto, i.tipo, i.message_at AS at
  FROM public.interacoes AS i
  JOIN public.clientes AS c ON c.id = i.cliente_id
 WHERE c.telefone = %(phone)s
 ORDER BY i.message_at, i.id
 LIMIT 200;

------------------------------------------------------------
-- Schema ledger (app/store/schema.py; tables from revision 0011)
------------------------------------------------------------

-- schema_presence --
-- Which of the schema's own bookkeeping tables exist
SELECT to_regclass('public.alembic_version') IS NOT NULL AS has_version,
       to_regclass('public.schema_files') IS NOT NULL
           AND to_regclass('public.schema_fingerprints') IS NOT NULL AS has_ledger,
       NULL::text AS revision;

-- schema_revision --
-- The database's alembic revision (NULL before the first migration)
SELECT (SELECT v.version_num FROM public.alembic_version AS v LIMIT 1) AS revision;

-- schema_ledger --
-- Applied replaceable files, and the fingerprint history oldest first
SELECT 'file' AS kind, f.file, f.sha256, NULL::bigint AS id FROM public.schema_files AS f
UNION ALL
SELECT 'fingerprint', h.fingerprint, NULL, h.id FROM public.schema_fingerprints AS h
 ORDER BY 1, 4;

-- clear_schema_ledger --
-- Forget which files were applied (the next upgrade applies all of them)
DELETE FROM public.schema_files;

-- record_schema_file --
-- Record one applied replaceable file
INSERT INTO public.schema_files (file, sha256, code_version) VALUES (%(file)s, %(sha256)s, %(code_version)s);

-- record_schema_fingerprint --
-- Append the fingerprint of the schema this upgrade left
INSERT INTO public.schema_fingerprints (fingerprint, revision, code_version)
VALUES (%(fingerprint)s, %(revision)s, %(code_version)s);

-- schema_objects --
-- Julia's replaceable objects, stamped by their catalog row version (xmin + ctid change on any re-create)
SELECT 'function' AS kind, p.oid::regprocedure::text AS name, p.xmin::text || p.ctid::text AS stamp
  FROM pg_catalog.pg_proc AS p
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proname NOT LIKE 'procrastinate\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'view', c.oid::regclass::text, r.xmin::text || r.ctid::text
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_rewrite AS r ON r.ev_class = c.oid AND r.rulename = '_RETURN'
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'v'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'trigger', pg_catalog.quote_ident(t.tgname) || ' ON ' || t.tgrelid::regclass::text, t.xmin::text || t.ctid::text
  FROM pg_catalog.pg_trigger AS t
  JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
   AND c.relname NOT LIKE 'procrastinate\_%';

-- secure_schema --
-- RLS, API-role revokes and fixed search_paths over everything (db/security.sql)
SELECT public.secure_public_schema();

------------------------------------------------------------
-- Numbers and the send policy (db/numbers.sql, db/sendpolicy.sql; tables from revision 0013)
------------------------------------------------------------

-- bootstrap_sending --
-- A worker's start: the policy row from its env when absent, its instance as the first number
SELECT item, action FROM public.bootstrap_sending(%(policy)s::jsonb, %(instance)s);

-- record_chatwoot_mirror --
-- A worker's start: whether it mirrors to Chatwoot (off: stored messages are skipped, no mirror jobs)
SELECT public.record_chatwoot_mirror(%(on)s) AS mirror;

-- current_send_policy --
-- The send policy every process enforces
SELECT public.current_send_policy() AS policy;

-- set_send_policy --
-- Change the send policy (audited); returns the policy in force
SELECT public.set_send_policy(%(changes)s::jsonb, %(motivo)s, %(via)s) AS policy;

-- numbers_report --
-- Every number with its state, caps, warm-up and counters now
SELECT public.numbers_report(NULL) AS numbers;

-- add_number --
-- Add a WhatsApp number (Evolution instance)
SELECT public.add_number(%(instance)s, %(phone)s, %(hour_limit)s, %(day_limit)s, %(warmup)s, %(motivo)s, %(via)s) AS id;

-- update_number --
-- Change a number's own caps, hours or phone
SELECT public.update_number(%(instance)s, %(changes)s::jsonb, %(motivo)s, %(via)s);

-- pause_number --
-- Pause one number
SELECT public.pause_number(%(instance)s, %(motivo)s, %(via)s);

-- resume_number --
-- Resume one number and release what waited for it
SELECT public.resume_number(%(instance)s, %(motivo)s, %(via)s) AS released;

-- record_connection_update --
-- Evolution connection.update: a number's state
SELECT public.record_connection_update(%(instance)s, %(state)s, %(reason)s, %(payload)s::jsonb) AS result;

-- record_unknown_instance --
-- Keep a webhook from an instance Julia does not know, and tell operators
SELECT public.record_unknown_instance(%(instance)s, %(event)s, %(payload)s::jsonb);

-- record_send_problem --
-- A failed send that says something about its number (not on WhatsApp); true when it paused the number
SELECT public.record_send_problem(%(outbox_id)s, %(kind)s) AS paused;

-- record_llm_call --
-- Record one model call of a reply job (model, tokens, outcome, start time)
SELECT public.record_llm_call(%(conversation_id)s, %(reply_to_id)s, %(job_id)s, %(model)s, %(outcome)s,
                              %(input_tokens)s, %(output_tokens)s, %(stop_reason)s, %(error)s,
                              %(started_at)s) AS llm_call_id;

-- prune_llm_calls --
-- Forget model calls older than the retention (the counters keep their totals)
SELECT public.prune_llm_calls(make_interval(days => %(days)s)) AS pruned;

-- metrics_timeout --
-- Bound the scrape's query (inside its transaction)
SELECT pg_catalog.set_config('statement_timeout', %(ms)s, true);

-- metrics_snapshot --
-- Every counter and gauge /metrics reads from the database, in one call
SELECT metric, labels, value FROM public.metrics_snapshot(%(app_env)s, %(project_ref)s);

-- message_trace --
-- The path of one message (interacao id or Evolution message id), oldest step first
SELECT at, step, detail FROM public.message_trace(%(id)s);

-- console_sign_in --
-- Record an operator's sign-in to the ops console
SELECT public.console_sign_in(%(operator)s, to_timestamp(%(expires_at)s)) AS id;

-- console_recent_actions --
-- The newest ops-console actions (audit), newest first
SELECT public.console_recent_actions(%(limit)s) AS result;

-- console_pause_julia --
-- Pause Julia from the ops console, audited under the operator's name
SELECT public.console_pause_julia(%(operator)s, %(motivo)s) AS id;

-- console_resume_julia --
-- Resume Julia from the ops console, audited under the operator's name
SELECT public.console_resume_julia(%(operator)s, %(motivo)s) AS id;

-- console_problem_jobs --
-- Failed, stalled, retrying and overdue jobs for the console
SELECT public.console_problem_jobs(make_interval(secs => %(stalled_seconds)s), %(limit)s) AS result;

-- console_retry_job --
-- Run a failed, stalled or waiting job again, audited
SELECT public.console_retry_job(%(operator)s, %(job_id)s, %(motivo)s, make_interval(secs => %(stalled_seconds)s)) AS was;

-- console_dismiss_job --
-- Dismiss a failed or waiting job, audited
SELECT public.console_dismiss_job(%(operator)s, %(job_id)s, %(motivo)s) AS was;

-- console_conversations --
-- Conversations matching a name or phone, with who owns each
SELECT public.console_conversations(%(query)s, %(limit)s) AS result;

-- console_transcript --
-- One conversation: doctor, owner and its messages
SELECT public.console_transcript(%(conversation_id)s) AS result;

-- console_hand_back --
-- Give a conversation back to Julia from the console, audited
SELECT public.console_hand_back(%(operator)s, %(conversation_id)s, %(motivo)s) AS id;

-- console_campaigns --
-- Every campaign with its metrics and refusals by reason
SELECT public.console_campaigns(%(limit)s) AS result;

-- console_pause_campaign --
-- Pause a campaign from the console, audited
SELECT public.console_pause_campaign(%(operator)s, %(id)s, %(motivo)s) AS id;

-- console_cancel_campaign --
-- Cancel a campaign from the console (its waiting rows settled), audited
SELECT public.console_cancel_campaign(%(operator)s, %(id)s, %(motivo)s) AS settled;

-- console_failures --
-- Jobs that failed for good and poison inbound messages
SELECT public.console_failures(%(limit)s) AS result;
