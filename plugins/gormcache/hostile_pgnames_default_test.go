package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
)

// BUG: a column DEFAULT may call a function that writes another table
// (the usual gapless-number pattern: DEFAULT next_invoice_no(), which
// updates a counters table). The plugin follows foreign-key actions,
// triggers, rules, partitions and view bases (dependents.go), but not
// defaults, and the INSERT's SQL names only the table it inserts into.
// README ("What the database does by itself", "Every GORM write path is
// covered") does not list defaults as a limit.
//
// Order of events: (1) SELECT n FROM pgn_counters is filled and hit;
// (2) a GORM Create (or db.Exec INSERT) into pgn_invoices commits; the
// default pgn_next_no() updated pgn_counters; only pgn_invoices is
// invalidated; (3) the counter read is served from the cache, old.
func TestHostilePgnColumnDefaultWrites(t *testing.T) {
	setup := `CREATE TABLE pgn_counters (n integer);
INSERT INTO pgn_counters VALUES (0);
CREATE FUNCTION pgn_next_no() RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE pgn_counters SET n = n + 1 RETURNING n';
CREATE TABLE pgn_invoices (id serial PRIMARY KEY, no integer DEFAULT pgn_next_no(), note text)`
	t.Run("gorm_create", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, setup)
		w.mustNotBeStale(t, pgnScalar("SELECT n FROM pgn_counters"), func(db *gorm.DB) error {
			return db.Omit("No").Create(&PgnInvoice{Note: "x"}).Error
		})
	})
	t.Run("exec_insert", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, setup)
		w.mustNotBeStale(t, pgnScalar("SELECT n FROM pgn_counters"), pgnExec("INSERT INTO pgn_invoices (note) VALUES ('y')"))
	})
}

// PgnInvoice is a row of pgn_invoices; No is filled by the column default.
type PgnInvoice struct {
	ID   int `gorm:"primaryKey"`
	No   int
	Note string
}

func (PgnInvoice) TableName() string { return "pgn_invoices" }
