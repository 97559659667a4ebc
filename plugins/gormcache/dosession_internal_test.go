package gormcache

import (
	"strings"
	"testing"
)

func TestDoChangesSession(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{`DO $$BEGIN SET search_path = a; END$$`, true},
		{`do $$ begin set search_path to a, public; end $$`, true},
		{`DO $$ BEGIN IF true THEN SET ROLE bob; END IF; END $$`, true},
		{`DO $$ <<blk>> BEGIN SET TimeZone = 'UTC'; END $$`, true},
		{`DO LANGUAGE plpgsql $$BEGIN RESET ALL; END$$`, true},
		{`DO $$BEGIN NULL; END$$ LANGUAGE plpgsql`, false},
		{`DO 'BEGIN SET search_path = x; END'`, true},
		{`DO 'BEGIN UPDATE t SET v = ''a''; END'`, false},
		{`DO $$BEGIN PERFORM set_config('a', 'b', false); END$$`, true},
		{`DO $$ DECLARE x text; BEGIN x := set_config('a', 'b', false); END $$`, true},
		{`DO $$BEGIN EXECUTE 'SET search_path = x'; END$$`, true},
		{`DO $$BEGIN EXECUTE $q$RESET ROLE$q$; END$$`, true},
		{`DO $body$ BEGIN EXECUTE 'SELECT set_config(''a'', ''b'', false)'; END $body$`, true},
		{`DO $$BEGIN SET search_path`, true}, // not closed: not read
		{`DO`, true},
		{`DO $$BEGIN ALTER DATABASE test SET search_path = a; END$$`, true},
		{`DO $$BEGIN PERFORM "set_config"('search_path', 'a', false); END$$`, true},
		{`DO $$BEGIN PERFORM E'\''; EXECUTE 'SET search_path = a'; PERFORM E'\''; END$$`, true},
		// An UPDATE of pg_settings is a SET (sqlinspect's SessionState).
		{`DO $$BEGIN UPDATE pg_settings SET setting = 'a' WHERE name = 'search_path'; END$$`, true},
		{`DO $$BEGIN UPDATE pg_catalog.pg_settings SET setting = 'a' WHERE name = 'search_path'; END$$`, true},
		{`DO $$BEGIN UPDATE "pg_catalog"."pg_settings" s SET setting = 'a' WHERE s.name = 'search_path'; END$$`, true},
		{`DO $$BEGIN IF true THEN update only Pg_Settings set setting = 'a' where name = 'search_path'; END IF; END$$`, true},
		{`DO $$DECLARE p text := 'a'; BEGIN UPDATE pg_settings SET setting = p WHERE name = 'search_path'; END$$`, true},
		{`DO $$BEGIN PERFORM 1; WITH s AS (SELECT 1) UPDATE pg_settings SET setting = 'a' WHERE name = 'search_path'; END$$`, true},
		{`DO $$BEGIN WITH s AS (UPDATE pg_settings SET setting = 'a' WHERE name = 'search_path') SELECT 1 INTO x; END$$`, true},
		{`DO $$BEGIN UPDATE U&"pg_setting\0073" SET setting = 'a' WHERE name = 'search_path'; END$$`, true},
		{`DO $$BEGIN UPDATE pg_settings SET setting = set_config('app.x', 'y', true) WHERE name = 'search_path'; END$$`, true},
		{`DO $$BEGIN EXECUTE 'UPDATE pg_settings SET setting = ''a'' WHERE name = ''search_path'''; END$$`, true},
		// No change that outlives the block.
		{`DO $$BEGIN PERFORM setting FROM pg_settings WHERE name = 'search_path'; END$$`, false},
		{`DO $$BEGIN UPDATE my_pg_settings_log SET note = 'a' WHERE id = 0; END$$`, false},
		{`DO $$BEGIN UPDATE "my_pg_settings" SET note = 'a'; END$$`, false},
		{`DO $$BEGIN UPDATE tenant.pg_settings SET setting = 'a'; END$$`, false},
		{`DO $$BEGIN UPDATE t SET v = (SELECT setting FROM pg_settings WHERE name = 'search_path'); END$$`, false},
		{`DO $$BEGIN PERFORM 1 FROM pg_settings FOR UPDATE; UPDATE t SET v = set_config('app.x', 'y', true); END$$`, false},
		{`DO $$BEGIN INSERT INTO "t" VALUES (1) ON CONFLICT (id) DO UPDATE SET v = (SELECT setting FROM pg_settings LIMIT 1); END$$`, false},
		{`DO $$BEGIN SET LOCAL search_path = a; END$$`, false},
		{`DO $$BEGIN PERFORM set_config('app.tenant', '42', true); END$$`, false},
		{`DO $$BEGIN SET statement_timeout = 5000; END$$`, false},
		{`DO $$BEGIN UPDATE t SET x = 1 WHERE id = 2; END$$`, false},
		{`DO $$BEGIN ALTER TABLE t ALTER COLUMN c SET DEFAULT 0; END$$`, false},
		{`DO $$BEGIN INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 2; END$$`, false},
		{`DO $$BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN c int', 't'); END$$`, false},
		{`DO $$ BEGIN CREATE TEMP TABLE x (id int); END $$`, false},
	} {
		if got := doChangesSession(c.sql); got != c.want {
			t.Errorf("%q: %v, want %v", c.sql, got, c.want)
		}
	}
}

