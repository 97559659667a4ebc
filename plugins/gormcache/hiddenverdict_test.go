package gormcache_test

import (
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
)

// A GORM write of a text remembers, on SQLite, that it calls no hidden
// writer (writeCallsHiddenWriter), for the catalog state it judged in. A
// write of the same text after the schema changed must be judged again:
// here its table has become a view whose query calls a function that
// writes another table.
//
// Order of events:
//  1. hv_items (id 1, v 0) is a table; hv_log (id 1, n 0); hv_bump()
//     bumps hv_log's n.
//  2. Where("id = ?", 1).Update("v", ...) on hv_items, twice: its text is
//     judged to call no hidden writer, and the judgement remembered.
//  3. The DDL: hv_items renamed hv_base; a view hv_items over it whose
//     query calls hv_bump(), with an INSTEAD OF UPDATE trigger writing
//     hv_base. Run through the plugin ("own"), or by another program
//     ("other"), which the plugin learns of when its facts age (shortened
//     here).
//  4. hv_log's n is cached.
//  5. The same write, the same text: the view's query runs hv_bump().
//  6. Expected: the read gives the new n.
func TestWriteHiddenWriterVerdictFollowsTheCatalog(t *testing.T) {
	const ddl = `ALTER TABLE hv_items RENAME TO hv_base;
CREATE VIEW hv_items AS SELECT id, v, hv_bump() AS b FROM hv_base;
CREATE TRIGGER hv_items_upd INSTEAD OF UPDATE ON hv_items BEGIN UPDATE hv_base SET v = NEW.v WHERE id = OLD.id; END`
	for _, who := range []string{"own", "other"} {
		t.Run(who, func(t *testing.T) {
			e := sqliteWriterEnv(t, "hv_bump", "hv_log")
			h16Exec(t, e, `CREATE TABLE hv_items (id integer PRIMARY KEY, v integer NOT NULL);
CREATE TABLE hv_log (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO hv_items VALUES (1, 0);
INSERT INTO hv_log VALUES (1, 0)`)
			v := 0
			write := func() error {
				v++
				return e.db.Table("hv_items").Where("id = ?", 1).Update("v", v).Error
			}
			for range 2 {
				must(t, write())
			}
			switch who {
			case "own":
				h16Exec(t, e, ddl)
			case "other":
				// database/sql's handle under the plugin's: what runs
				// there, the plugin never sees.
				sqlDB, err := e.db.DB()
				must(t, err)
				for _, s := range splitTopLevel(ddl) {
					_, err := sqlDB.Exec(s)
					must(t, err)
				}
				// The facts the plugin learned are trusted until they age:
				// the next statement that asks for facts (a marked read)
				// begins a new catalog state, which then lasts.
				gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Nanosecond)
				time.Sleep(time.Millisecond)
				h16Scalar(t, e.db.Scopes(gormcache.Cacheable()), "SELECT count(*) FROM hv_base")
				gormcache.SetCatalogMaxAgeForTest(e.plugin, time.Hour)
			}
			h16Probe(t, e, "SELECT n FROM hv_log WHERE id = 1", write)
		})
	}
}
