package gormcache_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// TestSimpleProtocolKeyedApart: pgx's simple protocol writes a []byte
// into the SQL as the text '\x6869', which matches another row of a text
// column than the bytes sent as a parameter by the extended protocol. Two
// *gorm.DB on one DSN, one with PreferSimpleProtocol, share a cache (as
// two processes share Redis): each gets its own protocol's rows (a
// hostile run, issue 8's forty-first session: the simple one was served
// the extended one's).
func TestSimpleProtocolKeyedApart(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	c := identityCache(t)
	open := func(simple bool) *gorm.DB {
		return pgOpenQuiet(t, postgres.New(postgres.Config{DSN: dsn, PreferSimpleProtocol: simple}))
	}
	ext, simple := open(false), open(true)
	must(t, ext.Exec("CREATE TABLE proto_rows (id bigint PRIMARY KEY, name text)").Error)
	must(t, ext.Exec(`INSERT INTO proto_rows VALUES (1, 'hi'), (2, '\x6869')`).Error)
	must(t, ext.Use(gormcache.New(c)))
	must(t, simple.Use(gormcache.New(c)))
	read := func(db *gorm.DB) []int {
		var ids []int
		must(t, db.WithContext(gormcache.WithCache(context.Background(), time.Minute)).
			Table("proto_rows").Where("name = ?", []byte("hi")).Order("id").Pluck("id", &ids).Error)
		return ids
	}
	var want []int
	must(t, simple.Scopes(gormcache.NoCache()).Table("proto_rows").Where("name = ?", []byte("hi")).Order("id").Pluck("id", &want).Error)
	read(ext)
	if got := read(simple); len(got) != len(want) || len(got) > 0 && got[0] != want[0] {
		t.Fatalf("the simple protocol's read: %v; its database answers %v", got, want)
	}
}
