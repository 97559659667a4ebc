package gormcache_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// PASSES (kept): a migration transaction that creates (or replaces) a
// function and then calls it, while the function list loaded before the
// DDL is still the catalog state's: the call is judged by the old list
// (lower(bigint) unknown, h15_f still IMMUTABLE), but the DDL itself
// (CREATE FUNCTION: no table) invalidates everything at commit, which
// covers what the call wrote.
func TestHostile15FunctionCreatedInTransactionThenCalled(t *testing.T) {
	pg := h14Postgres(t)
	cases := []struct {
		name   string
		before string // run before the list is loaded
		ddl    string // in the transaction
		call   string // Pluck's column
	}{
		{"CREATE FUNCTION lower(bigint) then Pluck(lower(id))", "",
			`CREATE FUNCTION lower(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE languages SET name = 'written by lower(bigint)' WHERE id = 7; RETURN x; END $$`, "lower(id)"},
		{"CREATE OR REPLACE an IMMUTABLE function as VOLATILE, then Pluck", `CREATE FUNCTION h15_f(x bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT x $$`,
			`CREATE OR REPLACE FUNCTION h15_f(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE languages SET name = 'written by h15_f' WHERE id = 7; RETURN x; END $$`, "h15_f(id)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
			must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
			if c.before != "" {
				must(t, e.db.Exec(c.before).Error)
			}
			// Load the function list (a Count calls count()).
			var n int64
			must(t, e.db.Model(&Author{}).Count(&n).Error)
			lookup := func() string {
				var l Language
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
				return l.Name
			}
			e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				for _, q := range splitTopLevel(c.ddl) {
					if strings.TrimSpace(q) != "" {
						if err := tx.Exec(q).Error; err != nil {
							return err
						}
					}
				}
				var vs []int64
				return tx.Model(&Author{}).Where("id = ?", 1).Pluck(c.call, &vs).Error
			}))
			var inDB string
			must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
			if inDB == "go" {
				t.Fatalf("the function did not write: the probe proves nothing")
			}
			if got := lookup(); got != inDB {
				t.Errorf("First(&Language{}, 7) served %q; the database holds %q: in the transaction that created it, Pluck(%s) called the new volatile function, judged by the function list loaded before the DDL", got, inDB, c.call)
			}
		})
	}
}
