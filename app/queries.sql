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
