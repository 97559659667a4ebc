package gormcache_test

import (
	"fmt"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// PostgreSQL: a temporary table created by a DO block or by a function
// (EXECUTE inside plpgsql): not seen as CREATE TEMP, it shadows the
// permanent table on its connection. Same order of events as
// TestHostile29TempRenamedShadows.
func TestHostile29PostgresTempFromDOShadows(t *testing.T) {
	for name, create := range map[string][]string{
		"do": {`DO $$BEGIN CREATE TEMP TABLE h29d_items (id integer PRIMARY KEY, v integer NOT NULL); INSERT INTO h29d_items VALUES (1, 100); END$$`},
		"function": {
			`CREATE FUNCTION h29d_mk() RETURNS void LANGUAGE plpgsql AS $$BEGIN CREATE TEMP TABLE h29d_items (id integer PRIMARY KEY, v integer NOT NULL); INSERT INTO h29d_items VALUES (1, 100); END$$`,
			`SELECT h29d_mk()`,
		},
	} {
		for _, inTx := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/transaction=%v", name, inTx), func(t *testing.T) {
				e := newEnv(t, databases[1], stores[0], querycache.Options{})
				h16Exec(t, e, `CREATE TABLE h29d_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h29d_items VALUES (1, 0)`)
				const q = "SELECT v FROM h29d_items WHERE id = 1"
				err := e.db.Connection(func(conn *gorm.DB) error {
					tx := conn.Session(&gorm.Session{})
					exec := func(db *gorm.DB) error {
						for _, s := range create {
							if err := db.Exec(s).Error; err != nil {
								return err
							}
						}
						return nil
					}
					if inTx {
						// In a transaction the plugin began: the temporary
						// table is visible to other connections from its commit.
						if err := tx.Transaction(func(t2 *gorm.DB) error { return exec(t2) }); err != nil {
							return err
						}
					} else if err := exec(tx); err != nil {
						return err
					}
					must(t, e.db.Exec("UPDATE h29d_items SET v = 5 WHERE id = 1").Error)
					onA := h16Scalar(t, tx.Scopes(gormcache.Cacheable()), q)
					t.Logf("on A (the temporary table): %s", onA)
					want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
					got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
					if got != want {
						t.Errorf("STALE: %q served %s from the cache; the database holds %s (written and committed before)", q, got, want)
					}
					return nil
				})
				must(t, err)
			})
		}
	}
}

// On a pool of one connection, held by db.Connection, the look for
// temporary tables after a DO block runs on that connection: on the pool
// it waited for the held connection until it timed out, and caching
// stopped for the database.
func TestHostile29PostgresTempLookOnHeldConnection(t *testing.T) {
	e := newEnv(t, databases[1], stores[0], querycache.Options{})
	h16Exec(t, e, `CREATE TABLE h29h_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h29h_items VALUES (1, 0)`)
	sqlDB, err := e.db.DB()
	must(t, err)
	sqlDB.SetMaxOpenConns(1)
	err = e.db.Connection(func(conn *gorm.DB) error {
		tx := conn.Session(&gorm.Session{})
		return tx.Exec(`DO $$BEGIN CREATE TEMP TABLE h29h_x (id integer); END$$`).Error
	})
	must(t, err)
	e.mustBeCached(t, "a read after the look", func() error {
		var n int
		return e.db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) FROM h29h_items").Scan(&n).Error
	})
}
