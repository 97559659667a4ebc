package gormcache_test

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BUG (wrong rows served, C5/C1): a session-level setting changed inside
// the body of a PostgreSQL function the application calls. The plugin
// stops caching for a statement whose text changes session state (SET,
// set_config(..., false)) and for a DO block whose body does
// (dosession.go), but SELECT use_tenant('acme') shows only a call: the
// SET search_path in the function's body outlives the call on its
// connection, which then fills the cache with the other schema's rows for
// every connection. It is the common way to switch tenants by schema.
//
// Order of events (a pool of two connections; Y held by db.Connection,
// so X is the pool's only free one):
//  1. <home>.h31s_items (1, 'home'), <tenant>.h31s_items (1, 'tenant'); a
//     function h32_use() whose body sets search_path to <tenant>, <home>.
//  2. On X: SELECT h32_use(), by Exec, by Raw().Scan or by Raw().Row(),
//     auto-committed or in a db.Transaction that commits. X now reads
//     <tenant>.h31s_items (sessionProbe).
//  3. On the pool (X): a marked read of another shape (the table's
//     facts), then SELECT v FROM h31s_items WHERE id = 1, marked:
//     'tenant', stored.
//  4. On Y (the DSN's search_path): the same marked read.
//  5. Expected 'home' (an unmarked read on Y says so); served 'tenant'.
func TestHostile32FunctionBodyChangesSession(t *testing.T) {
	t.Parallel() // an environment, schemas and functions of its own
	bodies := []struct{ name, lang, body, callee string }{
		{"plpgsql-SET", "plpgsql", "BEGIN SET search_path = %s; END", ""},
		{"plpgsql-set_config", "plpgsql", "BEGIN IF true THEN PERFORM set_config('search_path', '%s', false); END IF; END", ""},
		{"plpgsql-EXECUTE", "plpgsql", "BEGIN EXECUTE 'SET search_path = %s'; END", ""},
		{"sql-set_config", "sql", "SELECT set_config('search_path', '%s', false)", ""},
		// The body calls functions that change the session, two levels
		// down (addSessionCallers).
		{"nested", "plpgsql", "BEGIN PERFORM h32_middle(); END", "BEGIN SET search_path = %s; END"},
		// Declared STABLE (PostgreSQL does not stop a STABLE function from
		// calling set_config): a marked read calling it was cacheable.
		{"stable", "plpgsql STABLE", "BEGIN PERFORM set_config('search_path', '%s', false); END", ""},
	}
	calls := []struct {
		name string
		run  func(db *gorm.DB) error
	}{
		{"Exec", func(db *gorm.DB) error { return db.Exec("SELECT h32_use()").Error }},
		{"Scan", func(db *gorm.DB) error {
			var s sql.NullString
			return db.Raw("SELECT h32_use()::text").Scan(&s).Error
		}},
		{"Row", func(db *gorm.DB) error {
			var s sql.NullString
			return db.Raw("SELECT h32_use()::text").Row().Scan(&s)
		}},
		// Statements GORM builds, calling it (observeBuilt).
		{"Pluck", func(db *gorm.DB) error {
			var vs []string
			return db.Table("h32_side").Where("COALESCE(h32_use()::text, '') = ''").Pluck("v", &vs).Error
		}},
		{"UpdateExpr", func(db *gorm.DB) error {
			return db.Table("h32_side").Where("id = 1").Update("v", gorm.Expr("COALESCE(h32_use()::text, '') || 'x'")).Error
		}},
		{"CreateExpr", func(db *gorm.DB) error {
			return db.Table("h32_side").Create(map[string]any{"id": 2, "v": gorm.Expr("COALESCE(h32_use()::text, '')")}).Error
		}},
		{"MarkedScan", func(db *gorm.DB) error {
			var s sql.NullString
			return db.Scopes(gormcache.Cacheable()).Raw("SELECT h32_use()::text FROM h31s_items WHERE id = 1").Scan(&s).Error
		}},
	}
	// Every body is called by Exec; every way of calling calls one body
	// (the cross product cost ~100 PostgreSQL environments and told no
	// more: how a body is judged does not depend on how it is called).
	for _, b := range bodies {
		for _, c := range calls {
			if c.name != "Exec" && b.name != "plpgsql-set_config" {
				continue
			}
			inEachMode(t, b.name+"/"+c.name, func(t *testing.T, inTx bool) {
				sessionProbe(t, func(e *env, path string) {
					h16Exec(t, e, "CREATE TABLE h32_side (id integer PRIMARY KEY, v text NOT NULL);\nINSERT INTO h32_side VALUES (1, 'x')")
					if b.callee != "" {
						must(t, e.db.Exec("CREATE FUNCTION h32_apply() RETURNS void LANGUAGE plpgsql AS $f$"+fmt.Sprintf(b.callee, path)+"$f$").Error)
						// A SQL-standard body between them: its source is not in prosrc.
						must(t, e.db.Exec("CREATE FUNCTION h32_middle() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT h32_apply(); END").Error)
					}
					body := b.body
					if strings.Contains(body, "%s") {
						body = fmt.Sprintf(body, path)
					}
					must(t, e.db.Exec("CREATE FUNCTION h32_use() RETURNS void LANGUAGE "+b.lang+" AS $f$"+body+"$f$").Error)
				}, func(db *gorm.DB, path string) (string, error) {
					return c.name, runMaybeInTx(db, inTx, c.run)
				})
			})
		}
	}
}

