package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func h14Postgres(t *testing.T) dbKind {
	t.Helper()
	for _, d := range databases {
		if d.name == "postgres" {
			return d
		}
	}
	t.Skip("no postgres database kind")
	return dbKind{}
}

// BUG (stale read, C1): pgCatalogReaders (purity.go) skips every call of
// a listed name (lower, upper, count, format, length, ...) that is
// unqualified, on the ground that "an unqualified call resolves to
// pg_catalog's function first". PostgreSQL does not resolve functions by
// schema order alone: schema order only breaks ties between functions of
// IDENTICAL argument types; overloads of different argument types, in any
// schema on the search_path, compete on equal footing and the best type
// match wins. A user function lower(bigint) in the application's schema is
// therefore what `lower(id)` calls for a bigint id (pg_catalog has only
// lower(text), lower(anyrange), lower(anymultirange), none of which an
// integer converts to implicitly). When that function writes, a GORM-built
// statement calling it (a Pluck, a Select, an Update's gorm.Expr) is taken
// to write nothing: what the function changed stays cached.
func TestHostile14CatalogReaderNameOverloadedOnSearchPath(t *testing.T) {
	pg := h14Postgres(t)
	cases := []struct {
		name string
		fn   string // CREATE FUNCTION ... in the test's schema (on the search_path)
		run  func(db *gorm.DB) error
	}{
		{
			name: "Pluck(lower(id))",
			fn: `CREATE FUNCTION lower(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE authors SET name = 'changed by lower(bigint)' WHERE id = 2; RETURN x; END $$`,
			run: func(db *gorm.DB) error {
				var ids []int64
				return db.Model(&Author{}).Where("id = ?", 1).Pluck("lower(id)", &ids).Error
			},
		},
		{
			name: "Update with gorm.Expr(format(id))",
			fn: `CREATE FUNCTION format(x bigint) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE authors SET name = 'changed by format(bigint)' WHERE id = 2; RETURN 'n' || x; END $$`,
			run: func(db *gorm.DB) error {
				return db.Model(&Author{ID: 1}).Update("name", gorm.Expr("format(id)")).Error
			},
		},
		{
			name: "Count over a user aggregate named count",
			fn: `CREATE FUNCTION h14_cnt(s bigint, x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE authors SET name = 'changed by count(bigint)' WHERE id = 2; RETURN s + 1; END $$;
CREATE AGGREGATE count(bigint) (SFUNC = h14_cnt, STYPE = bigint, INITCOND = '0')`,
			run: func(db *gorm.DB) error {
				var n int64
				return db.Model(&Author{}).Select("count(id)").Where("id = ?", 1).Scan(&n).Error
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, pg, memoryStore, querycache.Options{})
			must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
			must(t, e.db.Create(&Author{ID: 2, Name: "two"}).Error)
			for _, q := range splitTopLevel(c.fn) {
				must(t, e.db.Exec(q).Error)
			}
			lookup := func() string {
				var a Author
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&a, 2).Error)
				return a.Name
			}
			e.mustBeCached(t, "First(2)", func() error { lookup(); return nil })
			must(t, c.run(e.db))
			var inDB string
			must(t, e.db.Raw("SELECT name FROM authors WHERE id = 2").Scan(&inDB).Error)
			if inDB == "two" {
				t.Fatalf("the user's function was not the one called (author 2 unchanged): the probe proves nothing")
			}
			if got := lookup(); got != inDB {
				t.Errorf("First(2) served %q from the cache; the database holds %q: the statement called the user's overload on the search_path, which wrote authors, but purity.go's pgCatalogReaders took the unqualified call for pg_catalog's and invalidated nothing", got, inDB)
			}
		})
	}
}

// splitTopLevel splits text at ";\n" boundaries (the probes' DDL has no
// such sequence inside a body).
func splitTopLevel(s string) []string {
	var out []string
	start := 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] == ';' && s[i+1] == '\n' {
			out = append(out, s[start:i])
			start = i + 2
		}
	}
	return append(out, s[start:])
}

