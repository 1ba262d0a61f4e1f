"""Clients for the outside world — Evolution (`evolution`), Anthropic
(`llm`), Voyage (`voyage`), Chatwoot (`chatwoot`), Slack (`slack`) — each
reached through its base-URL setting, each raising its own `JuliaError`
subclass. No business rules here.

Imports only `app.core`; never `http`, `worker`, `events` or the others.
"""
