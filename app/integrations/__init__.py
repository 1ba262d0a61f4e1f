"""Clients for the outside world (Evolution, Anthropic, ...); no business rules here."""
