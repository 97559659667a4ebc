package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type H42Counter struct {
	ID uint `gorm:"primaryKey"`
	N  int
}

// h42With is a WITH clause, as CTE plugins for GORM add one
// (gorm-extra-clause-plugin's exclause.With): a clause named WITH, built
// before SELECT because the statement's BuildClauses name it first.
type h42With struct {
	sql  string
	vars []any
}

func (w h42With) Name() string { return "WITH" }
func (w h42With) Build(b clause.Builder) {
	clause.Expr{SQL: w.sql, Vars: w.vars}.Build(b)
}
func (w h42With) MergeClause(c *clause.Clause) { c.Name = "WITH"; c.Expression = w }

func h42WithScope(sql string, vars ...any) func(*gorm.DB) *gorm.DB {
	return func(tx *gorm.DB) *gorm.DB {
		tx = tx.Clauses(h42With{sql: sql, vars: vars})
		tx.Statement.BuildClauses = []string{"WITH", "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "LIMIT", "FOR"}
		return tx
	}
}

func h42Truth(t *testing.T, db *gorm.DB, id uint) int {
	t.Helper()
	sqlDB, _ := db.DB()
	var n int
	q := "SELECT n FROM h42_counters WHERE id = $1"
	if db.Dialector.Name() == "sqlite" {
		q = "SELECT n FROM h42_counters WHERE id = ?"
	}
	must(t, sqlDB.QueryRow(q, id).Scan(&n))
	return n
}

// BUG (stale read, C1): a GORM-built read (Find, Rows, Scan, Pluck) whose
// statement carries a data-modifying CTE (PostgreSQL; a clause named WITH,
// as CTE plugins for GORM add one). The plugin refused to cache it (not a
// read), but recordRawWrite took its early return for statements GORM
// built that call no function, which assumed they read: the UPDATE in the
// CTE was never recorded. Count escaped only because count(*) is a call.
func TestHostile42GormBuiltWriteCTE(t *testing.T) {
	var pg dbKind
	for _, d := range databases {
		if d.name == "postgres" {
			pg = d
		}
	}
	if pg.name == "" {
		t.Skip("PostgreSQL only (SQLite has no data-modifying WITH)")
	}
	for _, path := range []string{"exec (control)", "find", "rows", "scan", "pluck", "count"} {
		t.Run(path, func(t *testing.T) {
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			must(t, e.db.AutoMigrate(&H42Counter{}))
			c := H42Counter{N: 1}
			must(t, e.db.Create(&c).Error)
			var got H42Counter
			e.mustBeCached(t, "by pk", func() error {
				got = H42Counter{}
				return e.db.Scopes(gormcache.Cacheable()).First(&got, c.ID).Error
			})
			var list []H42Counter
			e.mustBeCached(t, "list", func() error {
				list = nil
				return e.db.Scopes(gormcache.Cacheable()).Where("n > ?", 0).Find(&list).Error
			})
			cte := "u AS (UPDATE h42_counters SET n = 99 WHERE id = ? RETURNING id)"
			w := e.db.Scopes(h42WithScope(cte, c.ID)).Table("u")
			switch path {
			case "exec (control)":
				must(t, e.db.Exec("WITH "+cte+" SELECT * FROM u", c.ID).Error)
			case "find":
				var out []map[string]any
				must(t, w.Find(&out).Error)
			case "rows":
				rows, err := w.Select("id").Rows()
				must(t, err)
				for rows.Next() {
				}
				must(t, rows.Close())
			case "scan":
				var out []struct{ ID uint }
				must(t, w.Select("id").Scan(&out).Error)
			case "pluck":
				var ids []uint
				must(t, w.Pluck("id", &ids).Error)
			case "count":
				var n int64
				must(t, w.Count(&n).Error)
			}
			truth := h42Truth(t, e.db, c.ID)
			if truth != 99 {
				t.Fatalf("write did not happen: n=%d", truth)
			}
			got = H42Counter{}
			must(t, e.db.Scopes(gormcache.Cacheable()).First(&got, c.ID).Error)
			list = nil
			must(t, e.db.Scopes(gormcache.Cacheable()).Where("n > ?", 0).Find(&list).Error)
			if got.N != truth {
				t.Errorf("STALE by pk: cached n=%d, database n=%d", got.N, truth)
			}
			if len(list) != 1 || list[0].N != truth {
				t.Errorf("STALE list: cached %+v, database n=%d", list, truth)
			}
		})
	}
}
