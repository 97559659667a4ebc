package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BUG (stale read, C1): callsHiddenWriter (writes.go) counts a relation
// whose facts cannot be learned now as one that calls nothing
// (depFactsOf returns nil: "continue"). A read GORM built through Row()
// or Rows() keeps its connection busy (recordRawWrite: learn=false), and
// on a pool with no spare connection (SetMaxOpenConns(1), or every
// connection in use under load) the view's facts are not learned: the
// read of a view calling a volatile writer invalidates nothing. mayWrite
// does the opposite for the same situation ("a map not known yet counts
// as may write").
func TestHostile15ViewWriterReadByRowOnBusyPool(t *testing.T) {
	pg := h14Postgres(t)
	cases := []struct {
		name string
		run  func(db *gorm.DB) error
	}{
		{"Table(view).Row()", func(db *gorm.DB) error {
			var id, c int64
			return db.Table("h15_claims").Where("id = ?", 1).Row().Scan(&id, &c)
		}},
		{"Table(view).Rows()", func(db *gorm.DB) error {
			rows, err := db.Table("h15_claims").Rows()
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			return rows.Close()
		}},
		{"Raw(SELECT * FROM view).Rows()", func(db *gorm.DB) error {
			rows, err := db.Raw("SELECT * FROM h15_claims").Rows()
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			return rows.Close()
		}},
	}
	for _, c := range cases {
		for _, maxOpen := range []int{1, 0} {
			name := c.name + ", MaxOpenConns(1)"
			if maxOpen == 0 {
				name = c.name + ", spare connections (control)"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, pg, memoryStore, querycache.Options{})
				sqlDB, err := e.db.DB()
				must(t, err)
				sqlDB.SetMaxOpenConns(maxOpen)
				must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
				must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
				must(t, e.db.Exec(h15WriterFn).Error)
				must(t, e.db.Exec(`CREATE VIEW h15_claims AS SELECT id, h15_w(id) AS claimed FROM authors`).Error)
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
					t.Errorf("First(&Language{}, 7) served %q; the database holds %q: %s read the view h15_claims, whose query calls the volatile h15_w, on a pool of one busy connection; callsHiddenWriter could not learn the view's facts and took it for one that calls nothing", got, inDB, c.name)
				}
			})
		}
	}
}

// BUG (stale read, C1): mayWrite (purity.go) takes an unqualified
// built-in name for pg_catalog's function when the function list is not
// known now ("every connection busy: pg_catalog's"). Every DDL forgets
// the list; a Row() keeps the statement's connection busy, and on a pool
// of one no other is free, so the list cannot be read: lower(id) is
// skipped although the application has just created a volatile
// lower(bigint) on the search_path, which PostgreSQL calls for a bigint
// id and which wrote languages.
func TestHostile15CatalogReaderNameUnknownListOnBusyPool(t *testing.T) {
	pg := h14Postgres(t)
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	sqlDB, err := e.db.DB()
	must(t, err)
	sqlDB.SetMaxOpenConns(1)
	must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
	must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
	lookup := func() string {
		var l Language
		must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
		return l.Name
	}
	must(t, e.db.Exec(`CREATE FUNCTION lower(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE languages SET name = 'written by lower(bigint)' WHERE id = 7; RETURN x; END $$`).Error)
	e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
	var v int64
	must(t, e.db.Model(&Author{}).Select("lower(id)").Where("id = ?", 1).Row().Scan(&v))
	var inDB string
	must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
	if inDB == "go" {
		t.Fatalf("lower(bigint) did not run: the probe proves nothing")
	}
	if got := lookup(); got != inDB {
		t.Errorf("First(&Language{}, 7) served %q; the database holds %q: Select(lower(id)).Row() on a pool of one called the application's volatile lower(bigint); the function list, forgotten by the CREATE FUNCTION, could not be read on a busy pool and mayWrite took lower for pg_catalog's", got, inDB)
	}
}
