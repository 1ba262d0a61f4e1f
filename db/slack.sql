-- Slack: replay protection for signed requests (slash commands).

------------------------------------------------------------
-- Slack request replay protection
------------------------------------------------------------

-- Forget the signatures of requests older than 10 minutes, past Slack's
-- 5-minute window (a replay that old is refused by its timestamp).
CREATE OR REPLACE FUNCTION public.prune_slack_requests()
RETURNS void
LANGUAGE sql
SET search_path = ''
AS $$
    DELETE FROM public.slack_requests WHERE seen_at < clock_timestamp() - interval '10 minutes';
$$;

-- Accept a signed Slack request once: false when its signature was already
-- seen (a replay). Signatures are kept 10 minutes, past Slack's 5-minute window.
CREATE OR REPLACE FUNCTION public.claim_slack_request(p_signature text, p_timestamp bigint)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = ''
AS $$
DECLARE
    _fresh boolean;
BEGIN
    IF coalesce(p_signature, '') = '' THEN
        RAISE EXCEPTION 'claim_slack_request: signature is required' USING ERRCODE = 'JU400';
    END IF;
    PERFORM public.prune_slack_requests();
    INSERT INTO public.slack_requests (signature, request_ts) VALUES (p_signature, p_timestamp)
    ON CONFLICT (signature) DO NOTHING
    RETURNING true INTO _fresh;
    RETURN coalesce(_fresh, false);
END;
$$;
