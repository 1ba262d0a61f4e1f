"""The api process: the Starlette app and its lifespan (`app`), one module per
surface — Evolution webhook and health (`app`), operators' API (`ops`), the
ops console (`console` pages, `console_actions` sign-in and actions,
`console_requests`, `console_session`, `console_html`, `console_sections`),
Chatwoot webhook (`chatwoot`, with `chatwoot_rescue` for what the database
could not take), Slack commands (`slack`) — and `auth`, the one place for
credential checks, error responses and body limits.

May import `core`, `store`, `events` and `integrations` (never the LLM client:
the api never calls Claude). Never imports `worker`, `conversation`, `ops` or
`devkit`.
"""
