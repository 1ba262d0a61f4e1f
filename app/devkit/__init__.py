"""Development and tests only: `julia dev` (`dev`, the chat page in `static/`)
and the stand-ins — real HTTP servers on 127.0.0.1 shaped like Evolution,
Anthropic, Voyage, Chatwoot and Slack (`standins`).

May import anything; nothing in production imports it except `julia dev`.
"""
