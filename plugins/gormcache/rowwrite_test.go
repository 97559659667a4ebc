package gormcache_test

import (
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// rwItem is the model of the row-write plan's tests.
type rwItem struct {
	ID uint `gorm:"primaryKey"`
	V  int
}

func (rwItem) TableName() string { return "rw_items" }

// A GORM update of one row by its key, of a text written before, reuses
// the verdict the plugin reached on that text (rowWritePlan): one row of a
// table nothing depends on. Each test makes something depend on the table
// after the verdict, in a way the verdict's checks must see, then probes a
// cached read of what the dependency writes.
//
// Order of events, in each:
//  1. rw_items (id 1, v 0), rw_log (id 1, n 0).
//  2. Model(&rwItem{}).Where("id = ?", 1).Update("v", ...), twice: the
//     verdict is reached and remembered.
//  3. A trigger on rw_items that bumps rw_log's n appears: by another
//     program, learned when the facts age ("other"); as a temporary
//     trigger through the plugin ("temp"); inside the transaction of the
//     write itself ("tx").
//  4. rw_log's n is cached; the same write (in "tx", in that transaction).
//  5. Expected: the read gives the new n.
func TestRowWritePlanFollowsDependents(t *testing.T) {
	const trigger = `CREATE %sTRIGGER rw_trg AFTER UPDATE ON rw_items BEGIN UPDATE rw_log SET n = n + 1 WHERE id = 1; END`
	for _, how := range []string{"other", "temp", "tx"} {
		t.Run(how, func(t *testing.T) {
			e := sqliteWriterEnv(t, "rw_unused", "rw_log")
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(1) // a temporary trigger is its connection's
			h16Exec(t, e, `CREATE TABLE rw_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE rw_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO rw_items VALUES (1, 0);
INSERT INTO rw_log VALUES (1, 0)`)
			v := 0
			write := func(db *gorm.DB) error {
				v++
				return db.Model(&rwItem{}).Where("id = ?", 1).Update("v", v).Error
			}
			for range 2 {
				must(t, write(e.db))
			}
			if !gormcache.RowWritePlannedForTest(e.plugin, e.db.Session(&gorm.Session{DryRun: true}).Model(&rwItem{}).Where("id = ?", 1).Update("v", 1).Statement.SQL.String()) {
				t.Fatal("no verdict remembered for the write: the test tests nothing")
			}
			switch how {
			case "other":
				_, err := sqlDB.Exec(fmtTrigger(trigger, ""))
				must(t, err)
				gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Nanosecond)
				time.Sleep(time.Millisecond)
				h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT count(*) FROM rw_items")
				gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Hour)
			case "temp":
				h16Exec(t, e, fmtTrigger(trigger, "TEMP "))
			case "tx":
				h16Probe(t, e, "SELECT n FROM rw_log WHERE id = 1", func() error {
					return e.db.Transaction(func(tx *gorm.DB) error {
						if err := tx.Exec(fmtTrigger(trigger, "")).Error; err != nil {
							return err
						}
						return write(tx)
					})
				})
				return
			}
			h16Probe(t, e, "SELECT n FROM rw_log WHERE id = 1", func() error { return write(e.db) })
		})
	}
}

func fmtTrigger(format, temp string) string {
	return strings.Replace(format, "%s", temp, 1)
}

// TestRowWritePlanInTextTransaction: inside a transaction opened by SQL
// text, a write is invalidated, and delivered, in bulk (writeChange), a
// write whose text has a remembered verdict too.
func TestRowWritePlanInTextTransaction(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		c := Counter{N: 1}
		must(t, e.db.Create(&c).Error)
		update := func(db *gorm.DB, n int) error {
			return db.Model(&Counter{}).Where("id = ?", c.ID).Update("n", n).Error
		}
		must(t, update(e.db, 2))
		must(t, update(e.db, 3))
		rec := &sigRec{}
		defer e.plugin.OnChange(rec.fn)()
		must(t, e.db.Connection(func(db *gorm.DB) error {
			must(t, db.Exec("BEGIN").Error)
			db = db.Session(&gorm.Session{SkipDefaultTransaction: true})
			must(t, update(db, 4))
			return db.Exec("COMMIT").Error
		}))
		waitSignals(t, e)
		expectSignals(t, "an update by key inside BEGIN ... COMMIT", rec.take(), []sigWant{{"counters", gormcache.ChangeUpdate, nil}})
	})
}
