// BUG (wrong rows served, C5): on PostgreSQL an UPDATE of the pg_settings
// view is a SET. The view's rule pg_settings_u runs
// set_config(name, setting, false) for each row updated: the change is
// session-level (pg_settings has no transaction-local form; a rollback
// undoes it as it undoes a SET) and outlives the statement on its
// connection. The plugin stopped caching for SET, set_config and DO blocks
// or function bodies running them, but UPDATE pg_settings SET setting =
// 'tenant' WHERE name = 'search_path' was read as a write of a catalog:
// sent alone (however the view is named), in a DO block, in the body of a
// function the application calls or of a trigger, the connection then
// filled the cache with another schema's rows for every connection.
//
// Order of events: sessionProbe's (hostile31_dosession_test.go), with the
// statement below as the one that switches X's search_path.

package gormcache_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h34Set updates search_path through pg_settings; %[1]s is the new path.
const h34Set = "UPDATE pg_settings SET setting = '%[1]s' WHERE name = 'search_path'"

// Sent alone, through every way the application sends text, however the
// view is named.
func TestHostile34PgSettingsSentAlone(t *testing.T) {
	t.Parallel() // environments of their own
	forms := map[string]string{
		"plain":            h34Set,
		"pg_catalog":       "UPDATE pg_catalog.pg_settings SET setting = '%[1]s' WHERE name = 'search_path'",
		"quoted":           `UPDATE "pg_settings" SET setting = '%[1]s' WHERE name = 'search_path'`,
		"quoted-qualified": `UPDATE "pg_catalog"."pg_settings" AS s SET "setting" = '%[1]s' WHERE s.name = 'search_path'`,
		"only-alias-from":  "update only PG_SETTINGS s set setting = '%[1]s' from (select 'search_path' as n) x where s.name = x.n",
		"comment-first":    "/* tenant */ UPDATE pg_settings SET setting = '%[1]s' WHERE name = 'search_path'",
	}
	for name, form := range forms {
		inEachMode(t, name+"/Exec", func(t *testing.T, inTx bool) {
			sessionProbe(t, func(e *env, path string) {}, func(db *gorm.DB, path string) (string, error) {
				stmt := fmt.Sprintf(form, path)
				return stmt, runMaybeInTx(db, inTx, func(db *gorm.DB) error { return db.Exec(stmt).Error })
			})
		})
	}
	calls := map[string]func(db *gorm.DB, path string) error{
		"Scan": func(db *gorm.DB, path string) error {
			var s []string
			return db.Raw(fmt.Sprintf(h34Set, path)).Scan(&s).Error
		},
		"Row": func(db *gorm.DB, path string) error {
			var s sql.NullString
			if err := db.Raw(fmt.Sprintf(h34Set, path)).Row().Scan(&s); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			return nil
		},
		// A statement GORM builds (observeBuilt).
		"GormUpdate": func(db *gorm.DB, path string) error {
			return db.Table("pg_settings").Where("name = ?", "search_path").Update("setting", path).Error
		},
	}
	for name, call := range calls {
		inEachMode(t, "plain/"+name, func(t *testing.T, inTx bool) {
			sessionProbe(t, func(e *env, path string) {}, func(db *gorm.DB, path string) (string, error) {
				return name, runMaybeInTx(db, inTx, func(db *gorm.DB) error { return call(db, path) })
			})
		})
	}
}

// A data-modifying WITH naming pg_settings. PostgreSQL 15 turns the
// UPDATE into its rule's SELECT of set_config, which, unreferenced, never
// runs (and RETURNING is refused): the text's write of pg_settings counts
// as a change all the same, as every rule-dependent form would (erring
// towards yes, as changesState does). The check: caching stops.
func TestHostile34PgSettingsInWith(t *testing.T) {
	t.Parallel() // environments of their own
	inEachMode(t, "Scan", func(t *testing.T, inTx bool) {
		e := newEnv(t, h31Postgres(t), stores[0], querycache.Options{})
		h16Exec(t, e, `CREATE TABLE h34w_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h34w_items VALUES (1, 'one')`)
		keepsCaching(t, e, "h34w_items")
		stmt := "WITH s AS (UPDATE pg_settings SET setting = current_setting('search_path') WHERE name = 'search_path') SELECT 1"
		must(t, runMaybeInTx(e.db, inTx, func(db *gorm.DB) error {
			var n []int
			return db.Raw(stmt).Scan(&n).Error
		}))
		q := "SELECT v FROM h34w_items WHERE id = 2 OR id = 1"
		for i := 0; i < 2; i++ {
			var v string
			if n := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&v).Error) }); n == 0 && i == 1 {
				t.Errorf("a marked read is still served from the cache after %s", stmt)
			}
		}
		if e.cache.Stats().Bypasses["session_state"] == 0 {
			t.Errorf("no session_state bypass after %s", stmt)
		}
	})
}

