package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// TestHostile45SignalSavepointNameReused: SQL lets a savepoint name be
// reused; ROLLBACK TO goes to the most recent one of that name. Writes
// made before the second SAVEPOINT of the name are not rolled back and
// must be delivered.
func TestHostile45SignalSavepointNameReused(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		create := func(db *gorm.DB, n int) uint {
			c := Counter{N: n}
			must(t, db.Create(&c).Error)
			return c.ID
		}
		var want []sigWant
		keep := func(id uint) { want = append(want, sigWant{"counters", gormcache.ChangeCreate, pks(id)}) }
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			must(t, tx.SavePoint("sp").Error)
			keep(create(tx, 1))
			must(t, tx.SavePoint("sp").Error)
			create(tx, 2) // rolled back to the second sp
			must(t, tx.RollbackTo("sp").Error)
			keep(create(tx, 3))
			return nil
		}))
		var n int64
		must(t, e.db.Model(&Counter{}).Count(&n).Error)
		if n != 2 {
			t.Fatalf("setup: %d rows committed, want 2", n)
		}
		waitSignals(t, e)
		expectSignals(t, "savepoint name reused", rec.take(), want)
	})
}

// TestHostile45SignalRawRollbackToSavepoint: a savepoint made and rolled
// back to with SQL text inside db.Transaction. The write rolled back must
// not be delivered (the kept ones must).
func TestHostile45SignalRawRollbackToSavepoint(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		var kept uint
		must(t, e.db.Transaction(func(tx *gorm.DB) error {
			c := Counter{N: 1}
			must(t, tx.Create(&c).Error)
			kept = c.ID
			must(t, tx.Exec("SAVEPOINT raw_sp").Error)
			must(t, tx.Create(&Counter{N: 2}).Error)
			must(t, tx.Exec("ROLLBACK TO SAVEPOINT raw_sp").Error)
			return nil
		}))
		var n int64
		must(t, e.db.Model(&Counter{}).Count(&n).Error)
		if n != 1 {
			t.Fatalf("setup: %d rows, want 1", n)
		}
		waitSignals(t, e)
		got := sigGot(rec.take())
		for _, g := range got {
			if g.kind == gormcache.ChangeCreate && len(g.pks) == 1 && g.pks[0] != pkOf(kept) {
				t.Fatalf("a create rolled back to a savepoint (SQL text) was delivered: %v", got)
			}
		}
		t.Logf("delivered %v", got)
	})
}
