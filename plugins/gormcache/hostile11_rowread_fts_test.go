package gormcache_test

import (
	"querycache.dev/plugins/gormcache"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

type H11Src struct {
	ID   int
	Body string
}

func (H11Src) TableName() string { return "h11_src" }

type H11FtsRow struct {
	Docid int
	Body  string
}

// An FTS4 table with external content (content="h11_src") reads its
// column values from the content table: SELECT docid, body FROM h11_fts
// WHERE docid = 1 returns h11_src's row 1 as it is now. The catalog takes
// the virtual table for a plain table (relkind 'r', learnSQLiteTable), so
// the read depended only on h11_fts's versions, and a write of h11_src
// through GORM left it cached (like a view, but not refused). Fixed: a
// virtual table is refused as a foreign table.
func TestHostile11SQLiteExternalContentVirtualTable(t *testing.T) {
	e := newEnv(t, databases[0], memoryStore, querycache.Options{})
	must(t, e.db.AutoMigrate(&H11Src{}))
	must(t, e.db.Exec(`CREATE VIRTUAL TABLE h11_fts USING fts4(content="h11_src", body)`).Error)
	must(t, e.db.Create(&[]H11Src{{ID: 1, Body: "one"}, {ID: 2, Body: "two"}}).Error)
	must(t, e.db.Exec(`INSERT INTO h11_fts(h11_fts) VALUES('rebuild')`).Error)
	q := func(db *gorm.DB) (any, error) {
		var r []H11FtsRow
		err := db.Table("h11_fts").Select("docid, body").Where("docid = ?", 1).Find(&r).Error
		return r, err
	}
	// A virtual table is now refused as a foreign table: its rows are the
	// module's. The read is never cached, so the write is seen.
	_, _ = q(e.db.Scopes(gormcache.Cacheable()))
	if n := e.statements(func() { _, _ = q(e.db.Scopes(gormcache.Cacheable())) }); n == 0 {
		t.Fatal("the read of a virtual table was served from the cache")
	}
	if r := e.cache.Stats().Refusals["foreign_table"]; r == 0 {
		t.Fatalf("refusals %v, want foreign_table", e.cache.Stats().Refusals)
	}
	must(t, e.db.Model(&H11Src{ID: 1}).Update("body", "uno").Error)
	got, gerr := q(e.db.Scopes(gormcache.Cacheable()))
	want, werr := q(e.db.Scopes(gormcache.NoCache()))
	if !sameAnswer(got, gerr, want, werr) {
		t.Errorf("stale after write: cached %s, database %s", js(got), js(want))
	}
}
