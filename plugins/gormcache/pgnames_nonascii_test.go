package gormcache_test

import (
	"context"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestPostgresRelationsNamedWithNonASCIICapitals: relations whose quoted
// names hold capitals outside ASCII ("ÄNDERUNGEN", "Über_Kind", as GORM
// quotes a TableName it is given) are found in the catalog. The plugin
// folds only ASCII letters (as PostgreSQL's lower() does in the C
// collation of relname); the catalog lookup compared lower(relname) with
// lower($1) in the database's collation, which on a UTF-8 one folds Ä to
// ä: such a relation was taken for one that does not exist. A view of
// that name was then cached as a table of its own, never invalidated by
// writes to the table it reads, and a foreign key's ON DELETE CASCADE into
// such a table was not followed.
func TestPostgresRelationsNamedWithNonASCIICapitals(t *testing.T) {
	t.Parallel()
	for _, s := range storesOn(t, databases[1], stores) {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, databases[1], s, querycache.Options{})
			db := e.db
			for _, q := range []string{
				`CREATE TABLE "Eltern" (id bigint PRIMARY KEY, v text)`,
				`CREATE TABLE "Über_Kind" (id bigint PRIMARY KEY, eltern_id bigint REFERENCES "Eltern"(id) ON DELETE CASCADE, v text)`,
				`CREATE VIEW "ÄNDERUNGEN" AS SELECT id, v FROM "Eltern"`,
				`INSERT INTO "Eltern" VALUES (1, 'alt'), (2, 'zwei')`,
				`INSERT INTO "Über_Kind" VALUES (10, 1, 'kind')`,
			} {
				if err := db.Exec(q).Error; err != nil {
					t.Fatal(err)
				}
			}
			ctx := gormcache.WithCache(context.Background(), time.Minute)
			view := func() string {
				var v string
				if err := db.WithContext(ctx).Raw(`SELECT v FROM "ÄNDERUNGEN" WHERE id = 1`).Scan(&v).Error; err != nil {
					t.Fatal(err)
				}
				return v
			}
			children := func() int64 {
				var n int64
				if err := db.WithContext(ctx).Raw(`SELECT count(*) FROM "Über_Kind"`).Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
				return n
			}
			view()
			children()
			if err := db.Exec(`UPDATE "Eltern" SET v = 'neu' WHERE id = 1`).Error; err != nil {
				t.Fatal(err)
			}
			if v := view(); v != "neu" {
				t.Errorf("the view read %q after its table's row was updated; want neu", v)
			}
			if err := db.Exec(`DELETE FROM "Eltern" WHERE id = 1`).Error; err != nil {
				t.Fatal(err)
			}
			if n := children(); n != 0 {
				t.Errorf("%d children after their parent was deleted ON DELETE CASCADE; want 0", n)
			}
		})
	}
}
