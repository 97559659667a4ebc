package gormcache_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
)

// H14Fail's AfterCreate/AfterUpdate fail when Fail is set: the write
// statement has run; GORM's default transaction (if any) rolls it back.
type H14Fail struct {
	ID   uint
	Name string
	Fail bool `gorm:"-"`
}

var errH14Hook = errors.New("h14: hook failed")

func (f *H14Fail) AfterCreate(*gorm.DB) error {
	if f.Fail {
		return errH14Hook
	}
	return nil
}

func (f *H14Fail) AfterUpdate(*gorm.DB) error {
	if f.Fail {
		return errH14Hook
	}
	return nil
}

// h14Names is every row of h14_fails as "id:name", read through the
// cache (marked) or not.
func h14Names(t *testing.T, db *gorm.DB, cached bool) string {
	t.Helper()
	var rows []H14Fail
	q := db.Session(&gorm.Session{})
	if cached {
		q = q.Scopes(gormcache.Cacheable())
	} else {
		q = q.Scopes(gormcache.NoCache())
	}
	must(t, q.Order("id").Find(&rows).Error)
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%d:%s ", r.ID, r.Name)
	}
	return b.String()
}

func h14One(db *gorm.DB, id uint) string {
	var f H14Fail
	if err := db.Scopes(gormcache.Cacheable()).First(&f, id).Error; err != nil {
		return "<" + err.Error() + ">"
	}
	return f.Name
}

func h14OneDB(t *testing.T, db *gorm.DB, id uint) string {
	t.Helper()
	var f H14Fail
	if err := db.Scopes(gormcache.NoCache()).First(&f, id).Error; err != nil {
		return "<" + err.Error() + ">"
	}
	return f.Name
}