func FuzzDoChangesSession(f *testing.F) {
	for _, s := range []string{
		`DO $$BEGIN SET search_path = a; END$$`,
		`DO LANGUAGE plpgsql $t$BEGIN EXECUTE 'RESET ALL'; END$t$`,
		`DO 'BEGIN UPDATE t SET v = ''a''; END'`,
		`DO $$ DECLARE x text; BEGIN x := set_config('a', 'b', false); END $$`,
		`DO $$BEGIN /* it's /* nested */ here */ PERFORM set_config('a', 'b', true); EXECUTE 'SET role x'; END$$`,
		`DO $$BEGIN /* unclosed 'SET search_path = a'; END$$`,
		`DO $$BEGIN IF true THEN UPDATE "pg_catalog".pg_settings SET setting = 'a' WHERE name = 'search_path'; END IF; END$$`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		got := doChangesSession(sql) // must not panic
		if !got && strings.Contains(strings.ToUpper(sql), "SET SEARCH_PATH") && !strings.Contains(strings.ToUpper(sql), "LOCAL") &&
			!strings.ContainsAny(sql, "-/\"") && strings.Count(sql, "$$") == 2 && strings.HasPrefix(sql, "DO $$BEGIN SET SEARCH_PATH") {
			t.Fatalf("%q: a SET search_path heading the body not seen", sql)
		}
	})
}

// A function's source as the function list reads it: a SQL-standard body
// is pg_get_functiondef's whole CREATE text.
func TestBodyChangesSessionPgSettings(t *testing.T) {
	for body, want := range map[string]bool{
		"CREATE OR REPLACE FUNCTION public.f()\n RETURNS void\n LANGUAGE sql\nBEGIN ATOMIC\n UPDATE pg_settings SET setting = 'a'::text\n   WHERE (pg_settings.name = 'search_path'::text);\nEND": true,
		"UPDATE pg_settings SET setting = $1 WHERE name = 'search_path'":                         true,
		"SELECT 1; UPDATE pg_catalog.pg_settings SET setting = 'a' WHERE name = 'x'":             true,
		"BEGIN UPDATE pg_settings SET setting = 'a' WHERE name = 'search_path'; RETURN NEW; END": true,
		"SELECT setting FROM pg_settings WHERE name = 'search_path'":                             false,
		"BEGIN UPDATE h_log SET note = (SELECT setting FROM pg_settings LIMIT 1); END":           false,
	} {
		if got := bodyChangesSession(body); got != want {
			t.Errorf("bodyChangesSession(%q) = %v, want %v", body, got, want)
		}
	}
}

// mentionsSet is the filter for bodies of languages the plugin does not
// read (a trigger in PL/Python, say): the word set or reset, or set_config.
func TestMentionsSet(t *testing.T) {
	for src, want := range map[string]bool{
		"plpy.execute('SET search_path = a')": true,
		"RESET ALL":                           true,
		"x = set_config('a', 'b', False)":     true,
		"s = set()":                           true,
		"SELECT 1 OFFSET 2":                   false,
		"settings = upset + reset_count":      false,
		"":                                    false,
	} {
		if got := mentionsSet(src); got != want {
			t.Errorf("mentionsSet(%q) = %v, want %v", src, got, want)
		}
	}
}
