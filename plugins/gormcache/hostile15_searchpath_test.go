package gormcache_test

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h15Home is the test schema (on the search_path) of e.
func h15Home(t *testing.T, e *env) string {
	t.Helper()
	var s string
	must(t, e.db.Raw("SELECT current_schema()").Scan(&s).Error)
	if !regexp.MustCompile(`^\w+$`).MatchString(s) {
		t.Fatalf("odd schema %q", s)
	}
	return s
}

func h15Schema(t *testing.T, e *env, prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	other := prefix + hex.EncodeToString(b[:])
	must(t, e.db.Exec("CREATE SCHEMA "+other).Error)
	t.Cleanup(func() { e.db.Exec("DROP SCHEMA " + other + " CASCADE") })
	return other
}

// BUG (stale read, C1): the transaction-local search_path of a
// schema-per-tenant application. fnMayWriteOnPath (purity.go functionsOn)
// is computed with current_schemas(false) of the connection that read
// the function list; session.go localConfigOnly lets
// set_config('search_path', ..., true) in a transaction pass without
// stopping the cache (it is transaction-local: "the usual way to give
// row-level security a tenant"), and a managed transaction's reads then
// bypass the cache, but its writes are still judged by the list: a
// lower(bigint) in the tenant's schema, which the statement's connection
// now searches, is taken to be off the path, so Pluck("lower(id)") is
// pg_catalog's lower (skipped) although PostgreSQL calls the tenant's
// volatile overload, which wrote languages. Nothing is invalidated at
// commit.
func TestHostile15TransactionLocalSearchPathReachesWriterOverload(t *testing.T) {
	pg := h14Postgres(t)
	variants := []struct {
		name string
		set  func(tx *gorm.DB, path string) error
	}{
		{"set_config(search_path, ..., true)", func(tx *gorm.DB, path string) error {
			var s string
			return tx.Raw("SELECT set_config('search_path', ?, true)", path).Scan(&s).Error
		}},
		{"SET LOCAL search_path", func(tx *gorm.DB, path string) error {
			return tx.Exec("SET LOCAL search_path TO " + path).Error
		}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			home := h15Home(t, e)
			tenant := h15Schema(t, e, "h15_tenant_")
			must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
			must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
			must(t, e.db.Exec(`CREATE FUNCTION `+tenant+`.lower(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE `+home+`.languages SET name = 'written by the tenant''s lower(bigint)' WHERE id = 7; RETURN x; END $$`).Error)
			// The list is read now, on the home path.
			var n int64
			must(t, e.db.Model(&Author{}).Count(&n).Error)
			lookup := func() string {
				var l Language
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
				return l.Name
			}
			e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				if err := v.set(tx, tenant+", "+home); err != nil {
					return err
				}
				var ids []int64
				return tx.Model(&Author{}).Where("id = ?", 1).Pluck("lower(id)", &ids).Error
			}))
			var inDB string
			must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
			if inDB == "go" {
				t.Fatalf("the tenant's lower(bigint) did not run: the probe proves nothing")
			}
			if got := lookup(); got != inDB {
				t.Errorf("First(&Language{}, 7) served %q; the database holds %q: the transaction's search_path (%s) put the tenant's volatile lower(bigint) before the call; fnMayWriteOnPath was computed on the path of the connection that read the function list", got, inDB, v.name)
			}
		})
	}
}
