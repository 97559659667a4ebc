package gormcache_test

// A bound value that is itself an expression (gorm.Expr, clause.Expr, a
// list of them) is written into the SQL text unparenthesised, so a
// condition that looks simple next to a key condition can widen the
// statement to every row. Found by the write-path hostile review; fixed in
// rowsOf's structured (boundValue).

import (
	"fmt"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
)

// TestHostileWriteExprVarWidensPastKey: a raw condition next to a
// primary-key condition is "simple" by its SQL text ("n = ?"), but its one
// bound value may itself be an expression GORM writes inline, without
// parentheses: Where("n = ?", gorm.Expr("n OR 1=1")) builds
// "n = n OR 1=1 AND id = 1", which writes every row. Narrowing that write to
// row 1 leaves the other rows' cached lookups stale.
func TestHostileWriteExprVarWidensPastKey(t *testing.T) {
	type shape struct {
		name  string
		write func(db *gorm.DB) error
	}
	shapes := []shape{
		{"update gorm.Expr var", func(db *gorm.DB) error {
			return db.Model(&Counter{}).Where("id = ?", 1).Where("n = ?", gorm.Expr("n OR 1=1")).Update("n", 7).Error
		}},
		{"update Model key, clause.Expr var", func(db *gorm.DB) error {
			return db.Model(&Counter{ID: 1}).Where("n = ?", clause.Expr{SQL: "n OR 1=1"}).Update("n", 8).Error
		}},
		{"update IN list of expressions", func(db *gorm.DB) error {
			return db.Model(&Counter{}).Where("id = ?", 1).Where("n IN ?", []any{gorm.Expr("n) OR (1=1")}).Update("n", 9).Error
		}},
		{"update map condition with an expression value", func(db *gorm.DB) error {
			return db.Model(&Counter{}).Where("id = ?", 1).Where(map[string]any{"n": gorm.Expr("n OR 1=1")}).Update("n", 10).Error
		}},
		{"update clause.Eq with an expression value", func(db *gorm.DB) error {
			return db.Model(&Counter{}).Where("id = ?", 1).Where(clause.Eq{Column: "n", Value: gorm.Expr("n OR 1=1")}).Update("n", 11).Error
		}},
		{"update clause.Neq with an expression value", func(db *gorm.DB) error {
			return db.Model(&Counter{}).Where("id = ?", 1).Where(clause.Neq{Column: "n", Value: clause.Expr{SQL: "-1 OR 1=1"}}).Update("n", 12).Error
		}},
		{"delete gorm.Expr var", func(db *gorm.DB) error {
			return db.Where("id = ?", 1).Where("n = ?", gorm.Expr("n OR 1=1")).Delete(&Counter{}).Error
		}},
	}
	forEachDatabase(t, func(t *testing.T, e *env) {
		for _, s := range shapes {
			must(t, e.db.Session(&gorm.Session{AllowGlobalUpdate: true}).Where("1 = 1").Delete(&Counter{}).Error)
			ids := seedCounters(t, e, 3)
			if err := s.write(e.db); err != nil {
				t.Logf("%s: %v", s.name, err)
			}
			counterAgree(t, e, s.name, ids)
		}
	})
}

// TestHostileReadExprVarWidensPastKey: the read side of the same proof. A
// cached read Where("id = ?", 1).Where("n = ?", gorm.Expr("n OR 1=1"))
// returns every row but is recorded as a lookup of row 1; a later write
// of row 2 by key does not invalidate it.
func TestHostileReadExprVarWidensPastKey(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seedCounters(t, e, 3)
		read := func(s func(*gorm.DB) *gorm.DB) []Counter {
			var out []Counter
			must(t, e.db.Scopes(s).Where("id = ?", 1).Where("n = ?", gorm.Expr("n OR 1=1")).Order("id").Find(&out).Error)
			return out
		}
		e.mustBeCached(t, "widened read", func() error {
			var out []Counter
			return e.db.Scopes(gormcache.Cacheable()).Where("id = ?", 1).Where("n = ?", gorm.Expr("n OR 1=1")).Order("id").Find(&out).Error
		})
		must(t, e.db.Model(&Counter{ID: 2}).Update("n", 42).Error)
		if c, d := read(gormcache.Cacheable()), read(gormcache.NoCache()); fmt.Sprint(c) != fmt.Sprint(d) {
			t.Errorf("after writing row 2 by key: cache %+v, database %+v", c, d)
		}
	})
}
