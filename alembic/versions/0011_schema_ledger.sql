-- The ledger of replaceable SQL: one row per db/ file as last applied.
CREATE TABLE IF NOT EXISTS public.schema_files (
    file         text PRIMARY KEY,
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    code_version text NOT NULL
);

-- Every schema state an upgrade left, newest last: code whose fingerprint is
-- here but not the newest is older than the database (a rollback).
CREATE TABLE IF NOT EXISTS public.schema_fingerprints (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint  text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    revision     text NOT NULL,
    code_version text NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS schema_fingerprints_fingerprint_idx ON public.schema_fingerprints (fingerprint);

