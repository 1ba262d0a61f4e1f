"""What an operator runs: the `julia` command line (`cli`, with
`db_commands`, `campaigns` and `numbers`, and the checks every command makes
first in `preflight`), the data importer (`importer`), the Supabase linter
run (`lint`) and the data copy between databases (the `dbcopy` package).

The top of the house: may import every other room (the CLI starts the api,
the worker and `julia dev`).
"""
