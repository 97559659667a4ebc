-- querycache: an event trigger that tells the cache about schema changes
-- made outside the application (a migration tool, psql, another service):
-- a table dropped and created again, swapped by renames, retyped with
-- USING, a partition attached. The row triggers of postgres_install.sql
-- fire on data, not on DDL, and those changes reached no listener: their
-- tables' cached reads were served until their TTL.
--
-- Optional, and it needs a superuser (CREATE EVENT TRIGGER). Apply with
-- psql (PostgreSQL 11 or later):
--
--   psql "$DSN" -v ON_ERROR_STOP=1 -f migrations/postgres_ddl.sql
--
-- It installs into the current schema (the first existing schema of the
-- search_path), notifying channel 'querycache'; for another channel use
-- migrations.InstallPostgresDDLNotify (or edit the channel line below).
-- Applying it again is harmless. Event triggers are per database.
--
-- Each DDL statement that changes an object other sessions can see sends,
-- when its transaction commits,
--   pg_notify(channel, '{"v":1,"op":"DDL","tag":"ALTER TABLE"}')
-- and every listener on the channel invalidates everything and makes the
-- plugins forget what they learned of the schema. DDL on temporary
-- objects only (CREATE TEMP TABLE, its DROP) sends nothing.
--
-- Uninstall:
--   DROP EVENT TRIGGER IF EXISTS querycache_ddl_end;
--   DROP EVENT TRIGGER IF EXISTS querycache_ddl_drop;
--   DROP FUNCTION IF EXISTS querycache_notify_ddl();

BEGIN;

-- querycache:ddl begin
-- Waits for an install or uninstall under way (postgres_install.sql).
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('querycache.dev/migrations', 0));

CREATE OR REPLACE FUNCTION querycache_notify_ddl() RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $querycache$
DECLARE
	v_channel text := 'querycache'; -- querycache:channel
BEGIN
	IF TG_EVENT = 'sql_drop' THEN
		-- Temporary objects alone: no other session saw them.
		IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() WHERE NOT is_temporary) THEN
			RETURN;
		END IF;
	ELSIF TG_TAG LIKE 'DROP %' THEN
		-- Told by sql_drop, which knows what was temporary (a DROP's
		-- objects are not among pg_event_trigger_ddl_commands()).
		RETURN;
	ELSIF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
	  AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
	                   WHERE c.schema_name IS NULL
	                      OR NOT (c.schema_name = 'pg_temp' OR c.schema_name LIKE 'pg\_temp\_%'
	                              OR c.schema_name LIKE 'pg\_toast\_temp\_%')) THEN
		-- Temporary objects alone (reported in schema pg_temp).
		RETURN;
	END IF;
	-- A statement both drops and alters (ALTER TABLE ... DROP COLUMN)
	-- fires both events with one tag: PostgreSQL sends one notification
	-- of a payload repeated in a transaction.
	PERFORM pg_notify(v_channel, '{"v":1,"op":"DDL","tag":' || to_json(TG_TAG)::text || '}');
END
$querycache$;

DO $querycache$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'querycache_ddl_end') THEN
		CREATE EVENT TRIGGER querycache_ddl_end ON ddl_command_end EXECUTE PROCEDURE querycache_notify_ddl();
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = 'querycache_ddl_drop') THEN
		CREATE EVENT TRIGGER querycache_ddl_drop ON sql_drop EXECUTE PROCEDURE querycache_notify_ddl();
	END IF;
END
$querycache$;
-- querycache:ddl end

COMMIT;
