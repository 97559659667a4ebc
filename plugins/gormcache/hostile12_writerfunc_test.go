package gormcache_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// BUG: a statement GORM builds (not db.Raw/db.Exec) that calls a
// PostgreSQL function which writes another table invalidates nothing of
// what the function wrote. README ("What it guarantees"): "SQL whose
// target cannot be determined, or a SELECT calling a function that may
// write, invalidates everything"; TestSelectOfWritingFunction covers only
// Exec, Raw(...).Scan and Raw(...).Row. The GORM forms are common: a
// gapless number taken in an update, Update("no",
// gorm.Expr("next_invoice_no()")) (the DEFAULT form of the same pattern is
// TestHostilePgnColumnDefaultWrites), or a claim function in a Select.
//
// Order of events (first case): (1) Table("h12_tgt").Pluck("v") is filled
// ([0]) and hit; (2) Model(&Counter{}).Select("id, h12_bump(id) AS
// n").Find(&cs) runs: h12_bump is VOLATILE and updates h12_tgt; (3) the
// Pluck is served [0] while the database holds [1]. The same for a Where
// in Count, a marked Pluck (refused as volatile, so not cached, but not
// recorded as a write either), Row(), and an Update whose SET is a
// gorm.Expr calling the function (invalidated as the one counters row).
//
// Root cause: queryCallback and rowCallback record a write only for SQL
// the user wrote (recordRawWrite returns when !raw), and the GORM write
// callbacks build their change in writeChange/withDependents, which follow
// foreign keys and triggers but never look at info.Functions: rawChange is
// the only caller of mayWrite for a statement's own calls.
//
// Fix: in writeChange (writes.go), when len(info.Functions) > 0 and
// p.mayWrite(db, *info, true), return querycache.Change{All: true}, as
// rawChange does (a length check on the common write); in queryCallback
// and rowCallback, for a statement that is not raw, do the same check on
// its inspection (p.inspection of the SQL, memoised per text; only when it
// lists functions) after it ran, and record {All: true} when it may write.
func TestHostile12GormBuiltStatementCallingWriter(t *testing.T) {
	var pg dbKind
	for _, d := range databases {
		if d.name == "postgres" {
			pg = d
		}
	}
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	must(t, e.db.Exec("CREATE TABLE h12_tgt (id int PRIMARY KEY, v int)").Error)
	must(t, e.db.Exec("INSERT INTO h12_tgt VALUES (1, 0)").Error)
	must(t, e.db.Exec("CREATE FUNCTION h12_bump(i bigint) RETURNS int LANGUAGE sql VOLATILE AS 'UPDATE h12_tgt SET v = v + 1 RETURNING v'").Error)
	must(t, e.db.Create(&Counter{N: 1}).Error)

	read := func(db *gorm.DB) []int {
		var vs []int
		must(t, db.Table("h12_tgt").Order("id").Pluck("v", &vs).Error)
		return vs
	}
	cases := []struct {
		name  string
		write func(db *gorm.DB) error
	}{
		{"Select calling the writer (Find, unmarked)", func(db *gorm.DB) error {
			var cs []Counter
			return db.Model(&Counter{}).Select("id, h12_bump(id) AS n").Find(&cs).Error
		}},
		{"Where calling the writer (Count, unmarked)", func(db *gorm.DB) error {
			var n int64
			return db.Model(&Counter{}).Where("h12_bump(id) > ?", 0).Count(&n).Error
		}},
		{"Pluck of the writer (marked: refused as volatile)", func(db *gorm.DB) error {
			var ns []int
			return db.Scopes(gormcache.Cacheable()).Model(&Counter{}).Pluck("h12_bump(id)", &ns).Error
		}},
		{"Row of a Select calling the writer", func(db *gorm.DB) error {
			var n int
			return db.Model(&Counter{}).Select("h12_bump(id)").Row().Scan(&n)
		}},
		{"Update with gorm.Expr calling the writer", func(db *gorm.DB) error {
			return db.Model(&Counter{ID: 1}).Update("n", gorm.Expr("h12_bump(id)")).Error
		}},
	}
	for _, c := range cases {
		e.mustBeCached(t, c.name+": h12_tgt", func() error { read(e.db.Scopes(gormcache.Cacheable())); return nil })
		before := read(e.db.Scopes(gormcache.Cacheable()))
		must(t, c.write(e.db))
		got, want := read(e.db.Scopes(gormcache.Cacheable())), read(e.db)
		if len(got) != len(want) || got[0] != want[0] {
			t.Errorf("%s: h12_tgt is served %v (cached before: %v); the database holds %v", c.name, got, before, want)
		}
	}
}

