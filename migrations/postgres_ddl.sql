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
-- Uninstall: `go run ./cmd/querycache uninstall --ddl`, or
--   DROP FUNCTION querycache_notify_ddl() CASCADE;
-- (the event triggers call it).

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
		-- Temporary objects alone: no other session saw them, and what
		-- depended on them (a permanent table's column of a temporary
		-- type) is among the objects dropped, not temporary.
		IF NOT EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() WHERE NOT is_temporary) THEN
			RETURN;
		END IF;
	ELSIF TG_TAG LIKE 'DROP %' AND TG_TAG <> 'DROP OWNED' THEN
		-- Told by sql_drop, which knows what was temporary (a DROP's
		-- objects are not among pg_event_trigger_ddl_commands()). DROP
		-- OWNED revokes privileges too, which drops no object.
		RETURN;
	ELSIF TG_TAG LIKE 'CREATE %'
	  AND EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands())
	  AND NOT EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() c
	                   WHERE c.schema_name IS NULL
	                      OR NOT (c.schema_name = 'pg_temp' OR c.schema_name LIKE 'pg\_temp\_%'
	                              OR c.schema_name LIKE 'pg\_toast\_temp\_%')) THEN
		-- Temporary objects created alone (reported in schema pg_temp):
		-- nothing existing changed. Any other command on a temporary
		-- object is told: a permanent table may use a temporary type.
		RETURN;
	END IF;
	-- A statement both drops and alters (ALTER TABLE ... DROP COLUMN)
	-- fires both events with one tag: PostgreSQL sends one notification
	-- of a payload repeated in a transaction.
	PERFORM pg_notify(v_channel, '{"v":1,"op":"DDL","tag":' || to_json(TG_TAG)::text || '}');
END
$querycache$;

DO $querycache$
DECLARE
	v_schema name := current_schema(); -- querycache:schema
	v_fn     name := 'querycache_notify_ddl';
	v_foid   oid;
	v_ev     record;
BEGIN
	SELECT p.oid INTO v_foid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	 WHERE n.nspname = v_schema AND p.proname = v_fn AND p.pronargs = 0;
	FOR v_ev IN SELECT * FROM (VALUES ('querycache_ddl_end', 'ddl_command_end'), ('querycache_ddl_drop', 'sql_drop')) AS e(name, event) LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = v_ev.name) THEN
			EXECUTE pg_catalog.format('CREATE EVENT TRIGGER %I ON %s EXECUTE PROCEDURE %I.%I()', v_ev.name, v_ev.event, v_schema, v_fn);
		ELSIF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = v_ev.name AND evtfoid = v_foid) THEN
			-- Installed for this channel in another schema: two installs
			-- would share the event triggers, and removing either (or
			-- its schema) silently removed both.
			RAISE EXCEPTION 'querycache: the DDL event trigger % of this channel calls %, installed in another schema',
				v_ev.name, (SELECT evtfoid::regprocedure FROM pg_catalog.pg_event_trigger WHERE evtname = v_ev.name)
				USING HINT = 'Uninstall it from that schema first, or install for another channel.';
		END IF;
	END LOOP;
END
$querycache$;
-- querycache:ddl end

COMMIT;
