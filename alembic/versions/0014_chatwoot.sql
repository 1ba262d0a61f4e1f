-- Chatwoot: media on outbox rows, private notes as mirror events.

-- An outbox row that carries an attachment (an agent's image, document,
-- audio or video from Chatwoot): {mediatype, media (URL), mimetype,
-- file_name, caption}. texto keeps what the history shows.
ALTER TABLE public.outbox ADD COLUMN IF NOT EXISTS media jsonb;

-- A private note for the agents ('note': payload {texto}) beside handoff and hand-back.
ALTER TABLE public.chatwoot_eventos DROP CONSTRAINT IF EXISTS chatwoot_eventos_kind_check;
ALTER TABLE public.chatwoot_eventos ADD CONSTRAINT chatwoot_eventos_kind_check
    CHECK (kind IN ('handoff', 'handback', 'note'));
