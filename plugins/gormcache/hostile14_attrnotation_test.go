package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BUG (stale read, C1): on PostgreSQL a function taking a table's row is
// called by attribute notation, a.claim, as if it were a column: the text
// shows no call. For SQL the user wrote, rawChange asks callsHiddenWriter
// (a volatile such function on a table the statement reads may write
// anything: invalidate everything), and the raw control case below passes.
// For statements GORM built, the check added in d60228c looks only at
// calls the text shows: recordRawWrite (query.go) returns at once for a
// GORM-built read with no function call in its text, and writeChange
// (writes.go) asks mayWrite, never callsHiddenWriter. So a Pluck, a
// Select(...).Find or an Update whose text reads authors.claim runs the
// user's volatile claim(authors), which wrote languages, and nothing is
// invalidated (the Update is narrowed to its own author row).
func TestHostile14AttributeNotationWriterInGormBuiltStatement(t *testing.T) {
	pg := h14Postgres(t)
	cases := []struct {
		name string
		run  func(db *gorm.DB) error
	}{
		{"raw SQL (control)", func(db *gorm.DB) error {
			var names []string
			return db.Raw("SELECT a.claim FROM authors a WHERE a.id = ?", 1).Scan(&names).Error
		}},
		{"Pluck(authors.claim)", func(db *gorm.DB) error {
			var names []string
			return db.Model(&Author{}).Where("id = ?", 1).Pluck("authors.claim", &names).Error
		}},
		{"Select(authors.claim).Find", func(db *gorm.DB) error {
			var rows []struct{ Claim string }
			return db.Model(&Author{}).Select("authors.claim").Where("id = ?", 1).Find(&rows).Error
		}},
		{"Update(name, Expr(authors.claim))", func(db *gorm.DB) error {
			return db.Model(&Author{ID: 1}).Update("name", gorm.Expr("authors.claim")).Error
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
			must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
			must(t, e.db.Exec(`CREATE FUNCTION claim(a authors) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE languages SET name = 'claimed by author ' || a.id WHERE id = 7; RETURN a.name; END $$`).Error)
			lookup := func() string {
				var l Language
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
				return l.Name
			}
			e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
			must(t, c.run(e.db))
			var inDB string
			must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
			if inDB == "go" {
				t.Fatalf("claim(authors) did not run: the probe proves nothing")
			}
			if got := lookup(); got != inDB {
				t.Errorf("First(&Language{}, 7) served %q; the database holds %q: the statement GORM built read authors.claim, i.e. called the volatile claim(authors) by attribute notation, which wrote languages; callsHiddenWriter is only consulted for SQL the user wrote", got, inDB)
			}
		})
	}
}

// BUG (stale read, C1): a PostgreSQL view whose definition calls a
// volatile function of the user's writes whenever it is read. Neither
// path looks into it: for SQL the user wrote, rawChange asks mayWrite
// (calls the text shows: none) and callsHiddenWriter (functions on the
// view's row type: none); for a statement GORM built, recordRawWrite
// returns at once (no call in the text). The view's relations are
// learned (depFacts.bases) but not the functions its _RETURN rule calls.
// Reading h14_claims wrote languages, and the cached language stays.
func TestHostile14ViewCallingWriterFunction(t *testing.T) {
	pg := h14Postgres(t)
	cases := []struct {
		name string
		run  func(db *gorm.DB) error
	}{
		{"raw SELECT from the view", func(db *gorm.DB) error {
			var rows []map[string]any
			return db.Raw("SELECT * FROM h14_claims").Scan(&rows).Error
		}},
		{"Table(view).Find", func(db *gorm.DB) error {
			var rows []map[string]any
			return db.Table("h14_claims").Find(&rows).Error
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
			must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
			must(t, e.db.Exec(`CREATE FUNCTION h14_claim(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE languages SET name = 'claimed by ' || x WHERE id = 7; RETURN x; END $$`).Error)
			must(t, e.db.Exec(`CREATE VIEW h14_claims AS SELECT id, h14_claim(id) AS claimed FROM authors`).Error)
			lookup := func() string {
				var l Language
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
				return l.Name
			}
			e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
			must(t, c.run(e.db))
			var inDB string
			must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
			if inDB == "go" {
				t.Fatalf("the view's function did not run: the probe proves nothing")
			}
			if got := lookup(); got != inDB {
				t.Errorf("First(&Language{}, 7) served %q; the database holds %q: reading the view h14_claims called its volatile h14_claim(), which wrote languages; nothing was invalidated", got, inDB)
			}
		})
	}
}
