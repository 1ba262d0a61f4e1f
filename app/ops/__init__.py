"""What an operator runs: the `julia` command line (`cli`, with `campaigns`
and `numbers`), the data importer (`importer`), the Supabase linter run
(`lint`) and the data copy between databases (`dbcopy`).

The top of the house: may import every other room (the CLI starts the api,
the worker and `julia dev`).
"""
