-- The send gate's cooldown check reads a doctor's last proactive touch
-- (sent or in flight). outbox_proactive_sent_idx covers only sent rows, so
-- the check scanned the whole outbox on every proactive claim.
CREATE INDEX IF NOT EXISTS outbox_proactive_touch_idx ON public.outbox (cliente_id)
    WHERE kind IN ('campaign', 'follow_up') AND state IN ('sent', 'claimed');
