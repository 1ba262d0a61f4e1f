-- What operators did from the ops console (/ops): who (the subject of the
-- operator token they signed in with), the action, what it touched and why.
-- Pause and resume are also in julia_status, as from Slack and the API.
CREATE TABLE IF NOT EXISTS public.console_actions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator   text NOT NULL CHECK (length(operator) BETWEEN 1 AND 200),
    action     text NOT NULL CHECK (action ~ '^[a-z][a-z_]{0,62}$'),
    target     text,
    motivo     text,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object'),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS console_actions_created_idx ON public.console_actions (created_at DESC);
