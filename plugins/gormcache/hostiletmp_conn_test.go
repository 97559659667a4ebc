package gormcache_test

import (
	"testing"
	"time"

	"gorm.io/gorm"
)

// db.Connection, hidden code (a call of a PL/pgSQL function that may
// write) read through Rows() or Row(): the statement never returns.
func TestHostileTmpConnRowsHang(t *testing.T) {
	for _, how := range []string{"Rows", "Row"} {
		t.Run(how, func(t *testing.T) {
			db, _, _ := htOpen(t, 0,
				`CREATE FUNCTION ht_fn() RETURNS int LANGUAGE plpgsql AS $$ BEGIN CREATE TEMP TABLE IF NOT EXISTS ht_scratch (id int); RETURN 1; END $$`)
			done := make(chan error, 1)
			go func() {
				done <- db.Connection(func(c *gorm.DB) error {
					if how == "Row" {
						var n int
						return c.Raw("SELECT ht_fn()").Row().Scan(&n)
					}
					rows, err := c.Raw("SELECT ht_fn()").Rows()
					if err != nil {
						return err
					}
					for rows.Next() {
					}
					return rows.Close()
				})
			}()
			select {
			case err := <-done:
				must(t, err)
			case <-time.After(15 * time.Second):
				t.Fatalf("db.Connection + %s() of SELECT ht_fn() has not returned after 15 s", how)
			}
		})
	}
}

// A transaction on db.Connection (a raw *sql.Tx for the plugin) on a pool
// of one: hidden code in it, then a read on the held connection.
func TestHostileTmpConnTxPoolOfOne(t *testing.T) {
	db, _, cache := htOpen(t, 1,
		`CREATE TABLE ht_items (id int PRIMARY KEY, v int NOT NULL)`,
		`INSERT INTO ht_items VALUES (1, 7)`)
	start := time.Now()
	must(t, db.Connection(func(c *gorm.DB) error {
		if err := c.Transaction(func(tx *gorm.DB) error {
			return tx.Exec(`DO $$ BEGIN CREATE TEMP TABLE IF NOT EXISTS ht_scratch (id int); END $$`).Error
		}); err != nil {
			return err
		}
		htVal(t, c, true, "SELECT v FROM ht_items WHERE id = 1")
		return nil
	}))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	q := "SELECT v FROM ht_items WHERE id = 1"
	deadline := time.Now().Add(10 * time.Second)
	for {
		htVal(t, db, true, q)
		if _, hit := htVal(t, db, true, q); hit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hit 10 s after: caching stopped; bypasses %v", cache.Stats().Bypasses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
