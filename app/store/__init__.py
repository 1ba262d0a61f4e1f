"""The one place that talks to Postgres: the named queries of `queries.sql`
(`queries`), `fetch_one`/`fetch_all`, the translation of driver errors into
domain errors (`errors.wrap_db_errors`), database URLs (`dburl`) and the
schema mechanism — alembic revisions plus the replaceable SQL of db/
(`schema`, with the revision chain read from the files in `revisions`).

Imports only `app.core`. Every rule about data is a SQL function in db/; this
package only calls them.
"""
