package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
)

// A DO block makes a temporary table no permanent one shadows yet; the
// application then creates the permanent table of that name.
func TestHostileTmpPermanentCreatedLater(t *testing.T) {
	db, _, _ := htOpen(t, 2)
	const q = "SELECT v FROM ht_items WHERE id = 1"
	must(t, db.Connection(func(c0 *gorm.DB) error {
		a := c0.Session(&gorm.Session{})
		must(t, a.Exec(`DO $$ BEGIN CREATE TEMP TABLE ht_items (id int PRIMARY KEY, v int NOT NULL); INSERT INTO ht_items VALUES (1, 100); END $$`).Error)
		// The other connection, B.
		must(t, db.Exec(`CREATE TABLE ht_items (id int PRIMARY KEY, v int NOT NULL)`).Error)
		must(t, db.Exec(`INSERT INTO ht_items VALUES (1, 7)`).Error)
		htVal(t, db, true, q)
		for name, d := range map[string]*gorm.DB{"A": a, "B": db} {
			want, _ := htVal(t, d, false, q)
			got, hit := htVal(t, d, true, q)
			if got != want {
				t.Errorf("STALE on %s: cached %d (hit %v); the database on that connection %d", name, got, hit, want)
			}
		}
		return nil
	}))
}

// In db.Transaction: hidden code makes a temporary table shadowing a
// cached one, then the transaction reads it.
func TestHostileTmpInManagedTx(t *testing.T) {
	for name, hidden := range map[string]string{
		"do":        `DO $$ BEGIN CREATE TEMP TABLE ht_items (id int PRIMARY KEY, v int NOT NULL); INSERT INTO ht_items VALUES (1, 100); END $$`,
		"function":  `SELECT ht_mk()`,
		"procedure": `CALL ht_proc()`,
		"ondrop":    `DO $$ BEGIN CREATE TEMP TABLE ht_items (id int PRIMARY KEY, v int NOT NULL) ON COMMIT DROP; INSERT INTO ht_items VALUES (1, 100); END $$`,
		"execute":   `SELECT ht_dyn('ht_items')`,
	} {
		t.Run(name, func(t *testing.T) {
			db, _, _ := htOpen(t, 3,
				`CREATE TABLE ht_items (id int PRIMARY KEY, v int NOT NULL)`,
				`INSERT INTO ht_items VALUES (1, 7)`,
				`CREATE FUNCTION ht_mk() RETURNS int LANGUAGE plpgsql AS $$ BEGIN CREATE TEMP TABLE ht_items (id int PRIMARY KEY, v int NOT NULL); INSERT INTO ht_items VALUES (1, 100); RETURN 1; END $$`,
				`CREATE PROCEDURE ht_proc() LANGUAGE plpgsql AS $$ BEGIN CREATE TEMP TABLE ht_items (id int PRIMARY KEY, v int NOT NULL); INSERT INTO ht_items VALUES (1, 100); END $$`,
				`CREATE FUNCTION ht_dyn(n text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('CREATE TEMP TABLE %I (id int PRIMARY KEY, v int NOT NULL)', n); EXECUTE format('INSERT INTO %I VALUES (1, 100)', n); RETURN 1; END $$`)
			const q = "SELECT v FROM ht_items WHERE id = 1"
			htVal(t, db, true, q)
			must(t, db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Exec(hidden).Error)
				want, _ := htVal(t, tx, false, q)
				got, hit := htVal(t, tx, true, q)
				if got != want {
					t.Errorf("STALE in tx: cached %d (hit %v); the database %d", got, hit, want)
				}
				return nil
			}))
			// After the commit, every connection.
			must(t, db.Connection(func(c0 *gorm.DB) error {
				for i := 0; i < 3; i++ {
					d := db
					if i == 0 {
						d = c0.Session(&gorm.Session{})
					}
					want, _ := htVal(t, d, false, q)
					htVal(t, d, true, q)
					got, hit := htVal(t, d, true, q)
					if got != want {
						t.Errorf("STALE after commit (%d): cached %d (hit %v); the database %d", i, got, hit, want)
					}
				}
				return nil
			}))
		})
	}
}
