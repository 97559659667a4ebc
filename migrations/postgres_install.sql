-- querycache: PostgreSQL triggers that tell the cache about writes made
-- outside the application (other services, psql, cron jobs, triggers,
-- foreign-key cascades).
--
-- Apply with psql (PostgreSQL 11 or later; the file has no backslash, so
-- standard_conforming_strings does not matter):
--
--   psql "$DSN" -v ON_ERROR_STOP=1 -f migrations/postgres_install.sql
--
-- It installs into the current schema (the first existing schema of the
-- search_path, normally public), on every table of that schema, notifying
-- channel 'querycache'. For another schema run it with
-- PGOPTIONS='-c search_path=myschema'; to choose the tables or the channel,
-- edit the SELECT at the end, or use `go run ./cmd/querycache migrate`.
-- Applying it again is harmless, and picks up tables created since.
-- Re-apply after creating or attaching tables or partitions: a table
-- without the triggers is not watched.
--
-- Every statement that writes a watched table sends, when it commits,
--   pg_notify(channel, '{"v":1,"op":"UPDATE","t":["s.child","s.parent"],"k":[["1"],["7"]]}')
-- "t" is the written table, its partition/inheritance ancestors, then its
-- descendants (partitions and children, for a write through a parent); "k"
-- the primary keys of the changed rows (old and new for UPDATE) when the
-- table has a primary key and the payload fits in 7999 bytes, else absent.
-- The objects created are named querycache_*, in the installed schema.
-- Uninstall: migrations/postgres_uninstall.sql.

BEGIN;

-- querycache:functions begin

-- Installs at the same moment (every replica of an application at
-- start-up) wait for each other: concurrent CREATE OR REPLACE FUNCTION
-- fails with "tuple concurrently updated", two CREATE TRIGGER with
-- "already exists". Held until the end of the transaction.
SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('querycache.dev/migrations', 0));

-- querycache_notify is the trigger function of every querycache trigger.
-- Arguments: the channel, and 'keys' when the trigger has transition tables
-- (REFERENCING ... AS querycache_new / querycache_old), 'tables' when not.
-- The table names and the primary-key columns are read from the catalog at
-- each statement rather than frozen at install time, so that renaming a
-- column, changing the key or attaching the table to a new parent later can
-- never make the trigger fail the user's write or name the wrong rows.
-- Cost: the static statements below are planned once per trigger and
-- session; only the key query, whose columns are the table's, is planned at
-- each statement.
CREATE OR REPLACE FUNCTION querycache_notify() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $querycache$
DECLARE
	v_tables  text := to_json(format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME))::text;
	v_indkey  int2[];
	v_key     text;
	v_sql     text;
	v_n       bigint;
	v_keys    text;
	v_payload text;
