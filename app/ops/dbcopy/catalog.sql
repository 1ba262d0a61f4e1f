-- The catalog reads of `julia db copy` (app/ops/dbcopy/), in procrastinate's format:
--   -- query_name --
--   -- one-line description
--   SQL with %(param)s placeholders
-- Statements that name a table (COPY, row hashes, counts, the insert) are
-- composed in Python with psycopg.sql.Identifier; only fixed SQL is here.

-- stable_output --
-- Render values the same way in both sessions, so row hashes compare across databases
SELECT pg_catalog.set_config('client_encoding', 'UTF8', false),
       pg_catalog.set_config('TimeZone', 'UTC', false),
       pg_catalog.set_config('DateStyle', 'ISO, YMD', false),
       pg_catalog.set_config('IntervalStyle', 'postgres', false),
       pg_catalog.set_config('extra_float_digits', '1', false),
       pg_catalog.set_config('bytea_output', 'hex', false);

-- server_identity --
-- Which database on which server run (a restart changes the start time)
SELECT pg_catalog.current_database() AS dbname, pg_catalog.pg_postmaster_start_time()::text AS started;

-- system_identifier --
-- The cluster's system identifier (not granted on managed servers)
SELECT system_identifier::text AS sysid FROM pg_catalog.pg_control_system();

-- relation_exists --
-- Whether a schema-qualified relation exists
SELECT pg_catalog.to_regclass(%(name)s) IS NOT NULL AS present;

-- alembic_revision --
-- The database's alembic revision
SELECT v.version_num FROM public.alembic_version AS v LIMIT 1;

-- environment_markers --
-- The environment markers written by `julia db bootstrap`
SELECT s.key, s.value FROM public.app_settings AS s WHERE s.key IN ('environment', 'supabase_project_ref');

-- tables_present --
-- Which of the named tables exist in the schema
SELECT c.relname FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND c.relname = ANY(%(tables)s);

-- columns --
-- Every live column of the named tables, with what decides the COPY format and the sequences
SELECT c.relname AS table_name, a.attname AS name, a.attgenerated <> '' AS generated, a.attidentity AS identity,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name, t.typtype AS type_kind,
       t.typsend <> 0 AND t.typreceive <> 0 AS binary_io,
       CASE WHEN t.typcategory = 'A' THEN t.typelem END AS element_oid,
       pg_catalog.pg_get_serial_sequence(c.oid::regclass::text, a.attname) AS sequence
  FROM pg_catalog.pg_attribute AS a
  JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
 WHERE n.nspname = %(schema)s AND c.relname = ANY(%(tables)s) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum;

-- primary_keys --
-- The primary key columns of the named tables, in key order
SELECT c.relname AS table_name, array_agg(a.attname ORDER BY k.ord) AS columns
  FROM pg_catalog.pg_constraint AS con
  JOIN pg_catalog.pg_class AS c ON c.oid = con.conrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
 WHERE con.contype = 'p' AND n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
 GROUP BY c.relname;

-- foreign_keys --
-- The tables each named table references (child → parent)
SELECT c.relname AS child, pn.nspname AS parent_schema, p.relname AS parent
  FROM pg_catalog.pg_constraint AS con
  JOIN pg_catalog.pg_class AS c ON c.oid = con.conrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_class AS p ON p.oid = con.confrelid
  JOIN pg_catalog.pg_namespace AS pn ON pn.oid = p.relnamespace
 WHERE con.contype = 'f' AND n.nspname = %(schema)s AND c.relname = ANY(%(tables)s)
 ORDER BY c.relname, p.relname;

-- table_bytes --
-- Size of a table with its indexes and TOAST
SELECT pg_catalog.pg_total_relation_size(pg_catalog.to_regclass(%(relation)s)) AS bytes;

-- owned_by_me --
-- Whether the session's role owns a table (may lock it, and drop and create its indexes)
SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owned
  FROM pg_catalog.pg_class AS c WHERE c.oid = pg_catalog.to_regclass(%(relation)s);

-- qualified_names --
-- Render every name schema-qualified until the transaction ends (index definitions that run anywhere)
SELECT pg_catalog.current_setting('search_path') AS search_path, pg_catalog.set_config('search_path', '', true);

-- restore_search_path --
-- The session's search path again, for the rest of the transaction
SELECT pg_catalog.set_config('search_path', %(search_path)s, true);

-- costly_indexes --
-- A table's indexes that cost far more to keep row by row than to build after a load (neither
-- btree nor hash, nor unique, nor a constraint's), with their definitions; only those nothing
-- depends on and whose drop loses nothing pg_get_indexdef does not give back (comment,
-- tablespace, CLUSTER or replica identity mark, statistics target)
SELECT i.relname AS name, pg_catalog.pg_get_indexdef(x.indexrelid) AS definition
  FROM pg_catalog.pg_index AS x
  JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
  JOIN pg_catalog.pg_am AS am ON am.oid = i.relam
 WHERE x.indrelid = pg_catalog.to_regclass(%(relation)s)
   AND am.amname NOT IN ('btree', 'hash')
   AND NOT x.indisunique AND NOT x.indisexclusion AND NOT x.indisclustered AND NOT x.indisreplident
   AND x.indisvalid AND x.indisready AND x.indislive AND i.reltablespace = 0
   AND pg_catalog.obj_description(i.oid, 'pg_class') IS NULL
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                    WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = i.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = i.oid AND a.attstattarget IS NOT NULL AND a.attstattarget >= 0)
 ORDER BY i.relname;

-- export_snapshot --
-- Export the transaction's snapshot, so every worker reads the same rows
SELECT pg_catalog.pg_export_snapshot() AS id;
