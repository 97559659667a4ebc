-- querycache: removes what migrations/postgres_install.sql installed in the
-- current schema (the first existing schema of the search_path, normally
-- public):
--
--   psql "$DSN" -v ON_ERROR_STOP=1 -f migrations/postgres_uninstall.sql
--
-- It drops every querycache_notify_* trigger calling that schema's
-- querycache_notify() (on partitions in other schemas too) or standing on a
-- table of the schema, then the querycache_* functions. Running it again,
-- or on a schema never installed, does nothing. To remove the triggers of
-- some tables only (keeping the rest installed), set v_tables below, or use
-- `go run ./cmd/querycache uninstall --tables a,b`.

BEGIN;

-- querycache:uninstall begin
DO $querycache$
DECLARE
	v_schema name := current_schema(); -- querycache:schema
	v_tables text[] := NULL; -- querycache:tables
	v_nsp    oid;
	v_fn     oid;
	r        record;
BEGIN
	-- Waits for an install or uninstall under way (see postgres_install.sql).
	PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('querycache.dev/migrations', 0));
	IF v_schema IS NULL THEN
		RAISE EXCEPTION 'querycache: no schema given and no current schema (the search_path names no existing schema)'
			USING HINT = 'Pass the schema explicitly (--schema, Options.Schema) or fix the search_path.';
	END IF;
	SELECT oid INTO v_nsp FROM pg_catalog.pg_namespace WHERE nspname = v_schema;
	IF v_nsp IS NULL THEN
		RAISE EXCEPTION 'querycache: schema % does not exist', quote_ident(v_schema)
			USING HINT = 'Check the schema name (case-sensitive, unquoted).';
	END IF;
	v_fn := pg_catalog.to_regprocedure(pg_catalog.format('%I.querycache_notify()', v_schema));

	FOR r IN
		WITH RECURSIVE chosen(oid) AS (
			SELECT c.oid FROM pg_catalog.pg_class c
			 WHERE c.relnamespace = v_nsp AND (v_tables IS NULL OR c.relname = ANY (v_tables))
			UNION
			SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN chosen ON i.inhparent = chosen.oid
		)
		SELECT t.tgname, n.nspname, c.relname
		  FROM pg_catalog.pg_trigger t
		  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
		  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE NOT t.tgisinternal
		   AND t.tgname IN ('querycache_notify_insert', 'querycache_notify_update',
		                    'querycache_notify_delete', 'querycache_notify_truncate')
		   AND (c.oid IN (SELECT oid FROM chosen)
		        OR (v_tables IS NULL AND t.tgfoid = v_fn))
		 ORDER BY n.nspname, c.relname, t.tgname
	LOOP
		EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS %I ON %I.%I', r.tgname, r.nspname, r.relname);
	END LOOP;

	IF v_tables IS NULL THEN
		EXECUTE pg_catalog.format('DROP FUNCTION IF EXISTS %I.querycache_install(name, text[], text)', v_schema);
		EXECUTE pg_catalog.format('DROP FUNCTION IF EXISTS %I.querycache_notify()', v_schema);
	END IF;
END
$querycache$;
-- querycache:uninstall end

COMMIT;