// BUG (same root cause, session state): README says caching stops on a
// database where session state was changed, set_config included ("Some
// connections are never served from the cache ... any database on which
// session state was changed (SET search_path, SET ROLE, set_config,
// ATTACH)"), but only statements the user wrote are observed (observeRaw
// is called from afterRaw, afterPreset and recordRawWrite, which returns
// for a statement that is not raw). A set_config run in a statement GORM
// builds (Select("set_config(...)"), the form an application uses to set
// a variable its row-level security policies read) changes the
// connection's search_path unseen: marked reads go on being served, and
// filled, as if it had not changed.
//
// Order of events: (1) on a pool of one connection, Table("h12_items2")
// .Pluck("v") is filled ("mine") and hit; (2) Table("h12_items2")
// .Select("set_config('search_path', ?, false)", other).Find runs: the
// connection now reads other.h12_items2; (3) the marked Pluck is served
// "mine" while the same SQL on the database returns "other", and no
// bypass is counted.
//
// Fix: the same as above: for a statement that is not raw, run
// observeRaw's checks (setsConfig, SessionState) on its inspection when it
// calls functions, in queryCallback/rowCallback (and in the write
// callbacks), so that noteSession sees it.
func TestHostile12GormBuiltSetConfig(t *testing.T) {
	var pg dbKind
	for _, d := range databases {
		if d.name == "postgres" {
			pg = d
		}
	}
	e := newEnv(t, pg, memoryStore, querycache.Options{})
	sqlDB, err := e.db.DB()
	must(t, err)
	sqlDB.SetMaxOpenConns(1) // every statement on the connection whose state changes
	var b [6]byte
	_, _ = rand.Read(b[:])
	other := "h12_other_" + hex.EncodeToString(b[:])
	must(t, e.db.Exec("CREATE SCHEMA "+other).Error)
	t.Cleanup(func() { _ = e.db.Exec("DROP SCHEMA " + other + " CASCADE").Error })
	must(t, e.db.Exec("CREATE TABLE h12_items2 (id int PRIMARY KEY, v text)").Error)
	must(t, e.db.Exec("INSERT INTO h12_items2 VALUES (1, 'mine')").Error)
	must(t, e.db.Exec("CREATE TABLE "+other+".h12_items2 (id int PRIMARY KEY, v text)").Error)
	must(t, e.db.Exec("INSERT INTO "+other+".h12_items2 VALUES (1, 'other')").Error)
	read := func(db *gorm.DB) string {
		var vs []string
		must(t, db.Table("h12_items2").Order("id").Pluck("v", &vs).Error)
		return vs[0]
	}
	e.mustBeCached(t, "h12_items2", func() error { read(e.db.Scopes(gormcache.Cacheable())); return nil })

	var x []map[string]any
	must(t, e.db.Table("h12_items2").Select("set_config('search_path', ?, false) AS x", other).Limit(1).Find(&x).Error)

	got, want := read(e.db.Scopes(gormcache.Cacheable())), read(e.db)
	if got != want {
		t.Errorf("after set_config in a GORM-built SELECT: the marked read is served %q; the same SQL on the database (the pool's one connection) returns %q; bypasses counted: %v", got, want, e.cache.Stats().Bypasses)
	}
}
