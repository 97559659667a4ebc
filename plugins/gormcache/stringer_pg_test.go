package gormcache_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

type pgColor int32

func (c pgColor) String() string { return map[pgColor]string{1: "red"}[c] }

type pgSize int32

func (s pgSize) String() string { return map[pgSize]string{1: "large"}[s] }

// TestStringerEnumsPostgres: pgx sends a fmt.Stringer bound to a text
// parameter as its String, so name = Color(1) ("red") and name = Size(1)
// ("large") are two queries; keyed by their integer alone, the second was
// served the first's rows (a hostile run, issue 8's forty-first session:
// protobuf enums have this shape).
func TestStringerEnumsPostgres(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	db := pgOpenQuiet(t, postgres.Open(dsn))
	must(t, db.Exec("CREATE TABLE enum_rows (id int PRIMARY KEY, name text)").Error)
	must(t, db.Exec("INSERT INTO enum_rows VALUES (1, 'red'), (2, 'large')").Error)
	must(t, db.Use(gormcache.New(identityCache(t))))
	cached := db.WithContext(gormcache.WithCache(context.Background(), time.Minute))
	read := func(v any) []int {
		var ids []int
		must(t, cached.Table("enum_rows").Where("name = ?", v).Order("id").Pluck("id", &ids).Error)
		return ids
	}
	if got := read(pgColor(1)); len(got) != 1 || got[0] != 1 {
		t.Fatalf("name = Color(1): %v; want [1]", got)
	}
	if got := read(pgSize(1)); len(got) != 1 || got[0] != 2 {
		t.Fatalf("name = Size(1): %v; want [2] (Color(1)'s rows were served)", got)
	}
}
