package gormcache_test

import (
	"fmt"
	"strings"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// h15Invalidations runs fn and returns the invalidations it applied,
// described, and whether one of them replaced the global epoch.
func h15Invalidations(t *testing.T, e *env, fn func()) (string, bool) {
	t.Helper()
	n0 := e.cache.Stats().Invalidations
	fn()
	var b strings.Builder
	all := false
	for _, r := range invalidationsSince(e, n0) {
		fmt.Fprintf(&b, "[%s tables=%v rows=%d all=%v] ", r.Cause, r.Tables, r.Rows, r.All)
		all = all || r.All
	}
	return b.String(), all
}

// invalidationsSince returns the invalidations the cache applied since
// its Stats counted n0, newest first (as many as its ring still holds).
func invalidationsSince(e *env, n0 uint64) []querycache.InvalidationRecord {
	recs := e.cache.RecentInvalidations()
	if n := e.cache.Stats().Invalidations - n0; uint64(len(recs)) > n {
		recs = recs[:n]
	}
	return recs
}

// h15Ordinary runs an ordinary app's statements (an Update by primary
// key, a Find, a Count, a Pluck of authors) and reports every one that
// invalidated everything, or that left the cached, unrelated language
// (First(&Language{}, 7)) no longer served.
func h15Ordinary(t *testing.T, e *env) []string {
	t.Helper()
	lang := func() error {
		var l Language
		return e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error
	}
	steps := []struct {
		name string
		run  func() error
	}{
		{"Model(&Author{ID: 1}).Update(name)", func() error {
			return e.db.Model(&Author{ID: 1}).Update("name", "renamed").Error
		}},
		{"Find(&authors) (a miss)", func() error {
			var as []Author
			return e.db.Where("id > ?", 0).Find(&as).Error
		}},
		{"Model(&Author{}).Count", func() error {
			var n int64
			return e.db.Model(&Author{}).Count(&n).Error
		}},
		{"Model(&Author{}).Pluck(name)", func() error {
			var ns []string
			return e.db.Model(&Author{}).Pluck("name", &ns).Error
		}},
		{"Create(&Author{})", func() error {
			return e.db.Create(&Author{ID: 3, Name: "three"}).Error
		}},
		{"Delete(&Author{ID: 3})", func() error {
			return e.db.Delete(&Author{ID: 3}).Error
		}},
	}
	var bad []string
	must(t, lang())
	if n := e.statements(func() { must(t, lang()) }); n != 0 {
		return []string{fmt.Sprintf("First(&Language{}, 7) run twice sent %d statements the second time: its own miss invalidated everything, so no read is ever served from the cache", n)}
	}
	for _, s := range steps {
		e.mustBeCached(t, "First(&Language{}, 7)", lang)
		desc, all := h15Invalidations(t, e, func() { must(t, s.run()) })
		n := e.statements(func() { must(t, lang()) })
		if all || n != 0 {
			bad = append(bad, fmt.Sprintf("%s invalidated everything (%s; the unrelated cached language then sent %d statements)", s.name, desc, n))
		}
	}
	return bad
}

func h15Setup(t *testing.T, e *env, ddl string) {
	t.Helper()
	must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
	must(t, e.db.Create(&Author{ID: 2, Name: "two"}).Error)
	must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
	for _, q := range splitTopLevel(ddl) {
		if strings.TrimSpace(q) != "" {
			must(t, e.db.Exec(q).Error)
		}
	}
}

// PASSES (kept): an ordinary application on PostgreSQL with STABLE and
// IMMUTABLE functions of its own, and a VOLATILE one on no table's row,
// is not made to invalidate everything by the new checks: an Update by
// key, a Find, a Count, a Pluck, a Create and a Delete of authors leave
// the unrelated cached language served.
func TestHostile15OrdinaryAppNotOverInvalidated(t *testing.T) {
	pg := h14Postgres(t)
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	h15Setup(t, e, `CREATE FUNCTION h15_tenant() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT 1::bigint $$;
CREATE FUNCTION h15_slug(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT lower(x) $$;
CREATE FUNCTION h15_bump(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$ BEGIN UPDATE languages SET name = name WHERE id = x; RETURN x; END $$;
CREATE FUNCTION h15_name(a authors) RETURNS text LANGUAGE sql STABLE AS $$ SELECT a.name $$`)
	for _, b := range h15Ordinary(t, e) {
		t.Error(b)
	}
}

// BUG (over-invalidation: the cache is useless for the table, and for
// every table when the function is generic): callsHiddenWriter (writes.go)
// counts a statement as calling a volatile function by attribute
// notation (authors.h15_archive) whenever it reads or writes a table on
// whose row type such a function exists (depFacts.rowWriter), whether or
// not the statement's text names the function. Since today it is asked
// for every GORM-built read that reaches the database (query.go
// recordRawWrite) and every GORM-built write (writes.go writeChange). A
// function called only explicitly, archive_author(a authors) (a common
// PL/pgSQL shape: "copy this row to the archive"), makes every Update by
// key of an author, every Create and Delete, and every cache miss of a
// plain Find/Count/Pluck of authors invalidate EVERY cached entry of
// every table. A volatile function of one anyelement or record argument
// (log_row(anyelement), notify_row(record)) does so for every table of
// the database. Attribute notation needs the function's name in the
// text (a.h15_archive): none of these statements shows it.
func TestHostile15RowFunctionNotCalledInvalidatesAll(t *testing.T) {
	pg := h14Postgres(t)
	cases := []struct{ name, ddl string }{
		{"archive(a authors), never called", `CREATE TABLE h15_archive_rows (id bigint, name text);
CREATE FUNCTION h15_archive(a authors) RETURNS void LANGUAGE plpgsql VOLATILE AS $$ BEGIN INSERT INTO h15_archive_rows VALUES (a.id, a.name); END $$`},
		{"log_row(anyelement), never called", `CREATE TABLE h15_log (v text);
CREATE FUNCTION h15_log_row(x anyelement) RETURNS void LANGUAGE plpgsql VOLATILE AS $$ BEGIN INSERT INTO h15_log VALUES (x::text); END $$`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.Contains(c.name, "anyelement") {
				// Not an invalidation: a volatile function of any row may be
				// called on any table's rows (o.f), so every table's reads
				// are refused (row_function), the function named or not.
				t.Skip("known limitation: a non-immutable function of anyelement or record refuses every table's reads (README)")
			}
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			h15Setup(t, e, c.ddl)
			for _, b := range h15Ordinary(t, e) {
				t.Errorf("%s: callsHiddenWriter took the table's row-typed volatile function, which the statement does not name, for a call", b)
			}
		})
	}
}