BEGIN
	-- "t": this table first, then, for a partition or inheritance child,
	-- its ancestors up to the root (each once, at its least depth, for a
	-- table reached twice through multiple inheritance).
	IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = TG_RELID) THEN
		WITH RECURSIVE up(relid, depth) AS (
			SELECT i.inhparent, 1 FROM pg_inherits i WHERE i.inhrelid = TG_RELID
			UNION ALL
			SELECT i.inhparent, up.depth + 1
			  FROM up JOIN pg_inherits i ON i.inhrelid = up.relid
		), d AS (
			SELECT relid, min(depth) AS depth FROM up GROUP BY relid
		)
		SELECT v_tables || ',' || string_agg(
		           (SELECT to_json(format('%I.%I', n.nspname, c.relname))::text
		              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		             WHERE c.oid = d.relid),
		           ',' ORDER BY d.depth, d.relid)
		  INTO v_tables
		  FROM d;
	END IF;

	-- Then, for a partitioned table or an inheritance parent, every
	-- descendant: a write through the parent fires only the parent's
	-- triggers, and a cached query may read a partition directly.
	IF EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = TG_RELID) THEN
		WITH RECURSIVE down(relid) AS (
			SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = TG_RELID
			UNION
			SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.relid
		)
		SELECT coalesce(v_tables || ',' || string_agg(
		           (SELECT to_json(format('%I.%I', n.nspname, c.relname))::text
		              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		             WHERE c.oid = down.relid),
		           ',' ORDER BY down.relid), v_tables)
		  INTO v_tables
		  FROM down WHERE down.relid <> TG_RELID;
	END IF;

	v_payload := '{"v":1,"op":"' || TG_OP || '","t":[' || v_tables || ']}';
	IF octet_length(v_payload) > 7999 THEN
		-- Names of an inheritance tree too long for one notification
		-- (dozens of levels of 63-byte names): failing the write is not an
		-- option, and a listener treats an unknown version as "invalidate
		-- everything".
		PERFORM pg_notify(TG_ARGV[0], '{"v":0,"op":"' || TG_OP || '","error":"table names exceed 7999 bytes"}');
		RETURN NULL;
	END IF;

	IF TG_ARGV[1] IS DISTINCT FROM 'keys' OR TG_OP = 'TRUNCATE' THEN
		PERFORM pg_notify(TG_ARGV[0], v_payload);
		RETURN NULL;
	END IF;

	-- With transition tables. A statement that changed no row (an UPDATE
	-- whose WHERE matched nothing) changed nothing: no notification. More
	-- than 1600 rows on one side cannot fit: every key takes at least 5
	-- bytes ('[""],'), and each side's rows have distinct keys. Counting
	-- stops at 1601 rows, so a huge statement costs no more here than a
	-- small one.
	IF TG_OP = 'INSERT' THEN
		SELECT count(*) INTO v_n FROM (SELECT 1 FROM querycache_new LIMIT 1601) s;
	ELSIF TG_OP = 'DELETE' THEN
		SELECT count(*) INTO v_n FROM (SELECT 1 FROM querycache_old LIMIT 1601) s;
	ELSE
		SELECT greatest((SELECT count(*) FROM (SELECT 1 FROM querycache_old LIMIT 1601) s),
		                (SELECT count(*) FROM (SELECT 1 FROM querycache_new LIMIT 1601) s))
		  INTO v_n;
	END IF;
	IF v_n = 0 THEN
		RETURN NULL;
	END IF;

	IF v_n <= 1600 THEN
		SELECT i.indkey::int2[] INTO v_indkey
		  FROM pg_index i WHERE i.indrelid = TG_RELID AND i.indisprimary;
		-- '[' || to_json(pk1::text)::text || ',' || ... || ']' in key order;
		-- NULL when the table has no primary key.
		SELECT '''['' || ' || string_agg(format('to_json(%I::text)::text', a.attname), ' || '','' || ' ORDER BY k.ord) || ' || '']'''
		  INTO v_key
		  FROM unnest(v_indkey) WITH ORDINALITY AS k(attnum, ord)
		  JOIN pg_attribute a ON a.attrelid = TG_RELID AND a.attnum = k.attnum;
	END IF;

	-- The keys name rows of every table in "t". An inheritance parent or
	-- child keyed by other columns (a child may declare its own primary
	-- key) would get keys that are not its own, and its lookups by primary
	-- key would stay stale: then the tables only. Partitions always share
	-- their parent's key, so partitioned trees skip the check.
	IF v_key IS NOT NULL AND v_tables LIKE '%,%'
	   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = TG_RELID AND c.relkind = 'r' AND NOT c.relispartition) THEN
		IF EXISTS (
			WITH RECURSIVE up(relid) AS (
				SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = TG_RELID
				UNION
				SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.relid
			), down(relid) AS (
				SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = TG_RELID
				UNION
				SELECT i.inhrelid FROM down JOIN pg_inherits i ON i.inhparent = down.relid
			)
			SELECT 1
			  FROM (SELECT relid FROM up UNION SELECT relid FROM down) r
			  JOIN pg_index x ON x.indrelid = r.relid AND x.indisprimary
			 WHERE ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
			               JOIN pg_attribute a ON a.attrelid = r.relid AND a.attnum = k.attnum ORDER BY k.ord)
			       IS DISTINCT FROM
			       ARRAY(SELECT a.attname FROM unnest(v_indkey) WITH ORDINALITY AS k(attnum, ord)
			               JOIN pg_attribute a ON a.attrelid = TG_RELID AND a.attnum = k.attnum ORDER BY k.ord)
		) THEN
			v_key := NULL;
		END IF;
	END IF;

	IF v_key IS NOT NULL THEN
		v_sql := CASE TG_OP
			WHEN 'INSERT' THEN 'SELECT ' || v_key || ' AS k FROM querycache_new'
			WHEN 'DELETE' THEN 'SELECT ' || v_key || ' AS k FROM querycache_old'
			ELSE 'SELECT ' || v_key || ' AS k FROM querycache_old UNION SELECT ' || v_key || ' AS k FROM querycache_new'
		END;
		EXECUTE 'SELECT string_agg(DISTINCT k, '','') FROM (' || v_sql || ') s' INTO v_keys;
		IF octet_length(v_payload) + octet_length(v_keys) + 7 <= 7999 THEN
			v_payload := left(v_payload, -1) || ',"k":[' || v_keys || ']}';
		END IF;
	END IF;

	PERFORM pg_notify(TG_ARGV[0], v_payload);
	RETURN NULL;
