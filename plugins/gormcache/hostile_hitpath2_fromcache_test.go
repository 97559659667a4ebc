package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostileHitPath2FromCacheAfterWriteOnSameStatement: a finisher's
// *gorm.DB reused for a write (GORM runs it on the same statement). The
// write went to the database; FromCache of the *gorm.DB the write returned
// must not report the earlier read's hit.
func TestHostileHitPath2FromCacheAfterWriteOnSameStatement(t *testing.T) {
	db, _ := visDB(t, nil, querycache.Options{})
	for _, write := range []struct {
		name string
		run  func(q *gorm.DB) *gorm.DB
	}{
		{"Exec", func(q *gorm.DB) *gorm.DB { return q.Exec("UPDATE vis_authors SET name = ? WHERE id = ?", "zoe", 1) }},
	} {
		if err := db.Scopes(gormcache.Cacheable()).Model(&VisAuthor{}).Where("id = ?", 1).Take(&VisAuthor{}).Error; err != nil {
			t.Fatal(err)
		}
		q := db.Scopes(gormcache.Cacheable()).Model(&VisAuthor{}).Where("id = ?", 1)
		var a VisAuthor
		if err := q.Take(&a).Error; err != nil || !gormcache.FromCache(q) {
			t.Fatalf("%s: Take: %v, FromCache %v, want a hit", write.name, err, gormcache.FromCache(q))
		}
		res := write.run(q)
		if res.Error != nil || res.RowsAffected != 1 {
			t.Fatalf("%s: %v, %d rows", write.name, res.Error, res.RowsAffected)
		}
		if gormcache.FromCache(res) {
			t.Errorf("%s: FromCache is true for a write that ran on the database (CacheResult %+v, same statement as the read: %v)",
				write.name, gormcache.CacheResult(res), res.Statement == q.Statement)
		}
	}
}

// TestHostileHitPath2FromCacheSessionOfKeptStatement: the README's Rows
// pattern (q := ...Scopes(Cacheable()).Where(...); q.Rows(); FromCache(q)),
// then the kept statement made reusable with a Session, as GORM's docs say
// to reuse a statement. The Session shares q's *gorm.Statement; each of its
// calls runs on a clone. The row is written, so s.Rows() goes to the
// database; FromCache(s) must not report q's earlier hit.
func TestHostileHitPath2FromCacheSessionOfKeptStatement(t *testing.T) {
	t.Skip("known limit, not fixed (FromCache's doc): a *gorm.DB made reusable by Session runs each call on a copy of its statement, whose outcome the *gorm.DB does not see")
	db, _ := visDB(t, nil, querycache.Options{})
	titles := func(q *gorm.DB) map[string]bool {
		t.Helper()
		rows, err := q.Rows()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]bool{}
		for rows.Next() {
			var p VisPost
			if err := db.ScanRows(rows, &p); err != nil { // not q: its statement would keep &p
				t.Fatal(err)
			}
			got[p.Title] = true
		}
		return got
	}
	titles(db.Scopes(gormcache.Cacheable()).Model(&VisPost{}).Where("author_id = ?", 1)) // fills
	q := db.Scopes(gormcache.Cacheable()).Model(&VisPost{}).Where("author_id = ?", 1)
	titles(q)
	if !gormcache.FromCache(q) {
		t.Fatalf("q.Rows(): CacheResult %+v, want a hit", gormcache.CacheResult(q))
	}
	s := q.Session(&gorm.Session{})
	if err := db.Model(&VisPost{}).Where("id = ?", 1).Update("title", "changed").Error; err != nil {
		t.Fatal(err)
	}
	if got := titles(s); !got["changed"] {
		t.Fatalf("s.Rows() after the write: %v, want the new title", got)
	}
	// s.Rows() read the database (the entry was stale): nothing may say
	// it came from the cache.
	if gormcache.FromCache(s) {
		t.Fatalf("FromCache(s) is true after s.Rows() ran on the database: CacheResult %+v is q's earlier hit (s.Statement == q.Statement: %v)",
			gormcache.CacheResult(s), s.Statement == q.Statement)
	}
}

// TestHostileHitPath2FromCacheSessionRowsHit: the same kept statement made
// reusable with a Session before it ever ran. s.Rows() is served from the
// cache (the rows are not asked of the database), but FromCache(s) asks
// s.Statement, which no call ran on: it reports false for a hit.
func TestHostileHitPath2FromCacheSessionRowsHit(t *testing.T) {
	t.Skip("known limit, not fixed (FromCache's doc): a *gorm.DB made reusable by Session runs each call on a copy of its statement, whose outcome the *gorm.DB does not see")
	db, c := visDB(t, nil, querycache.Options{})
	run := func(q *gorm.DB) {
		t.Helper()
		rows, err := q.Rows()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
	}
	run(db.Scopes(gormcache.Cacheable()).Model(&VisPost{}).Where("author_id = ?", 1)) // fills
	s := db.Scopes(gormcache.Cacheable()).Model(&VisPost{}).Where("author_id = ?", 1).Session(&gorm.Session{})
	before := c.Stats().Hits
	run(s)
	if c.Stats().Hits != before+1 {
		t.Fatalf("s.Rows() was not a hit (hits %d -> %d)", before, c.Stats().Hits)
	}
	if !gormcache.FromCache(s) {
		t.Fatalf("s.Rows() was served from the cache, FromCache(s) is false (CacheResult %+v)", gormcache.CacheResult(s))
	}
}
