package gormcache_test

import (
	"strings"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestSQLiteLongTableNameWrites: the cache knows a table by the first 63
// bytes of its name (as PostgreSQL does); SQLite keeps longer names whole,
// so the catalog finds such a table by reading every long name, and a write
// to it invalidates everything (its trigger's table included) instead of
// missing the trigger.
func TestSQLiteLongTableNameWrites(t *testing.T) {
	e := newEnv(t, databases[0], memoryStore, querycache.Options{})
	long := "ln_" + strings.Repeat("x", 70)
	for _, s := range []string{
		`CREATE TABLE ` + long + ` (id INTEGER PRIMARY KEY, n INTEGER)`,
		`CREATE TABLE ln_log (n INTEGER)`,
		`CREATE TRIGGER ln_trg AFTER UPDATE ON ` + long + ` BEGIN INSERT INTO ln_log VALUES (NEW.n); END`,
		`INSERT INTO ` + long + ` VALUES (1, 0)`,
	} {
		must(t, e.db.Exec(s).Error)
	}
	count := func(db *gorm.DB) int64 {
		var n int64
		must(t, db.Raw("SELECT count(*) FROM ln_log").Scan(&n).Error)
		return n
	}
	cached := e.db.Scopes(gormcache.Cacheable())
	if n := count(cached); n != 0 {
		t.Fatalf("log has %d rows before the write", n)
	}
	if s := e.statements(func() { count(cached) }); s != 0 {
		t.Fatalf("the second read sent %d statements: not cached, the case proves nothing", s)
	}
	must(t, e.db.Exec("UPDATE "+long+" SET n = 5 WHERE id = 1").Error)
	if n := count(cached); n != 1 {
		t.Errorf("after an update of the long-named table, whose trigger logs it, the cached log count is %d, want 1", n)
	}
}
