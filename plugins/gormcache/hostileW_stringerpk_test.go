package gormcache_test

import (
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review W: a primary-key value of a named integer type with a
// String method, bound to a text key column on PostgreSQL.
//
// FINDING (stale read, C1): pgx sends a non-Valuer fmt.Stringer of an
// integer kind to a text parameter as its String() (TryWrapStringerEncodePlan,
// after the integer plan fails for text), so code = Color(1) reads the row
// 'red'. canonicalPK (rows.go) -> keys.PK (keys/pk.go) names it by its
// integer, "1" (reflect.Int branch): the read is keyed obj:hw_codes:1, a
// write of that row by its text key bumps obj:hw_codes:red (and tbl, which
// an object lookup does not depend on), and vice versa. Commit 6ede48e
// taught keys.AppendValue (the entry key) about Stringers, not keys.PK.
// Fixed: keys.PK names no row for such a value (the statement is one on
// the table).

type hwColor int32

func (c hwColor) String() string { return map[hwColor]string{1: "red", 2: "blue"}[c] }

type HWCode struct {
	Code string `gorm:"primaryKey"`
	V    int
}

func (HWCode) TableName() string { return "hw_codes" }

func hwStringerEnv(t *testing.T) *env {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.Exec("CREATE TABLE hw_codes (code text PRIMARY KEY, v integer NOT NULL)").Error)
	must(t, e.db.Exec("INSERT INTO hw_codes VALUES ('red', 1), ('1', 100), ('blue', 7)").Error)
	return e
}

// Read by the enum, write by the row's text key.
func TestHostileWStringerPKReadByEnum(t *testing.T) {
	e := hwStringerEnv(t)
	get := func(cached bool) HWCode {
		var r HWCode
		q := e.db.Scopes(gormcache.NoCache())
		if cached {
			q = e.db.Scopes(gormcache.Cacheable())
		}
		must(t, q.Where("code = ?", hwColor(1)).First(&r).Error)
		return r
	}
	if r := get(true); r.Code != "red" || r.V != 1 {
		t.Fatalf("code = Color(1) read %+v; want red/1 (pgx sends String())", r)
	}
	e.mustBeCached(t, "read by enum", func() error { get(true); return nil })
	must(t, e.db.Model(&HWCode{Code: "red"}).Update("v", 2).Error)
	want, got := get(false), get(true)
	if got != want {
		t.Errorf("STALE: cached %+v, database %+v", got, want)
	}
}

// Read by the text key, write by the enum.
func TestHostileWStringerPKWriteByEnum(t *testing.T) {
	e := hwStringerEnv(t)
	get := func(cached bool) HWCode {
		var r HWCode
		q := e.db.Scopes(gormcache.NoCache())
		if cached {
			q = e.db.Scopes(gormcache.Cacheable())
		}
		must(t, q.Where("code = ?", "blue").First(&r).Error)
		return r
	}
	get(true)
	e.mustBeCached(t, "read by text", func() error { get(true); return nil })
	must(t, e.db.Model(&HWCode{}).Where("code = ?", hwColor(2)).Update("v", 8).Error)
	want, got := get(false), get(true)
	if want.V != 8 {
		t.Fatalf("write by enum did not reach row blue: %+v", want)
	}
	if got != want {
		t.Errorf("STALE: cached %+v, database %+v", got, want)
	}
}

// HWEnumRow's key field is the enum itself, stored in a text column: pgx
// writes String() ("blue"), the plugin names the created row by the
// integer (2).
type HWEnumRow struct {
	Code hwColor `gorm:"primaryKey;type:text;autoIncrement:false"`
	V    int
}

func (HWEnumRow) TableName() string { return "hw_codes" }

// A cached "not found" of the text key survives the Create of that row.
func TestHostileWStringerPKCreate(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.Exec("CREATE TABLE hw_codes (code text PRIMARY KEY, v integer NOT NULL)").Error)
	get := func(cached bool) (HWCode, error) {
		var r HWCode
		q := e.db.Scopes(gormcache.NoCache())
		if cached {
			q = e.db.Scopes(gormcache.Cacheable())
		}
		err := q.Where("code = ?", "blue").Take(&r).Error
		return r, err
	}
	_, err := get(true)
	if err == nil {
		t.Fatal("row blue exists before the create")
	}
	e.mustBeCached(t, "not found blue", func() error { get(true); return nil })
	must(t, e.db.Create(&HWEnumRow{Code: hwColor(2), V: 5}).Error)
	want, errW := get(false)
	got, errG := get(true)
	if errW != nil {
		t.Fatalf("database has no row blue after the create: %v", errW)
	}
	if errG != nil || got != want {
		t.Errorf("STALE: cached %+v (%v), database %+v", got, errG, want)
	}
}
