-- Counters a busy path bumps concurrently (a refusal of the send gate on
-- every claimer) must not all queue on one row locked until each commit is
-- durable. A counter is now one row per metric, label set and shard; each
-- backend bumps its own shard (db/observability.sql) and a scrape sums
-- them. The rows so far become shard 0: the totals do not change.
ALTER TABLE public.metric_counters
    ADD COLUMN IF NOT EXISTS shard smallint NOT NULL DEFAULT 0 CHECK (shard >= 0);
ALTER TABLE public.metric_counters DROP CONSTRAINT IF EXISTS metric_counters_pkey;
ALTER TABLE public.metric_counters ADD CONSTRAINT metric_counters_pkey PRIMARY KEY (metric, labels, shard);