// BUG (over-invalidation): a materialized view's _RETURN rule depends on
// the functions its query calls, so dependents.go gives it a 'w' row and
// callsHiddenWriter (writes.go) takes every read of it for a call: reading a
// materialized view runs no function (the rows are stored; only REFRESH
// runs the query, and it is a write of its own). A helper left unlabeled
// (VOLATILE is PostgreSQL's default, the usual case for a SQL function
// nobody marked) in a materialized view's query makes every plain read of
// the materialized view invalidate EVERY cached entry.
func TestHostile15MaterializedViewReadInvalidatesAll(t *testing.T) {
	pg := h14Postgres(t)
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	h15Setup(t, e, `CREATE FUNCTION h15_initial(s text) RETURNS text LANGUAGE sql AS $$ SELECT left(s, 1) $$;
CREATE MATERIALIZED VIEW h15_initials AS SELECT id, h15_initial(name) AS initial FROM authors`)
	e.mustBeCached(t, "First(&Language{}, 7)", func() error {
		var l Language
		return e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error
	})
	steps := []struct {
		name string
		run  func() error
	}{
		{"Table(matview).Find", func() error {
			var rows []map[string]any
			return e.db.Table("h15_initials").Find(&rows).Error
		}},
		{"raw SELECT from the matview", func() error {
			var rows []map[string]any
			return e.db.Raw("SELECT * FROM h15_initials").Scan(&rows).Error
		}},
	}
	for _, s := range steps {
		desc, all := h15Invalidations(t, e, func() { must(t, s.run()) })
		if all {
			t.Errorf("%s invalidated everything (%s): a read of a materialized view runs none of its query's functions, but its _RETURN rule's dependency on the unlabeled (VOLATILE) h15_initial made callsHiddenWriter take it for a writer", s.name, desc)
		}
	}
}
