-- querycache: the tables of the PostgreSQL store (querycache.NewPostgresStore).
--
-- Apply once per database (psql -f migrations/postgres_store.sql); running
-- it again is harmless. For another schema than public, replace "public"
-- below, or call PostgresStore.EnsureSchema (querycache.PostgresSchemaSQL
-- prints the same SQL for any schema).
--
-- The tables are UNLOGGED: not written to the WAL (fast), not replicated,
-- and emptied by crash recovery. Losing them costs cache misses, never a
-- stale result: version tokens are random, so an entry recorded against a
-- lost version never matches the version created again.
--
-- Keys and version names are bytea (they may hold any byte). Expired rows
-- are treated as absent and deleted by the store's sweeper in small
-- batches (FOR UPDATE SKIP LOCKED), using the expires_at indexes.
--
-- Uninstall: DROP TABLE IF EXISTS public.querycache_entries, public.querycache_versions;

CREATE SCHEMA IF NOT EXISTS "public";
CREATE UNLOGGED TABLE IF NOT EXISTS "public"."querycache_entries" (
    key        bytea       PRIMARY KEY,
    value      bytea       NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS "querycache_entries_expires_at" ON "public"."querycache_entries" (expires_at);
CREATE UNLOGGED TABLE IF NOT EXISTS "public"."querycache_versions" (
    name       bytea       PRIMARY KEY,
    token      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS "querycache_versions_expires_at" ON "public"."querycache_versions" (expires_at);