// A SQL-standard body (BEGIN ATOMIC ... END, RETURN expr; PostgreSQL 14
// and later) is kept in prosqlbody, and prosrc is empty: the function list
// read prosrc alone and never judged it. The function is made outside the
// plugin (a migration tool, psql: made through it, the CREATE text itself
// shows the set_config), then a DDL through the plugin has it read the
// list again. (Found by a hostile review of the change.)
func TestHostile32SQLStandardBody(t *testing.T) {
	t.Parallel() // environments of their own
	ddls := map[string]string{
		"begin-atomic": "CREATE FUNCTION h32_std() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT set_config('search_path', '%s', false); END",
		"return":       "CREATE FUNCTION h32_std() RETURNS text LANGUAGE sql RETURN set_config('search_path', '%s', false)",
	}
	for name, ddl := range ddls {
		inEachMode(t, name, func(t *testing.T, inTx bool) {
			sessionProbe(t, func(e *env, path string) {
				sqlDB, err := e.db.DB()
				must(t, err)
				_, err = sqlDB.Exec(fmt.Sprintf(ddl, path))
				must(t, err)
				must(t, e.db.Exec("CREATE FUNCTION h32_noop() RETURNS integer LANGUAGE sql AS 'SELECT 1'").Error)
			}, func(db *gorm.DB, path string) (string, error) {
				return ddl, runMaybeInTx(db, inTx, func(db *gorm.DB) error { return db.Exec("SELECT h32_std()").Error })
			})
		})
	}
}

// A trigger whose function changes the session of the connection whose
// write fires it: the write's text shows no call at all.
func TestHostile32TriggerChangesSession(t *testing.T) {
	t.Parallel() // environments of their own
	bodies := map[string]string{
		"set_config": "BEGIN PERFORM set_config('search_path', '%s', false); RETURN NEW; END",
		"SET":        "BEGIN SET search_path = %s; RETURN NEW; END",
		"calls":      "BEGIN PERFORM h32t_apply(); RETURN NEW; END",
	}
	writes := map[string]func(db *gorm.DB) error{
		"Exec":   func(db *gorm.DB) error { return db.Exec("INSERT INTO h32t_log (id) VALUES (1)").Error },
		"Create": func(db *gorm.DB) error { return db.Table("h32t_log").Create(map[string]any{"id": 1}).Error },
	}
	for name, body := range bodies {
		for write, run := range writes {
			inEachMode(t, name+"/"+write, func(t *testing.T, inTx bool) {
				sessionProbe(t, func(e *env, path string) {
					must(t, e.db.Exec("CREATE FUNCTION h32t_apply() RETURNS void LANGUAGE plpgsql AS $f$BEGIN SET search_path = "+path+"; END$f$").Error)
					b := body
					if strings.Contains(b, "%s") {
						b = fmt.Sprintf(b, path)
					}
					must(t, e.db.Exec("CREATE TABLE h32t_log (id integer PRIMARY KEY)").Error)
					must(t, e.db.Exec("CREATE FUNCTION h32t_fire() RETURNS trigger LANGUAGE plpgsql AS $f$"+b+"$f$").Error)
					must(t, e.db.Exec("CREATE TRIGGER h32t_trg AFTER INSERT ON h32t_log FOR EACH ROW EXECUTE FUNCTION h32t_fire()").Error)
				}, func(db *gorm.DB, path string) (string, error) {
					return write + " firing " + body, runMaybeInTx(db, inTx, run)
				})
			})
		}
	}
}

