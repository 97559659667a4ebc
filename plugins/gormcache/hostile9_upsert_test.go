package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile9UpsertPathsAfterNoConflictLookup pins commit 7062d27's
// "an UPDATE or DELETE is not looked up for an ON CONFLICT clause": every
// GORM path that writes with an ON CONFLICT clause in the statement's
// clauses still leaves no cached read of a row it changed. Save of a key
// that does not exist runs an UPDATE (0 rows) and then an INSERT ... ON
// CONFLICT (the create callbacks: bulk); Clauses(OnConflict) on Update,
// Updates, Save of an existing key and a soft Delete build no ON CONFLICT
// (GORM's update and delete clauses do not include it), so narrowing
// them to their row is right; an upsert on a unique non-key column
// through Create updates a row other than the one passed in.
func TestHostile9UpsertPathsAfterNoConflictLookup(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Counter{ID: 1, N: 10}).Error)
			must(t, e.db.Create(&Counter{ID: 2, N: 20}).Error)
			byPK := func(id uint) (Counter, int64) {
				var c Counter
				r := e.db.Scopes(gormcache.Cacheable()).Limit(1).Find(&c, id)
				must(t, r.Error)
				return c, r.RowsAffected
			}
			all := func() []Counter {
				var cs []Counter
				must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&cs).Error)
				return cs
			}
			check := func(what string) {
				t.Helper()
				var want []Counter
				must(t, e.db.Scopes(gormcache.NoCache()).Order("id").Find(&want).Error)
				got := all()
				if len(got) != len(want) {
					t.Fatalf("%s: cached list %+v, database %+v", what, got, want)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s: cached list %+v, database %+v", what, got, want)
					}
					c, n := byPK(want[i].ID)
					if n != 1 || c != want[i] {
						t.Fatalf("%s: cached row %d is %+v (%d rows), database %+v", what, want[i].ID, c, n, want[i])
					}
				}
				if _, n := byPK(99); n != 0 {
					t.Fatalf("%s: row 99 found", what)
				}
			}
			warm := func() {
				all()
				for _, id := range []uint{1, 2, 3, 99} {
					byPK(id)
				}
			}
			oc := clause.OnConflict{UpdateAll: true}
			steps := []struct {
				name  string
				write func() error
			}{
				{"Save of a key that does not exist (UPDATE, then INSERT ... ON CONFLICT)", func() error {
					return e.db.Save(&Counter{ID: 3, N: 30}).Error
				}},
				{"Clauses(OnConflict).Save of an existing key", func() error {
					return e.db.Clauses(oc).Save(&Counter{ID: 1, N: 11}).Error
				}},
				{"Clauses(OnConflict).Model.Update", func() error {
					return e.db.Clauses(oc).Model(&Counter{ID: 2}).Update("n", 21).Error
				}},
				{"Clauses(OnConflict).Model.Updates", func() error {
					return e.db.Clauses(oc).Model(&Counter{ID: 3}).Updates(map[string]any{"n": 31}).Error
				}},
				{"Clauses(OnConflict).Where.Update", func() error {
					return e.db.Clauses(oc).Model(&Counter{}).Where("id = ?", 1).Update("n", gorm.Expr("n + 1")).Error
				}},
				{"Clauses(OnConflict).Create of an existing key (DO UPDATE)", func() error {
					return e.db.Clauses(oc).Create(&Counter{ID: 2, N: 22}).Error
				}},
				{"Clauses(OnConflict).Delete", func() error {
					return e.db.Clauses(oc).Delete(&Counter{ID: 3}).Error
				}},
			}
			// The reads are served from the cache (the checks have teeth).
			e.mustBeCached(t, "row 1 by key", func() error { byPK(1); return nil })
			e.mustBeCached(t, "every row", func() error { all(); return nil })
			for _, s := range steps {
				warm()
				must(t, s.write())
				check(s.name)
			}
		})
	}
}