// In a DO block's body: as a statement (after a branch, a declaration),
// and as the text of an EXECUTE.
func TestHostile34PgSettingsInDOBlock(t *testing.T) {
	t.Parallel() // environments of their own
	blocks := map[string]string{
		"statement":  "DO $$BEGIN " + h34Set + "; END$$",
		"qualified":  `DO $$BEGIN UPDATE "pg_catalog".pg_settings SET setting = '%[1]s' WHERE name = 'search_path'; END$$`,
		"in-branch":  "DO $$BEGIN IF true THEN " + h34Set + "; END IF; END$$",
		"variable":   "DO $$DECLARE p text := '%[1]s'; BEGIN UPDATE pg_settings SET setting = p WHERE name = 'search_path'; END$$",
		"in-with":    "DO $$BEGIN PERFORM 1; WITH s AS (SELECT 1) " + h34Set + "; END$$",
		"EXECUTE":    "DO $$BEGIN EXECUTE 'UPDATE pg_settings SET setting = ''%[1]s'' WHERE name = ''search_path'''; END$$",
		"after-stmt": "SELECT 1; DO $$BEGIN " + h34Set + "; END$$",
	}
	for name, block := range blocks {
		inEachMode(t, name, func(t *testing.T, inTx bool) {
			sessionProbe(t, func(e *env, path string) {}, func(db *gorm.DB, path string) (string, error) {
				stmt := fmt.Sprintf(block, path)
				return stmt, runMaybeInTx(db, inTx, func(db *gorm.DB) error { return db.Exec(stmt).Error })
			})
		})
	}
}

// In the body of a function the application calls (SELECT h34_use()),
// of a SQL-standard body (made outside the plugin, as
// TestHostile32SQLStandardBody's), and of a trigger a write fires.
func TestHostile34PgSettingsInFunctionBody(t *testing.T) {
	t.Parallel() // environments, functions of their own
	bodies := []struct{ name, lang, body string }{
		{"plpgsql", "plpgsql", "BEGIN " + h34Set + "; END"},
		{"plpgsql-branch-quoted", "plpgsql", `BEGIN IF true THEN UPDATE "pg_settings" SET setting = '%[1]s' WHERE name = 'search_path'; END IF; END`},
		{"sql", "sql", "UPDATE pg_catalog.pg_settings SET setting = '%[1]s' WHERE name = 'search_path'"},
		{"sql-after-select", "sql", "SELECT 1; " + h34Set},
	}
	calls := callPaths("h34_use")
	for _, b := range bodies {
		for call, run := range calls {
			if call != "Exec" && b.name != "plpgsql" {
				continue // each body by Exec, each call on one body (as TestHostile32FunctionBodyChangesSession)
			}
			inEachMode(t, b.name+"/"+call, func(t *testing.T, inTx bool) {
				sessionProbe(t, func(e *env, path string) {
					must(t, e.db.Exec("CREATE FUNCTION h34_use() RETURNS void LANGUAGE "+b.lang+" AS $f$"+fmt.Sprintf(b.body, path)+"$f$").Error)
				}, func(db *gorm.DB, path string) (string, error) {
					return b.name + " by " + call, runMaybeInTx(db, inTx, run)
				})
			})
		}
	}
	inEachMode(t, "begin-atomic", func(t *testing.T, inTx bool) {
		sessionProbe(t, func(e *env, path string) {
			sqlDB, err := e.db.DB()
			must(t, err)
			_, err = sqlDB.Exec("CREATE FUNCTION h34_std() RETURNS void LANGUAGE sql BEGIN ATOMIC " + fmt.Sprintf(h34Set, path) + "; END")
			must(t, err)
			must(t, e.db.Exec("CREATE FUNCTION h34_noop() RETURNS integer LANGUAGE sql AS 'SELECT 1'").Error)
		}, func(db *gorm.DB, path string) (string, error) {
			return "begin-atomic", runMaybeInTx(db, inTx, func(db *gorm.DB) error { return db.Exec("SELECT h34_std()").Error })
		})
	})
	inEachMode(t, "trigger", func(t *testing.T, inTx bool) {
		sessionProbe(t, func(e *env, path string) {
			must(t, e.db.Exec("CREATE TABLE h34t_log (id integer PRIMARY KEY)").Error)
			must(t, e.db.Exec("CREATE FUNCTION h34t_fire() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN "+fmt.Sprintf(h34Set, path)+"; RETURN NEW; END$f$").Error)
			must(t, e.db.Exec("CREATE TRIGGER h34t_trg AFTER INSERT ON h34t_log FOR EACH ROW EXECUTE FUNCTION h34t_fire()").Error)
		}, func(db *gorm.DB, path string) (string, error) {
			return "insert firing a pg_settings update", runMaybeInTx(db, inTx, func(db *gorm.DB) error {
				return db.Exec("INSERT INTO h34t_log (id) VALUES (1)").Error
			})
		})
	})
}