// A column default calling a function that changes the session: the
// INSERT's text shows no call.
func TestHostile32DefaultChangesSession(t *testing.T) {
	t.Parallel() // environments of their own
	writes := map[string]func(db *gorm.DB) error{
		"Exec":   func(db *gorm.DB) error { return db.Exec("INSERT INTO h32d_log (id) VALUES (1)").Error },
		"Create": func(db *gorm.DB) error { return db.Table("h32d_log").Create(map[string]any{"id": 1}).Error },
	}
	for write, run := range writes {
		inEachMode(t, write, func(t *testing.T, inTx bool) {
			sessionProbe(t, func(e *env, path string) {
				must(t, e.db.Exec("CREATE FUNCTION h32d_who() RETURNS text LANGUAGE plpgsql AS $f$BEGIN SET search_path = "+path+"; RETURN 'x'; END$f$").Error)
				must(t, e.db.Exec("CREATE TABLE h32d_log (id integer PRIMARY KEY, who text DEFAULT h32d_who())").Error)
			}, func(db *gorm.DB, path string) (string, error) {
				return write, runMaybeInTx(db, inTx, run)
			})
		})
	}
}

// The control for definitions: making a function whose SQL-standard body
// calls one that changes the session runs neither (its text lists the
// call, as a statement's would).
func TestHostile32DefiningACallerKeepsCaching(t *testing.T) {
	t.Parallel() // an environment of its own
	e := newEnv(t, databases[1], stores[0], querycache.Options{})
	h16Exec(t, e, `CREATE TABLE h32k_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h32k_items VALUES (1, 'one')`)
	must(t, e.db.Exec("CREATE FUNCTION h32k_set() RETURNS void LANGUAGE plpgsql AS $f$BEGIN SET search_path = pg_catalog; END$f$").Error)
	must(t, e.db.Exec("CREATE FUNCTION h32k_caller() RETURNS void LANGUAGE sql BEGIN ATOMIC SELECT h32k_set(); END").Error)
	keepsCaching(t, e, "h32k_items")
}

// The control for triggers: a body that mentions SET without changing the
// session (an UPDATE's SET list, set_config(..., true)) leaves caching on.
func TestHostile32TriggerWithoutSessionChangeKeepsCaching(t *testing.T) {
	t.Parallel() // an environment of its own
	e := newEnv(t, databases[1], stores[0], querycache.Options{})
	h16Exec(t, e, `CREATE TABLE h32tc_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h32tc_items VALUES (1, 'one');
CREATE TABLE h32tc_log (id integer PRIMARY KEY)`)
	must(t, e.db.Exec("CREATE FUNCTION h32tc_fire() RETURNS trigger LANGUAGE plpgsql AS $f$BEGIN UPDATE h32tc_items SET v = v WHERE id = 0; PERFORM set_config('app.who', 'x', true); RETURN NEW; END$f$").Error)
	must(t, e.db.Exec("CREATE TRIGGER h32tc_trg AFTER INSERT ON h32tc_log FOR EACH ROW EXECUTE FUNCTION h32tc_fire()").Error)
	must(t, e.db.Table("h32tc_log").Create(map[string]any{"id": 1}).Error)
	keepsCaching(t, e, "h32tc_items")
}

