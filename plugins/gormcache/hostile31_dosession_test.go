package gormcache_test

import (
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h31SessionProbe is TestHostile30DOBlockChangesSessionSetting's probe for
// one statement: setup (with %[1]s the new search_path) runs through the
// plugin, then stmt (same placeholder) on connection X; a read filled on X
// must not be served on Y, whose search_path is the DSN's.
func h31SessionProbe(t *testing.T, setup, stmt string) {
	t.Helper()
	sessionProbe(t, func(e *env, path string) {
		if setup != "" {
			must(t, e.db.Exec(fmt.Sprintf(setup, path)).Error)
		}
	}, func(db *gorm.DB, path string) (string, error) {
		s := stmt
		if strings.Contains(s, "%") {
			s = fmt.Sprintf(s, path)
		}
		return s, db.Exec(s).Error
	})
}

// sessionProbe is h31SessionProbe's probe with code: setup(e, path) runs
// first (through the plugin, path the search_path to switch to), then
// run(db, path) on connection X, which must switch X's search_path to path
// and returns what it ran, for the message; a read filled on X must not
// be served on Y, whose search_path is the DSN's.
func sessionProbe(t *testing.T, setup func(e *env, path string), run func(db *gorm.DB, path string) (string, error)) {
	t.Helper()
	sessionProbeOpt(t, true, setup, run)
}

// sessionProbeOpt is sessionProbe; precheck false skips the check that
// caching is on after the setup, for a setup after which no read is cached
// by design.
func sessionProbeOpt(t *testing.T, precheck bool, setup func(e *env, path string), run func(db *gorm.DB, path string) (string, error)) {
	t.Helper()
	e := newEnv(t, h31Postgres(t), stores[0], querycache.Options{})
	home := h15Home(t, e)
	tenant := h15Schema(t, e, "h31s_tenant_")
	h16Exec(t, e, `CREATE TABLE h31s_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h31s_items VALUES (1, 'home');
CREATE TABLE `+tenant+`.h31s_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO `+tenant+`.h31s_items VALUES (1, 'tenant')`)
	path := tenant + ", " + home
	setup(e, path)
	// Caching is still on: a setup that stopped it would make the probe
	// pass whatever the statement does.
	if precheck {
		e.mustBeCached(t, "a read after the setup", func() error {
			var n int64
			return e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM h31s_items WHERE id > 0").Scan(&n).Error
		})
	}
	sqlDB, err := e.db.DB()
	must(t, err)
	sqlDB.SetMaxOpenConns(2)
	sqlDB.SetMaxIdleConns(2)
	const q = "SELECT v FROM h31s_items WHERE id = 1"
	must(t, e.db.Connection(func(conn *gorm.DB) error {
		y := conn.Session(&gorm.Session{})
		stmt, err := run(e.db, path)
		must(t, err)
		h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT count(*) FROM h31s_items")
		onX := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
		if onX != "tenant" {
			t.Fatalf("X read %q after the statement: the probe proves nothing", onX)
		}
		want := h16Scalar(t, y.Scopes(gormcache.NoCache()), q)
		if want != "home" {
			t.Fatalf("Y read %q", want)
		}
		if got := h16Scalar(t, y.Scopes(gormcache.Cacheable()), q); got != want {
			t.Errorf("WRONG ROWS: %q on Y served %q from the cache; the database gives Y %q (filled on the connection whose search_path the statement changed: %s)", q, got, want, stmt)
		}
		return nil
	}))
}

// DO blocks whose session change doSession / doChangesSession
// (session.go, dosession.go) does not see.
func TestHostile31DOBlockSessionChangeHidden(t *testing.T) {
	for name, stmt := range map[string]string{
		// doSession asks whether the text begins with DO, after spaces
		// only: a comment before it (a migration file's header) or an
		// earlier statement in the same text hides the whole block.
		"leading line comment":  "-- 0042_tenant.sql\nDO $$BEGIN SET search_path = %s; END$$",
		"leading block comment": "/* tenant */ DO $$BEGIN SET search_path = %s; END$$",
		"after a statement":     "SELECT 1; DO $$BEGIN SET search_path = %s; END$$",
		// stringLiterals reads E'\'' as a doubled quote (no backslash
		// escapes), so the literals after it pair up wrongly and the
		// EXECUTE text is never inspected; lexSQL skips literals.
		"E-string before EXECUTE": `DO $$BEGIN PERFORM E'\''; EXECUTE 'SET search_path = %s'; PERFORM E'\''; END$$`,
		// A quoted identifier is a name token, not the word SET_CONFIG.
		"quoted set_config": `DO $$BEGIN PERFORM "set_config"('search_path', '%s', false); END$$`,
	} {
		t.Run(name, func(t *testing.T) { h31SessionProbe(t, "", stmt) })
	}
}

// A procedure or function whose body sets the session's search_path.
func TestHostile31RoutineBodySessionChange(t *testing.T) {
	// Fixed: a routine's body is read for session changes as a DO block's
	// is (fnSessionSetter; TestHostile32FunctionBodyChangesSession).
	t.Run("CALL", func(t *testing.T) {
		h31SessionProbe(t, "CREATE PROCEDURE h31s_p() LANGUAGE plpgsql AS $p$ BEGIN SET search_path = %s; END $p$", "CALL h31s_p()")
	})
	t.Run("SELECT f()", func(t *testing.T) {
		h31SessionProbe(t, "CREATE FUNCTION h31s_f() RETURNS void LANGUAGE plpgsql AS $p$ BEGIN PERFORM set_config('search_path', '%s', false); END $p$", "SELECT h31s_f()")
	})
}

// ALTER DATABASE|ROLE ... SET sent as a statement of a DO block's body:
// sqlinspect calls it session state when sent alone
// (TestHostile30AlterDatabaseSetDefaults), but doChangesSession judges a
// body statement only when it begins with SET or RESET (a SET after
// another word is "ALTER ... SET DEFAULT"): the block is not seen.
//
// Order of events (a scratch database; connection A held by
// db.Connection, the pool keeps no idle connection), as in
// TestHostile30AlterDatabaseSetDefaults:
//  1. public.h31a_items (1, 'public'), tenant.h31a_items (1, 'tenant').
//  2. db.Exec(DO $$BEGIN ALTER DATABASE <db> SET search_path = tenant,
//     public; END$$) (or ALTER ROLE CURRENT_USER IN DATABASE <db>).
//  3. A marked read of another shape on the pool (facts learned).
//  4. On A (opened before): the marked read of row 1: 'public', stored.
//  5. On the pool (a new connection): the same marked read.
//  6. Expected 'tenant'; served 'public'.
func TestHostile31AlterSetInsideDOBlock(t *testing.T) {
	for _, alter := range []string{"database", "role"} {
		t.Run(alter, func(t *testing.T) {
			t.Parallel()
			dsn := h16Database(t)
			e := h16Env(t, dsn)
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxIdleConns(0)
			h16Exec(t, e, `CREATE SCHEMA tenant;
CREATE TABLE public.h31a_items (id integer PRIMARY KEY, v text NOT NULL);
CREATE TABLE tenant.h31a_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO public.h31a_items VALUES (1, 'public');
INSERT INTO tenant.h31a_items VALUES (1, 'tenant')`)
			const q = "SELECT v FROM h31a_items WHERE id = 1"
			alterStmt := "ALTER DATABASE " + h16DBName(dsn) + " SET search_path = tenant, public"
			if alter == "role" {
				alterStmt = "ALTER ROLE CURRENT_USER IN DATABASE " + h16DBName(dsn) + " SET search_path = tenant, public"
				t.Cleanup(func() {
					_ = e.db.Exec("ALTER ROLE CURRENT_USER IN DATABASE " + h16DBName(dsn) + " RESET search_path").Error
				})
			}
			stmt := "DO $$BEGIN " + alterStmt + "; END$$"
			must(t, e.db.Connection(func(conn *gorm.DB) error {
				a := conn.Session(&gorm.Session{})
				must(t, e.db.Exec(stmt).Error)
				h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT count(*) FROM h31a_items")
				if onA := h16Scalar(t, a.Scopes(gormcache.Cacheable()), q); onA != "public" {
					t.Fatalf("A read %q: the probe proves nothing", onA)
				}
				want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
				if want != "tenant" {
					t.Fatalf("a new connection read %q: the ALTER did not take", want)
				}
				if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != want {
					t.Errorf("STALE: %q on a new connection served %q from the cache; the database gives it %q (%s)", q, got, want, stmt)
				}
				return nil
			}))
		})
	}
}
