package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// A temporary table renamed to a permanent table's name (ALTER TABLE tmp
// RENAME TO items: it stays in pg_temp / SQLite's temp schema) shadows it
// on its connection, like CREATE TEMP TABLE items, which the plugin
// remembers (reads of the name bypass: temp_table); the rename is not
// remembered. Reads there are cached under items and served to every
// connection.
//
// Order of events:
//  1. h29p_items (id 1, v 0) permanent.
//  2. On A: CREATE TEMP TABLE h29p_x (id 1, v 100); ALTER TABLE h29p_x
//     RENAME TO h29p_items.
//  3. On another connection: UPDATE h29p_items SET v = 5 WHERE id = 1
//     (the permanent table; committed).
//  4. On A: SELECT v FROM h29p_items WHERE id = 1 (Cacheable): 100,
//     stored.
//  5. On the pool (A still held, so another connection): the same read.
//     Expected 5 (the committed write, what the database answers there);
//     served 100.
func TestHostile29TempRenamedShadows(t *testing.T) {
	for _, d := range databases {
		for _, rename := range []string{"ALTER TABLE h29p_x RENAME TO h29p_items", "ALTER TABLE %s.h29p_x RENAME TO h29p_items"} {
			t.Run(d.name+"/"+rename, func(t *testing.T) {
				e := newEnv(t, d, stores[0], querycache.Options{})
				if d.name == "sqlite" {
					sqlDB, err := e.db.DB()
					must(t, err)
					sqlDB.SetMaxOpenConns(4)
					sqlDB.SetMaxIdleConns(4)
				}
				schema := "pg_temp"
				if d.name == "sqlite" {
					schema = "temp"
				}
				h16Exec(t, e, `CREATE TABLE h29p_items (id integer PRIMARY KEY, v integer NOT NULL);
INSERT INTO h29p_items VALUES (1, 0)`)
				const q = "SELECT v FROM h29p_items WHERE id = 1"
				err := e.db.Connection(func(conn *gorm.DB) error {
					tx := conn.Session(&gorm.Session{})
					for _, s := range []string{
						"CREATE TEMP TABLE h29p_x (id integer PRIMARY KEY, v integer NOT NULL)",
						"INSERT INTO h29p_x VALUES (1, 100)",
						stringsReplaceSchema(rename, schema),
					} {
						if err := tx.Exec(s).Error; err != nil {
							return err
						}
					}
					must(t, e.db.Exec("UPDATE h29p_items SET v = 5 WHERE id = 1").Error)
					onA := h16Scalar(t, tx.Scopes(gormcache.Cacheable()), q)
					t.Logf("on A (the temporary table): %s", onA)
					want := h16Scalar(t, e.db.Scopes(gormcache.NoCache()), q)
					got := h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), q)
					if got != want {
						t.Errorf("STALE: %q served %s from the cache; the database holds %s (written and committed before)", q, got, want)
					}
					return nil
				})
				must(t, err)
			})
		}
	}
}

func stringsReplaceSchema(s, schema string) string {
	out := ""
	for i := 0; i < len(s); i++ {
		if i+1 < len(s) && s[i] == '%' && s[i+1] == 's' {
			out += schema
			i++
			continue
		}
		out += string(s[i])
	}
	return out
}
