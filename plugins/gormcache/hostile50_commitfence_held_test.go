package gormcache_test

import (
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile50CommitFenceServerErrorLifts (held): a COMMIT that fails
// with a server error (a deferred constraint trigger raising at commit:
// the transaction certainly rolled back) fences the table it wrote
// (connpool.go endApplied); with no other transaction running the fence
// lifts within a few sweeps, the database's rows are served, and the
// table is cached again.
func TestHostile50CommitFenceServerErrorLifts(t *testing.T) {
	e := newEnv(t, h14Postgres(t), memoryStore, querycache.Options{DefaultTTL: time.Hour})
	sqlDB, err := e.db.DB()
	must(t, err)
	for id := uint(1); id <= 2; id++ {
		must(t, e.db.Create(&Counter{ID: id}).Error)
	}
	_, err = sqlDB.Exec(`CREATE FUNCTION h50_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'h50 refused at commit'; END $$`)
	must(t, err)
	_, err = sqlDB.Exec(`CREATE CONSTRAINT TRIGGER h50_fail AFTER UPDATE ON counters DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION h50_fail_commit()`)
	must(t, err)
	e.mustBeCached(t, "First(counter 2)", func() error {
		var c Counter
		return e.db.Scopes(gormcache.Cacheable()).First(&c, 2).Error
	})
	tx := e.db.Begin()
	must(t, tx.Model(&Counter{ID: 2}).Update("n", 9).Error)
	if err := tx.Commit().Error; err == nil {
		t.Fatal("the commit succeeded")
	}
	h43CounterAgree(t, e.db, "after the failed commit", []uint{1, 2})
	read := func() error {
		var c Counter
		return e.db.Scopes(gormcache.Cacheable()).First(&c, 2).Error
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		must(t, read())
		if e.statements(func() { must(t, read()) }) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("counters still not cached 3 s after a COMMIT that failed with a server error")
		}
		time.Sleep(50 * time.Millisecond)
	}
	h43CounterAgree(t, e.db, "after the fence lifted", []uint{1, 2})
}