// The control: bodies that mention SET without changing the session (an
// UPDATE's SET list, SET LOCAL, set_config(..., true), a function's own
// SET clause) leave caching on: a cached read after the call is a hit.
func TestHostile32FunctionBodyWithoutSessionChangeKeepsCaching(t *testing.T) {
	t.Parallel() // environments of their own
	fns := map[string]string{
		"update-set":      "LANGUAGE plpgsql AS $f$BEGIN UPDATE h32c_items SET v = v WHERE id = 0; END$f$",
		"set-local":       "LANGUAGE plpgsql AS $f$BEGIN SET LOCAL statement_timeout = 0; END$f$",
		"set_config-true": "LANGUAGE plpgsql AS $f$BEGIN PERFORM set_config('search_path', 'x', true); END$f$",
		"set-clause":      "LANGUAGE sql SET search_path = pg_catalog AS $f$SELECT 1$f$",
		// A quote in a block comment opened a string literal that ran on
		// and was read as dynamic SQL (found by a hostile review).
		"block-comment-quote": "LANGUAGE plpgsql AS $f$BEGIN /* the tenant's /* nested */ path */ PERFORM set_config('app.tenant', 'x', true); END$f$",
		// A SQL-standard body with a SET clause in its header.
		"sql-standard-set-clause": "LANGUAGE sql SET search_path = pg_catalog RETURN 1",
	}
	calls := callPaths("h32c_fn")
	for name, fn := range fns {
		for call, run := range calls {
			for _, inTx := range []bool{false, true} {
				if call != "Exec" && name != "set_config-true" || inTx && call == "Exec" && name != "set_config-true" {
					continue // as above: each body by Exec, each call on one body
				}
				sub := name + "/" + call + "/autocommit"
				if inTx {
					sub = name + "/" + call + "/transaction"
				}
				t.Run(sub, func(t *testing.T) {
					t.Parallel()
					h32Control(t, name, fn, run, inTx)
				})
			}
		}
	}
}

func h32Control(t *testing.T, name, fn string, run func(db *gorm.DB) error, inTx bool) {
	e := newEnv(t, databases[1], stores[0], querycache.Options{})
	h16Exec(t, e, `CREATE TABLE h32c_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h32c_items VALUES (1, 'one')`)
	ret := "void"
	if strings.Contains(name, "set-clause") {
		ret = "integer"
	}
	// Made outside the plugin (through it, the CREATE text's own
	// set_config and comments are judged as a statement's), then a DDL
	// through it has it read the function list again.
	sqlDB, err := e.db.DB()
	must(t, err)
	_, err = sqlDB.Exec("CREATE FUNCTION h32c_fn() RETURNS " + ret + " " + fn)
	must(t, err)
	must(t, e.db.Exec("CREATE FUNCTION h32c_noop() RETURNS integer LANGUAGE sql AS 'SELECT 1'").Error)
	must(t, runMaybeInTx(e.db, inTx, run))
	keepsCaching(t, e, "h32c_items")
}

// keepsCaching fails unless a marked read of row 1 of table is a hit on
// its second run and nothing stopped caching for session state: the
// controls' check that a harmless body changed nothing.
func keepsCaching(t *testing.T, e *env, table string) {
	t.Helper()
	q := "SELECT v FROM " + table + " WHERE id = 1"
	e.mustBeCached(t, q, func() error {
		var v string
		return e.db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&v).Error
	})
	if n := e.cache.Stats().Bypasses["session_state"]; n != 0 {
		t.Errorf("caching stopped (%d session_state bypasses) by a statement that changes no session state", n)
	}
}

// inEachMode runs body as the parallel subtests name/autocommit and
// name/transaction, telling it which.
func inEachMode(t *testing.T, name string, body func(t *testing.T, inTx bool)) {
	for _, inTx := range []bool{false, true} {
		sub := name + "/autocommit"
		if inTx {
			sub = name + "/transaction"
		}
		t.Run(sub, func(t *testing.T) {
			t.Parallel()
			body(t, inTx)
		})
	}
}

// runMaybeInTx runs run on db, inside a db.Transaction that commits when
// inTx.
func runMaybeInTx(db *gorm.DB, inTx bool, run func(*gorm.DB) error) error {
	if inTx {
		return db.Transaction(func(tx *gorm.DB) error { return run(tx) })
	}
	return run(db)
}

// callPaths are the ways the session tests call fn(): Exec, Raw().Scan
// and Row().
func callPaths(fn string) map[string]func(db *gorm.DB) error {
	return map[string]func(db *gorm.DB) error{
		"Exec": func(db *gorm.DB) error { return db.Exec("SELECT " + fn + "()").Error },
		"Scan": func(db *gorm.DB) error {
			var s sql.NullString
			return db.Raw("SELECT " + fn + "()::text").Scan(&s).Error
		},
		"Row": func(db *gorm.DB) error {
			var s sql.NullString
			return db.Raw("SELECT " + fn + "()::text").Row().Scan(&s)
		},
	}
}
