"""Stand-in for the Chatwoot application API endpoints the mirror calls, and
for the webhooks Chatwoot sends, shaped like Chatwoot's own code (v4.13+):

- REST answers carry `message_type` as an integer (0 incoming, 1 outgoing,
  2 activity, 3 template); webhooks carry its name (`Message#webhook_data`).
- `GET /contacts/search?q=` matches substrings of name, email, phone and
  identifier, newest first, 15 a page (`page=`); `POST /contacts/filter`
  matches exactly; `POST /contacts` answers 422 on a taken identifier,
  phone or email.
- `GET /conversations/{id}/messages` answers the latest 20 (`before=` the
  20 before an id, `after=` up to 100 after one), as `MessageFinder` does.
- Messages are created from JSON or multipart (`attachments[]`), by a user
  token (sender `User`) or an agent bot token (sender `AgentBot`, which may
  only create conversations and messages, toggle status and assign, as
  `AccessTokenAuthHelper::BOT_ACCESSIBLE_ENDPOINTS`). An agent-role user who
  opens a conversation gets it assigned to himself.
- Every created message and status change is delivered as a signed webhook
  (`message_created`, `conversation_status_changed`) to the configured sink,
  once, never retried; an API-inbox webhook that fails marks the message
  failed, as `Webhooks::Trigger` does.

It can be told to fail (`fail_next`, `fail_all`) or to hang (`hang`, until
`release`), to show that an outage never touches Julia's replies.

The modules: `standin` (the HTTP routes, tokens and injected failures: the
`ChatwootStandin` server), `model` (the in-memory account and its REST
shapes), `delivery` (the webhook thread) and `events` (webhook bodies and
signatures, for tests that post webhooks themselves).
"""

from __future__ import annotations

from app.devkit.standins.chatwoot.delivery import WebhookSink
from app.devkit.standins.chatwoot.events import (
    attachment_json,
    message_created_event,
    sign_webhook,
    status_changed_event,
)
from app.devkit.standins.chatwoot.model import (
    CONTACTS_PER_PAGE,
    MESSAGE_TYPE_NAMES,
    MESSAGE_TYPES,
    MESSAGES_AFTER_LIMIT,
    MESSAGES_PER_PAGE,
    file_type_of,
)
from app.devkit.standins.chatwoot.standin import BOT_ENDPOINTS, BOT_REFUSED, ChatwootStandin

__all__ = [
    "BOT_ENDPOINTS",
    "BOT_REFUSED",
    "CONTACTS_PER_PAGE",
    "MESSAGES_AFTER_LIMIT",
    "MESSAGES_PER_PAGE",
    "MESSAGE_TYPES",
    "MESSAGE_TYPE_NAMES",
    "ChatwootStandin",
    "WebhookSink",
    "attachment_json",
    "file_type_of",
    "message_created_event",
    "sign_webhook",
    "status_changed_event",
]