// BUG (stale read, C1; and a volatile result cached): sqlinspect reports a
// quoted function name lower-cased ("Lower"(x) as lower), and the plugin's
// function list is keyed by the lower-cased proname too (functionsOn:
// m[strings.ToLower(name)] |= f). In PostgreSQL a quoted name keeps its
// case: "Lower" is another function than pg_catalog's lower. So:
//   - mayWrite skips "Lower"(name) as the pg_catalog reader lower
//     (isPgCatalogReader), and the writes of the user's volatile "Lower"
//     are never invalidated;
//   - purityRefusal finds the merged flags of lower and "Lower": the
//     flags are OR-ed, so pg_catalog.lower's fnImmutable makes the
//     volatile "Lower" look immutable, and a marked read calling it is
//     cached (its second call is served the first call's value).
func TestHostile14QuotedMixedCaseFunctionTakenForBuiltin(t *testing.T) {
	pg := h14Postgres(t)
	t.Run("writer not invalidated", func(t *testing.T) {
		e := newEnv(t, pg, memoryStore, querycache.Options{})
		must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
		must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
		must(t, e.db.Exec(`CREATE FUNCTION "Lower"(x text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE languages SET name = 'written by "Lower"' WHERE id = 7; RETURN lower(x); END $$`).Error)
		lookup := func() string {
			var l Language
			must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
			return l.Name
		}
		e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
		var names []string
		must(t, e.db.Model(&Author{}).Where("id = ?", 1).Pluck(`"Lower"(name)`, &names).Error)
		var inDB string
		must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
		if inDB == "go" {
			t.Fatalf(`"Lower" did not run: the probe proves nothing`)
		}
		if got := lookup(); got != inDB {
			t.Errorf(`First(&Language{}, 7) served %q; the database holds %q: the Pluck called the user's volatile "Lower"(text), which the plugin read as pg_catalog's lower (names lower-cased) and skipped`, got, inDB)
		}
	})
	t.Run("volatile result cached", func(t *testing.T) {
		e := newEnv(t, pg, memoryStore, querycache.Options{})
		must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
		must(t, e.db.Exec(`CREATE SEQUENCE h14_ticks`).Error)
		must(t, e.db.Exec(`CREATE FUNCTION "Lower"(x text) RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT x || nextval('h14_ticks') $$`).Error)
		read := func() string {
			var s string
			must(t, e.db.Scopes(gormcache.Cacheable()).Model(&Author{}).Select(`"Lower"(name)`).Where("id = ?", 1).Scan(&s).Error)
			return s
		}
		first := read()
		var n int64
		if n = e.statements(func() { read() }); n == 0 {
			t.Errorf(`a marked read calling the volatile "Lower"(name) was served from the cache (%q again): purityRefusal found pg_catalog.lower's IMMUTABLE flag OR-ed into the same lower-cased name`, first)
		}
	})
}

// KNOWN LIMITATION, documented in the README (trust in labels): mayWrite
// counts as a writer only
// a VOLATILE function (pg_proc bool_or(provolatile = 'v')). PostgreSQL
// does not enforce volatility transitively: a STABLE (or IMMUTABLE)
// PL/pgSQL function may call a VOLATILE one, whose UPDATE runs and
// commits (checked on PostgreSQL 15: SELECT stable_wrapper() updates).
// Functions get marked STABLE for the planner while calling a logging or
// claiming helper. The read is not cached (not IMMUTABLE: refused), but
// what it wrote is never invalidated.
//
// Kept, skipped: PostgreSQL's documentation says a STABLE function cannot
// modify the database, and counting every STABLE function as a writer
// would make each uncached read calling one (a tenant lookup in a WHERE)
// invalidate everything. The plugin trusts the labels, as the planner
// does.
func TestHostile14StableFunctionCallingWriter(t *testing.T) {
	t.Skip("known limitation (README, Limitations): a STABLE function that calls a VOLATILE writer is trusted as STABLE")
	pg := h14Postgres(t)
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
	must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
	must(t, e.db.Exec(`CREATE FUNCTION h14_touch(x bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
BEGIN UPDATE languages SET name = 'touched by ' || x WHERE id = 7; RETURN x; END $$`).Error)
	must(t, e.db.Exec(`CREATE FUNCTION h14_score(x bigint) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN RETURN h14_touch(x); END $$`).Error)
	lookup := func() string {
		var l Language
		must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
		return l.Name
	}
	e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
	var scores []int64
	must(t, e.db.Model(&Author{}).Where("id = ?", 1).Pluck("h14_score(id)", &scores).Error)
	var inDB string
	must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
	if inDB == "go" {
		t.Fatalf("the STABLE wrapper did not write: the probe proves nothing")
	}
	if got := lookup(); got != inDB {
		t.Errorf("First(&Language{}, 7) served %q; the database holds %q: Pluck(h14_score(id)) called a STABLE function that calls a VOLATILE writer; mayWrite trusts the STABLE label", got, inDB)
	}
}
