-- Least privilege: each role holds only what its part uses.
--
-- The writer (generator) inserts calls, upserts towers and, when it retries a batch, stages it
-- in a temporary table; it must not touch the migrations bookkeeping, which 0001's
-- "GRANT ... ON ALL TABLES" gave it, nor gain INSERT on every table a later migration adds.
-- The reader (exporter) only reads: no temporary tables. TEMP is revoked from PUBLIC, which
-- every role is a member of, and granted back to the writer alone.
--
-- Database-level grants live in pg_database, not in the database: CREATE DATABASE ... TEMPLATE
-- and a plain pg_dump/restore do not carry them (docs/RELIABILITY.md, "Secrets and roles").

REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ecm_schema_migrations FROM PUBLIC;
-- PostgreSQL 15 no longer lets PUBLIC create in schema public; a database first created by an
-- older server still does.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_writer') THEN
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ecm_schema_migrations FROM ecm_writer;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE INSERT ON TABLES FROM ecm_writer;
        EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO ecm_writer', current_database());
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ecm_reader') THEN
        EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM ecm_reader', current_database());
    END IF;
END
$$;
