"""Local HTTP stand-ins for Evolution API and Anthropic, for `julia dev` and the tests.

Stdlib only: each stand-in is a `ThreadingHTTPServer` on 127.0.0.1 in a daemon thread
(`app.devkit.standins.evolution.EvolutionStandin`, `app.devkit.standins.anthropic.AnthropicStandin`).
"""
