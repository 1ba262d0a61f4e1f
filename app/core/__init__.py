"""The foundation every other room stands on: settings from the environment
(`config`), JSON logging (`logs`), the error root `JuliaError` and the retry
rule (`errors`), phone-number forms (`phones`) and the signed tokens of
operators and hand-offs (`ops_token`, `handoff_token`).

Pure and small. It imports nothing else of `app` and does no network or
database I/O; everything may import it.
"""
