package gormcache_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// HookedRow's AfterCreate refuses rows whose N is negative: GORM then rolls
// back the default transaction it wrapped the INSERT in.
type HookedRow struct {
	ID uint
	N  int
}

var errHookRefused = errors.New("hook refused the row")

func (h *HookedRow) AfterCreate(tx *gorm.DB) error {
	if h.N < 0 {
		return errHookRefused
	}
	return nil
}

// TestHostileSignalHookRollback: an INSERT that succeeded but whose
// AfterCreate hook failed is rolled back by GORM's default transaction:
// no row was written, so no Change may be delivered. A row that the hook
// accepts is delivered once.
func TestHostileSignalHookRollback(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		must(t, e.db.AutoMigrate(&HookedRow{}))
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()

		bad := HookedRow{N: -1}
		if err := e.db.Create(&bad).Error; !errors.Is(err, errHookRefused) {
			t.Fatalf("create with a failing hook: %v", err)
		}
		var n int64
		must(t, e.db.Model(&HookedRow{}).Count(&n).Error)
		if n != 0 {
			t.Fatalf("%d rows after the rolled-back create", n)
		}
		waitSignals(t, e)
		expectSignals(t, "create rolled back by its hook", rec.take(), nil)

		good := HookedRow{N: 1}
		must(t, e.db.Create(&good).Error)
		waitSignals(t, e)
		expectSignals(t, "create accepted by its hook", rec.take(), []sigWant{{"hooked_rows", gormcache.ChangeCreate, pks(good.ID)}})
	})
}

// TestHostileSignalCommitFails: on PostgreSQL a deferred unique constraint
// fails at COMMIT; the transaction's writes never happened and nothing may
// be delivered.
func TestHostileSignalCommitFails(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		if e.dialect != "postgres" {
			t.Skip("deferred constraints: PostgreSQL")
		}
		must(t, e.db.Exec("CREATE TABLE deferred_rows (id bigint PRIMARY KEY, k int, CONSTRAINT deferred_rows_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)").Error)
		must(t, e.db.Exec("INSERT INTO deferred_rows (id, k) VALUES (1, 1)").Error)
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		err := e.db.Transaction(func(tx *gorm.DB) error {
			return tx.Exec("INSERT INTO deferred_rows (id, k) VALUES (2, 1)").Error
		})
		if err == nil {
			t.Fatal("commit of a duplicate deferred key succeeded")
		}
		tx := e.db.Begin()
		must(t, tx.Exec("INSERT INTO deferred_rows (id, k) VALUES (3, 1)").Error)
		if err := tx.Commit().Error; err == nil {
			t.Fatal("commit of a duplicate deferred key succeeded")
		}
		waitSignals(t, e)
		expectSignals(t, "transactions whose COMMIT failed", rec.take(), nil)
	})
}
