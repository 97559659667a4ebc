package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// Hostile review, session 30: settings every connection starts with,
// changed through the plugin by ALTER DATABASE ... SET / ALTER ROLE ...
// SET. The plugin reads the connection settings it puts in every key
// (settings.go settingsQuery: TimeZone, search_path, role, ...) once, at
// db.Use, and never again. ALTER DATABASE d SET search_path (a committed
// catalog write, sent through the plugin's own db.Exec) changes what
// every new connection resolves an unqualified name to; the inspector
// reads it as undetermined DDL: everything is invalidated once, caching
// goes on, the key keeps the old settings. A connection opened before the
// ALTER still reads the old table and fills the cache; every connection
// opened after it is served those rows.
//
// Order of events (a scratch database; one connection A held open by
// db.Connection, the pool keeps no idle connection):
//  1. public.h30s_items (1, 'public') and tenant.h30s_items (1, 'tenant').
//  2. db.Exec(ALTER DATABASE <db> SET search_path = tenant, public): it
//     commits; every new connection now reads tenant.h30s_items.
//  3. A marked read of another shape on the pool (the table's facts are
//     learned again: a db.Connection's statements do not read the catalog).
//  4. On A (opened before): SELECT v FROM h30s_items WHERE id = 1, marked
//     cacheable: 'public' (right for A), stored.
//  5. On the pool (a new connection): the same marked read.
//  6. Expected 'tenant', what the database gives that connection (an
//     unmarked read right before says so); served 'public' from the cache.
//
// Variants: ALTER ROLE CURRENT_USER IN DATABASE d SET search_path (same
// order of events), and ALTER DATABASE d SET TimeZone (the migration that
// pins a database's time zone): CAST(at AS text) of a timestamptz, cached
// as '2024-01-01 00:00:00+00' by A, is served to a new connection whose
// database answer is '2024-01-01 09:00:00+09'.
//
// In production A is any connection idle in the pool at the ALTER: those
// fill, the ones opened later are served, until a write of the table.
func TestHostile30AlterDatabaseSetDefaults(t *testing.T) {
	for _, alter := range []string{"database", "role", "database timezone"} {
		t.Run(alter, func(t *testing.T) {
			t.Parallel() // each in a scratch database of its own
			dsn := h16Database(t)
			e := h16Env(t, dsn)
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxIdleConns(0) // every pool statement on a new connection
			h16Exec(t, e, `CREATE SCHEMA tenant;
CREATE TABLE public.h30s_items (id integer PRIMARY KEY, v text NOT NULL);
CREATE TABLE tenant.h30s_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO public.h30s_items VALUES (1, 'public');
INSERT INTO tenant.h30s_items VALUES (1, 'tenant');
CREATE TABLE public.h30s_events (id integer PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO public.h30s_events VALUES (1, '2024-01-01 00:00:00+00')`)
			q := "SELECT v FROM h30s_items WHERE id = 1"
			prime := "SELECT count(*) FROM h30s_items"
			oldV, newV := "public", "tenant"
			stmt := "ALTER DATABASE " + h16DBName(dsn) + " SET search_path = tenant, public"
			switch alter {
			case "database timezone":
				// The migration that pins the database's time zone: a
				// timestamptz rendered as text follows the connection's.
				h16Exec(t, e, "ALTER DATABASE "+h16DBName(dsn)+" SET TimeZone = 'UTC'")
				q, prime = "SELECT CAST(at AS text) FROM h30s_events WHERE id = 1", "SELECT count(*) FROM h30s_events"
				oldV, newV = "2024-01-01 00:00:00+00", "2024-01-01 09:00:00+09"
				stmt = "ALTER DATABASE " + h16DBName(dsn) + " SET TimeZone = 'Asia/Tokyo'"
			case "role":
				// Scoped to the scratch database: the role is shared.
				stmt = "ALTER ROLE CURRENT_USER IN DATABASE " + h16DBName(dsn) + " SET search_path = tenant, public"
			}
			must(t, e.db.Connection(func(conn *gorm.DB) error {
				a := conn.Session(&gorm.Session{})
				must(t, e.db.Exec(stmt).Error)
				if alter == "role" {
					t.Cleanup(func() {
						_ = e.db.Exec("ALTER ROLE CURRENT_USER IN DATABASE " + h16DBName(dsn) + " RESET search_path").Error
					})
				}
				// The DDL made the plugin forget the table's facts, and a
				// db.Connection's statement does not read the catalog: a
				// read of another shape on the pool learns them.
				h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), prime)
				onA := h16Scalar(t, a.Scopes(gormcache.Cacheable()), q)
				if onA != oldV {
					t.Fatalf("A read %q: the probe proves nothing", onA)
				}
				want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
				if want != newV {
					t.Fatalf("a new connection read %q: the ALTER did not take", want)
				}
				if got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q); got != want {
					t.Errorf("STALE: %q on a new connection served %q from the cache; the database gives that connection %q (%s committed before; the key still carries the settings read at db.Use)", q, got, want, stmt)
				}
				return nil
			}))
		})
	}
}