END
$querycache$;

-- querycache_install puts the four statement-level triggers on the chosen
-- tables of p_schema (p_tables NULL: every ordinary and partitioned table
-- of the schema except querycache's own querycache_* tables; its views are
-- listed as skipped), and on every
-- partition and inheritance child of those, whatever their schema (a
-- partition written directly fires only its own triggers). A trigger that
-- already exists as wanted is left alone, so installing again takes no lock
-- on the tables already done. Views, materialized views and foreign tables
-- are skipped with a note. It returns one row per table.
CREATE OR REPLACE FUNCTION querycache_install(p_schema name, p_tables text[], p_channel text)
RETURNS TABLE (table_name text, mode text, note text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $querycache$
DECLARE
	v_nsp     oid;
	v_fn      oid;
	v_missing text;
	v_mode    text;
	v_ev      text;
	v_ref     text;
	v_trg     record;
	v_changed boolean;
	v_note    text;
	r         record;
BEGIN
	-- See the lock at the top: the same, for this call's own transaction.
	PERFORM pg_advisory_xact_lock(hashtextextended('querycache.dev/migrations', 0));
	IF p_schema IS NULL THEN
		RAISE EXCEPTION 'querycache: no schema given and no current schema (the search_path names no existing schema)'
			USING HINT = 'Pass the schema explicitly (--schema, Options.Schema) or fix the search_path.';
	END IF;
	SELECT oid INTO v_nsp FROM pg_namespace WHERE nspname = p_schema;
	IF v_nsp IS NULL THEN
		RAISE EXCEPTION 'querycache: schema % does not exist', quote_ident(p_schema)
			USING HINT = 'Check the schema name (case-sensitive, unquoted).';
	END IF;
	IF p_channel IS NULL OR p_channel = '' OR octet_length(p_channel) > 63 THEN
		RAISE EXCEPTION 'querycache: channel % is not a valid channel name', coalesce(quote_literal(p_channel), 'NULL')
			USING HINT = 'Use a non-empty name of at most 63 bytes, the one the listener LISTENs on.';
	END IF;
	v_fn := to_regprocedure(format('%I.querycache_notify()', p_schema));
	IF v_fn IS NULL THEN
		RAISE EXCEPTION 'querycache: function %.querycache_notify() is missing', quote_ident(p_schema)
			USING HINT = 'Apply the whole of migrations/postgres_install.sql, not only the final SELECT.';
	END IF;
	IF p_tables IS NOT NULL THEN
		SELECT string_agg(quote_ident(x), ', ') INTO v_missing
		  FROM unnest(p_tables) AS x
		 WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = v_nsp AND c.relname = x);
		IF v_missing IS NOT NULL THEN
			RAISE EXCEPTION 'querycache: no table % in schema %', v_missing, quote_ident(p_schema)
				USING HINT = 'Table names are matched exactly (case-sensitive, unquoted, without the schema).';
		END IF;
	END IF;

	FOR r IN
		WITH RECURSIVE chosen(oid) AS (
			SELECT c.oid FROM pg_class c
			 WHERE c.relnamespace = v_nsp
			   AND CASE WHEN p_tables IS NULL
			            THEN c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT starts_with(c.relname, 'querycache_')
			            ELSE c.relname = ANY (p_tables) END
			UNION
			SELECT i.inhrelid FROM pg_inherits i JOIN chosen ON i.inhparent = chosen.oid
		)
		SELECT c.oid, c.relkind, n.nspname, c.relname,
		       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
		       -- Parents neither chosen now nor watched before: writes
		       -- through them are not seen, which the note says.
		       (SELECT string_agg(format('%I.%I', pn.nspname, pc.relname), ', ' ORDER BY pn.nspname, pc.relname)
		          FROM pg_inherits i
		          JOIN pg_class pc ON pc.oid = i.inhparent
		          JOIN pg_namespace pn ON pn.oid = pc.relnamespace
		         WHERE i.inhrelid = c.oid
		           AND i.inhparent NOT IN (SELECT oid FROM chosen)
		           AND NOT EXISTS (SELECT 1 FROM pg_trigger t
		                            WHERE t.tgrelid = i.inhparent AND t.tgfoid = v_fn
		                              AND t.tgname = 'querycache_notify_insert')) AS unwatched_parents
		  FROM chosen JOIN pg_class c ON c.oid = chosen.oid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 ORDER BY n.nspname, c.relname
	LOOP
		table_name := format('%I.%I', r.nspname, r.relname);
		IF r.relkind NOT IN ('r', 'p') THEN
			mode := 'skipped';
			note := CASE r.relkind
				WHEN 'v' THEN 'view: cannot have these triggers; install on the tables it reads'
				WHEN 'm' THEN 'materialized view: cannot have these triggers; it changes only by REFRESH'
				WHEN 'f' THEN 'foreign table: written on the remote server, not watched here'
				ELSE 'not a table (relkind ' || r.relkind::text || ')'
			END;
			RETURN NEXT;
			CONTINUE;
		END IF;

		-- A table without a primary key gets no transition tables: they
		-- would copy every written row only to name the table anyway.
		v_mode := CASE WHEN r.has_pk THEN 'keys' ELSE 'tables' END;
		v_changed := false;
		v_note := NULL;
		FOREACH v_ev IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
			v_ref := CASE WHEN v_mode = 'tables' THEN '' ELSE CASE v_ev
				WHEN 'insert' THEN 'REFERENCING NEW TABLE AS querycache_new'
				WHEN 'update' THEN 'REFERENCING OLD TABLE AS querycache_old NEW TABLE AS querycache_new'
				WHEN 'delete' THEN 'REFERENCING OLD TABLE AS querycache_old'
				ELSE '' END END;
			SELECT t.oid,
			       t.tgfoid = v_fn
			       AND t.tgtype = CASE v_ev WHEN 'insert' THEN 4 WHEN 'delete' THEN 8 WHEN 'update' THEN 16 ELSE 32 END
			       AND t.tgnargs = 2
			       AND t.tgargs = convert_to(p_channel, getdatabaseencoding()) || decode('00', 'hex')
			                      || convert_to(CASE WHEN v_ref = '' THEN 'tables' ELSE 'keys' END, getdatabaseencoding()) || decode('00', 'hex')
			       AND t.tgnewtable IS NOT DISTINCT FROM (CASE WHEN v_ref LIKE '%NEW TABLE%' THEN 'querycache_new' END)::name
			       AND t.tgoldtable IS NOT DISTINCT FROM (CASE WHEN v_ref LIKE '%OLD TABLE%' THEN 'querycache_old' END)::name
			       AS same
			  INTO v_trg
			  FROM pg_trigger t
			 WHERE t.tgrelid = r.oid AND t.tgname = 'querycache_notify_' || v_ev;
			IF FOUND AND v_trg.same THEN
				CONTINUE;
			END IF;
			IF FOUND THEN
				EXECUTE format('DROP TRIGGER %I ON %I.%I', 'querycache_notify_' || v_ev, r.nspname, r.relname);
			END IF;
			v_changed := true;
			BEGIN
				EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I.%I %s FOR EACH STATEMENT EXECUTE FUNCTION %s(%L, %L)',
					'querycache_notify_' || v_ev, upper(v_ev), r.nspname, r.relname, v_ref,
					format('%I.querycache_notify', p_schema), p_channel,
					CASE WHEN v_ref = '' THEN 'tables' ELSE 'keys' END);
			EXCEPTION WHEN feature_not_supported THEN
				-- Defensive: PostgreSQL 10 to 17 accept transition tables
				-- on statement triggers of partitions and inheritance
				-- children (only row triggers are refused there). Should a
				-- server refuse them, the trigger names the tables only.
				EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I.%I FOR EACH STATEMENT EXECUTE FUNCTION %s(%L, %L)',
					'querycache_notify_' || v_ev, upper(v_ev), r.nspname, r.relname,
					format('%I.querycache_notify', p_schema), p_channel, 'tables');
				v_note := 'transition tables refused here (' || SQLERRM || '): notifies table names only';
			END;
		END LOOP;
		mode := v_mode;
		IF v_note IS NOT NULL THEN
			mode := 'tables';
		END IF;
		note := coalesce(v_note, CASE WHEN v_changed THEN 'installed' ELSE 'unchanged' END)
		        || CASE WHEN v_mode = 'tables' AND v_note IS NULL THEN ' (no primary key: notifies the table name only)' ELSE '' END
		        || CASE WHEN r.unwatched_parents IS NOT NULL
		                THEN '; writes through its parent ' || r.unwatched_parents || ' are not seen: install there too'
		                ELSE '' END;
		RETURN NEXT;
	END LOOP;
END
$querycache$;

-- querycache:functions end

SELECT * FROM querycache_install(current_schema(), NULL, 'querycache');

COMMIT;