// PASSES (kept): error paths around the write's new position (right after
// GORM's statement) and GORM paths that turn one call into several
// statements. Each case caches a list of the table and lookups by key,
// runs the operation (errors expected in some), and compares what the
// cache serves with the database.
func TestHostile14WritePathsAgainstDatabase(t *testing.T) {
	cases := []struct {
		name string
		ids  []uint // lookups by key cached before
		run  func(t *testing.T, e *env, pre *preUse)
	}{
		{"AfterCreate fails, SkipDefaultTransaction (row stays)", []uint{5}, func(t *testing.T, e *env, _ *preUse) {
			err := e.db.Session(&gorm.Session{SkipDefaultTransaction: true}).Create(&H14Fail{ID: 5, Name: "kept", Fail: true}).Error
			if !errors.Is(err, errH14Hook) {
				t.Fatalf("create: %v", err)
			}
		}},
		{"AfterCreate fails, default transaction (rolled back)", []uint{5}, func(t *testing.T, e *env, _ *preUse) {
			_ = e.db.Create(&H14Fail{ID: 5, Name: "gone", Fail: true}).Error
		}},
		{"AfterUpdate fails, SkipDefaultTransaction (row stays)", []uint{1}, func(t *testing.T, e *env, _ *preUse) {
			_ = e.db.Session(&gorm.Session{SkipDefaultTransaction: true}).Model(&H14Fail{ID: 1, Fail: true}).Update("name", "kept").Error
		}},
		{"AfterCreate fails in the user's transaction, error ignored, committed", []uint{5}, func(t *testing.T, e *env, _ *preUse) {
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				_ = tx.Create(&H14Fail{ID: 5, Name: "kept", Fail: true}).Error
				return nil
			}))
		}},
		{"nested Transaction rolled back to its savepoint, outer committed", []uint{5, 6}, func(t *testing.T, e *env, _ *preUse) {
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Create(&H14Fail{ID: 5, Name: "outer"}).Error)
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Create(&H14Fail{ID: 6, Name: "inner", Fail: true}).Error
				})
				return nil
			}))
		}},
		{"SavePoint/RollbackTo by hand, then a write, committed", []uint{1, 5}, func(t *testing.T, e *env, _ *preUse) {
			tx := e.db.Begin()
			must(t, tx.SavePoint("sp1").Error)
			must(t, tx.Model(&H14Fail{ID: 1}).Update("name", "undone").Error)
			must(t, tx.RollbackTo("sp1").Error)
			must(t, tx.Create(&H14Fail{ID: 5, Name: "after"}).Error)
			must(t, tx.Commit().Error)
		}},
		{"Save of a missing key (UPDATE 0 rows, then upsert)", []uint{9}, func(t *testing.T, e *env, _ *preUse) {
			must(t, e.db.Save(&H14Fail{ID: 9, Name: "saved"}).Error)
		}},
		{"FirstOrCreate", []uint{3}, func(t *testing.T, e *env, _ *preUse) {
			var f H14Fail
			must(t, e.db.Scopes(gormcache.Cacheable()).Where(H14Fail{Name: "foc"}).FirstOrCreate(&f).Error)
		}},
		{"FirstOrInit + Assign + Save", []uint{1}, func(t *testing.T, e *env, _ *preUse) {
			var f H14Fail
			must(t, e.db.Scopes(gormcache.Cacheable()).Where(H14Fail{ID: 1}).Assign(H14Fail{Name: "assigned"}).FirstOrInit(&f).Error)
			must(t, e.db.Save(&f).Error)
		}},
		{"CreateInBatches, second batch fails, SkipDefaultTransaction", []uint{3, 4}, func(t *testing.T, e *env, _ *preUse) {
			rows := []H14Fail{{ID: 3, Name: "b1"}, {ID: 4, Name: "b1"}, {ID: 1, Name: "dup"}}
			err := e.db.Session(&gorm.Session{SkipDefaultTransaction: true}).CreateInBatches(&rows, 2).Error
			if err == nil {
				t.Fatal("the duplicate batch did not fail")
			}
		}},
		{"OnConflict DoUpdates on a unique key (another row's id)", []uint{1, 2}, func(t *testing.T, e *env, _ *preUse) {
			must(t, e.db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"name"})}).
				Create(&H14Fail{ID: 2, Name: "upserted"}).Error)
		}},
		{"Returning on Create with Omit(ID)", []uint{1, 2, 3}, func(t *testing.T, e *env, _ *preUse) {
			f := H14Fail{ID: 1, Name: "omitted id"}
			must(t, e.db.Clauses(clause.Returning{}).Omit("ID").Create(&f).Error)
		}},
		{"handle before Use: Transaction, AfterCreate error ignored, committed", []uint{5}, func(t *testing.T, e *env, pre *preUse) {
			must(t, pre.ctx.Transaction(func(tx *gorm.DB) error {
				_ = tx.Create(&H14Fail{ID: 5, Name: "kept", Fail: true}).Error
				return nil
			}))
		}},
		{"handle before Use: default transaction rolled back by the hook", []uint{5}, func(t *testing.T, e *env, pre *preUse) {
			_ = pre.ctx.Create(&H14Fail{ID: 5, Name: "gone", Fail: true}).Error
		}},
		{"PrepareStmt handle before Use: Transaction with updates", []uint{1, 2}, func(t *testing.T, e *env, pre *preUse) {
			must(t, pre.prepared.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&H14Fail{ID: 1}).Update("name", "p1").Error; err != nil {
					return err
				}
				return tx.Where("id = ?", 2).Delete(&H14Fail{}).Error
			}))
		}},
	}
	for _, d := range databases {
		for _, c := range cases {
			t.Run(d.name+"/"+c.name, func(t *testing.T) {
				e, pre := newEnvPreUse(t, d, memoryStore)
				must(t, e.db.AutoMigrate(&H14Fail{}))
				must(t, e.db.Create(&[]H14Fail{{ID: 1, Name: "one"}, {ID: 2, Name: "two"}}).Error)
				if d.name == "postgres" {
					must(t, e.db.Exec("SELECT setval(pg_get_serial_sequence('h14_fails', 'id'), 2)").Error)
				}
				e.mustBeCached(t, "list", func() error { h14Names(t, e.db, true); return nil })
				for _, id := range c.ids {
					e.mustBeCached(t, fmt.Sprint("First ", id), func() error { h14One(e.db, id); return nil })
				}
				c.run(t, e, pre)
				settle(t, e)
				if got, want := h14Names(t, e.db, true), h14Names(t, e.db, false); got != want {
					t.Errorf("the cached list is %q; the database holds %q", got, want)
				}
				for _, id := range c.ids {
					if got, want := h14One(e.db, id), h14OneDB(t, e.db, id); got != want {
						t.Errorf("First(%d) served %q; the database holds %q", id, got, want)
					}
				}
			})
		}
	}
}
