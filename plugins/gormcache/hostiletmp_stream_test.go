package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
)

// Rows() on the pool of a statement whose hidden code creates a temporary
// table after its first rows were sent (PostgreSQL flushes rows as its
// output buffer fills, before the statement ends and commits): the look
// runs on another connection while the statement is still running.
func TestHostileTmpStreamedRowsLookTooEarly(t *testing.T) {
	db, _, _ := htOpen(t, 2,
		`CREATE TABLE ht_items (id int PRIMARY KEY, v int NOT NULL)`,
		`INSERT INTO ht_items VALUES (1, 7)`,
		`CREATE FUNCTION ht_mk(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN
			IF i = 400 THEN
				PERFORM pg_sleep(1);
				CREATE TEMP TABLE ht_items (id int PRIMARY KEY, v int NOT NULL);
				INSERT INTO ht_items VALUES (1, 100);
			END IF;
			RETURN i; END $$`)
	const q = "SELECT v FROM ht_items WHERE id = 1"
	rows, err := db.Raw("SELECT ht_mk(i), repeat('x', 500) FROM generate_series(1, 400) i").Rows()
	must(t, err)
	for rows.Next() {
	}
	must(t, rows.Close())
	// Each connection of the pool, the other held; the one that ran the
	// statement has the temporary table.
	must(t, db.Connection(func(c0 *gorm.DB) error {
		for _, d := range []*gorm.DB{db, c0.Session(&gorm.Session{})} {
			want, _ := htVal(t, d, false, q)
			htVal(t, d, true, q)
			if got, hit := htVal(t, d, true, q); got != want {
				t.Errorf("STALE: cached read %d (hit %v), the database on the same connection %d", got, hit, want)
			}
		}
		return nil
	}))
}
