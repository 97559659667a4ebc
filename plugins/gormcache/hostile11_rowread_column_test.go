package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/querycache"
)

// A structured clause (clause.Eq, clause.Neq, ...) whose Column is an
// expression or a raw column is written into the WHERE as it is, without
// parentheses: "id = 1 AND name = 'x' OR id = 2" reads row 2 too. rowsOf
// judges such a conjunct safe by its Value alone (conjunct's clause.Eq
// case, structured), and keys the read by author 1: a write of author 2
// leaves it cached.
func TestHostile11StructuredClauseColumnWidens(t *testing.T) {
	t.Parallel() // an environment of its own per case, on the shared models only
	cases := map[string]func() clause.Expression{
		"Eq Column clause.Expr": func() clause.Expression {
			return clause.Eq{Column: clause.Expr{SQL: "name = 'nobody' OR id"}, Value: 2}
		},
		"Eq raw Column": func() clause.Expression {
			return clause.Eq{Column: clause.Column{Name: "name = 'nobody' OR id", Raw: true}, Value: 2}
		},
		"Gte Column clause.Expr": func() clause.Expression {
			return clause.Gte{Column: clause.Expr{SQL: "name = 'nobody' OR id"}, Value: 2}
		},
		"Not(Eq) Column clause.Expr": func() clause.Expression {
			return clause.Not(clause.Eq{Column: clause.Expr{SQL: "name = 'nobody' OR id"}, Value: 1})
		},
		"IN raw Column": func() clause.Expression {
			return clause.IN{Column: clause.Column{Name: "name = 'nobody' OR id", Raw: true}, Values: []any{2}}
		},
	}
	for _, d := range databases {
		for name, cond := range cases {
			t.Run(d.name+"/"+name, func(t *testing.T) {
				e := newEnv(t, d, memoryStore, querycache.Options{})
				must(t, e.db.Create(&[]Author{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}}).Error)
				q := func(db *gorm.DB) (any, error) {
					var r []Author
					err := db.Where("id = ?", 1).Where(cond()).Order("id").Find(&r).Error
					return r, err
				}
				staleCheck(t, e, name, q, func(db *gorm.DB) error {
					return db.Model(&Author{ID: 2}).Update("name", "b2").Error
				})
			})
		}
	}
}

// The same judgement decides which rows a write changed (rowsOf is shared):
// an UPDATE whose WHERE is widened by a clause.Eq's expression column is
// taken for a write of author 1 only, and the cached lookup of author 2
// survives it.
func TestHostile11StructuredClauseColumnWidensWrite(t *testing.T) {
	t.Parallel() // an environment of its own per case, on the shared models only
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, memoryStore, querycache.Options{})
			must(t, e.db.Create(&[]Author{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}}).Error)
			q := func(db *gorm.DB) (any, error) {
				var r Author
				err := db.First(&r, 2).Error
				return r, err
			}
			staleCheck(t, e, "lookup of 2", q, func(db *gorm.DB) error {
				return db.Model(&Author{}).Where("id = ?", 1).
					Where(clause.Eq{Column: clause.Expr{SQL: "name = 'nobody' OR id"}, Value: 2}).
					Update("name", "b2").Error
			})
		})
	}
}
