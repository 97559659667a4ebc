package gormcache_test

import (
	"fmt"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BUG (wrong rows served, C5/C1): a session-level setting changed inside
// a PostgreSQL DO block. session.go noteSession stops caching for a
// statement the inspector marks SessionState (SET, set_config(...,
// false), ...), and inside a managed transaction marks the transaction
// for any statement it cannot classify (changesState errs towards yes).
// A DO block is such a statement (KindUnknown, Undetermined), but it is
// not SessionState, so noteSession does nothing outside a transaction,
// and inside one it only keeps that transaction's reads off the cache:
// the SET in the block outlives it (it is not LOCAL) on its connection,
// which then fills the cache with the other schema's rows for every
// connection. (temps.go already looks for temporary tables a DO block
// may have made; nothing looks at the settings it may have changed.)
//
// Order of events (a pool of two connections; Y held by db.Connection,
// so X is the pool's only free one):
//  1. <home>.h30d_items (1, 'home'), <tenant>.h30d_items (1, 'tenant').
//  2. On X: DO $$BEGIN SET search_path = <tenant>, <home>; END$$ (or
//     PERFORM set_config('search_path', ..., false)), auto-committed, or
//     in a db.Transaction that commits. X now reads <tenant>.h30d_items.
//  3. On the pool (X): a marked read of another shape (the table's facts),
//     then SELECT v FROM h30d_items WHERE id = 1, marked: 'tenant', stored.
//  4. On Y (the DSN's search_path): the same marked read.
//  5. Expected 'home' (an unmarked read on Y says so); served 'tenant'.
func TestHostile30DOBlockChangesSessionSetting(t *testing.T) {
	bodies := map[string]string{
		"SET":        "SET search_path = %s",
		"set_config": "PERFORM set_config('search_path', '%s', false)",
	}
	for name, body := range bodies {
		for _, inTx := range []bool{false, true} {
			sub := name + "/autocommit"
			if inTx {
				sub = name + "/transaction"
			}
			t.Run(sub, func(t *testing.T) {
				e := newEnv(t, databases[1], stores[0], querycache.Options{})
				home := h15Home(t, e)
				tenant := h15Schema(t, e, "h30d_tenant_")
				h16Exec(t, e, `CREATE TABLE h30d_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO h30d_items VALUES (1, 'home');
CREATE TABLE `+tenant+`.h30d_items (id integer PRIMARY KEY, v text NOT NULL);
INSERT INTO `+tenant+`.h30d_items VALUES (1, 'tenant')`)
				sqlDB, err := e.db.DB()
				must(t, err)
				sqlDB.SetMaxOpenConns(2)
				sqlDB.SetMaxIdleConns(2)
				do := "DO $$BEGIN " + fmt.Sprintf(body, tenant+", "+home) + "; END$$"
				const q = "SELECT v FROM h30d_items WHERE id = 1"
				must(t, e.db.Connection(func(conn *gorm.DB) error {
					y := conn.Session(&gorm.Session{})
					if inTx {
						must(t, e.db.Transaction(func(tx *gorm.DB) error { return tx.Exec(do).Error }))
					} else {
						must(t, e.db.Exec(do).Error)
					}
					h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT count(*) FROM h30d_items")
					onX := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
					if onX != "tenant" {
						t.Fatalf("X read %q after the DO block: the probe proves nothing", onX)
					}
					want := h16Scalar(t, y.Scopes(gormcache.NoCache()), q)
					if want != "home" {
						t.Fatalf("Y read %q", want)
					}
					if got := h16Scalar(t, y.Scopes(gormcache.Cacheable()), q); got != want {
						t.Errorf("WRONG ROWS: %q on Y served %q from the cache; the database gives Y %q (the other schema's row, filled on the connection whose search_path %q changed)", q, got, want, do)
					}
					return nil
				}))
			})
		}
	}
}