// The controls: reading pg_settings, writing a table of the user's whose
// name holds pg_settings (or is pg_settings in the user's schema), a string
// literal that spells the update, and bodies doing those, change no
// session: a cached read after them is a hit.
func TestHostile34PgSettingsControlsKeepCaching(t *testing.T) {
	t.Parallel() // environments, functions of their own
	statements := map[string]string{
		"select":               "SELECT setting FROM pg_settings WHERE name = 'search_path'",
		"select-for-update-of": "SELECT s.setting FROM pg_settings s JOIN h34c_my_pg_settings_log l ON l.note = s.name FOR UPDATE OF l",
		"own-table":            "UPDATE h34c_my_pg_settings_log SET note = 'x' WHERE id = 0",
		"own-table-quoted":     `UPDATE "h34c_my_pg_settings_log" SET note = 'x' WHERE id = 0`,
		"own-schema":           "UPDATE $SCHEMA.pg_settings SET setting = 'x' WHERE name = 'search_path'",
		"literal":              "INSERT INTO h34c_my_pg_settings_log (id, note) VALUES (2, 'update pg_settings set setting = ''x'' where name = ''search_path''')",
		"literal-in-where":     "UPDATE h34c_my_pg_settings_log SET note = 'UPDATE pg_settings SET setting = 1' WHERE id = 0",
		"do-read":              "DO $$BEGIN PERFORM setting FROM pg_settings WHERE name = 'search_path'; UPDATE h34c_my_pg_settings_log SET note = 'x' WHERE id = 0; END$$",
		"call-reader":          "SELECT h34c_reader()",
	}
	for name, stmt := range statements {
		inEachMode(t, name, func(t *testing.T, inTx bool) {
			e := newEnv(t, databases[1], stores[0], querycache.Options{})
			var schema string
			must(t, e.db.Raw("SELECT current_schema()").Scan(&schema).Error)
			h16Exec(t, e, `CREATE TABLE h34c_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h34c_items VALUES (1, 'one');
CREATE TABLE h34c_my_pg_settings_log (id integer PRIMARY KEY, note text);
INSERT INTO h34c_my_pg_settings_log VALUES (0, 'search_path');
CREATE TABLE pg_settings (name text PRIMARY KEY, setting text)`)
			must(t, e.db.Exec("CREATE FUNCTION h34c_reader() RETURNS void LANGUAGE plpgsql AS $f$BEGIN UPDATE h34c_my_pg_settings_log SET note = (SELECT setting FROM pg_settings WHERE name = 'search_path') WHERE id = 0; END$f$").Error)
			must(t, runMaybeInTx(e.db, inTx, func(db *gorm.DB) error {
				return db.Exec(strings.ReplaceAll(stmt, "$SCHEMA", schema)).Error
			}))
			keepsCaching(t, e, "h34c_items")
		})
	}
}
