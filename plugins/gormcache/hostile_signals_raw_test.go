package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestHostileSignalForModelsRawSQL: a ForModels subscriber is told about
// raw SQL that writes its table however the statement is spelled (quoted
// or schema-less name, an alias, a CTE, a statement the plugin cannot
// parse): it receives a Change for the table or one with AllTables. A
// subscriber of another model is not told about a write it can name.
func TestHostileSignalForModelsRawSQL(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		c := Counter{N: 1}
		must(t, e.db.Create(&c).Error)
		counters, others := &sigRec{}, &sigRec{}
		defer e.plugin.OnChange(counters.fn, gormcache.ForModels(&Counter{}))()
		defer e.plugin.OnChange(others.fn, gormcache.ForModels(&Language{}))()
		stmts := []string{
			`UPDATE counters SET n = n + 1`,
			`UPDATE "counters" SET n = n + 1`,
			`update COUNTERS set n = n + 1`,
			`UPDATE counters AS c SET n = c.n + 1 WHERE c.id > 0`,
			`WITH x AS (SELECT id FROM counters) UPDATE counters SET n = n + 1 WHERE id IN (SELECT id FROM x)`,
			`DELETE FROM counters WHERE id IN (SELECT id FROM counters WHERE n < 0)`,
			`INSERT INTO counters (n) SELECT n FROM counters WHERE id = 1`,
		}
		for _, s := range stmts {
			must(t, e.db.Exec(s).Error)
			waitSignals(t, e)
			got := counters.take()
			ok := false
			for _, ch := range got {
				if ch.AllTables || ch.Table == "counters" {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: the counters subscriber got %v", s, sigGot(got))
			}
			for _, ch := range others.take() {
				if !ch.AllTables {
					t.Errorf("%s: the languages subscriber got %v", s, sigGot([]gormcache.Change{ch}))
				}
			}
		}
	})
}
