package gormcache_test

import (
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// hwRelDay is an enum whose String is a PostgreSQL special time word: pgx
// sends a fmt.Stringer bound to a date/time parameter as its String (in
// text format, after the binary plan fails), and PostgreSQL reads 'now'
// as the statement's clock. purity.go's timeWord read only strings, bytes
// and Valuers, and took the integer kind for a number: the count was
// cached (a hostile run, issue 8's forty-second session). It now reads
// the String too (keys.StringerText), and refuses.
type hwRelDay int

func (d hwRelDay) String() string { return [...]string{"yesterday", "today", "now", "tomorrow"}[d] }

const hwNow hwRelDay = 2

// A cached clock reading would serve the count of rows older than 'now'
// after the clock has passed a row's time, with no write in between.
func TestHostileWStringerTimeWord(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.Exec("CREATE TABLE hw_ev (id integer PRIMARY KEY, at timestamptz NOT NULL)").Error)
	must(t, e.db.Exec("INSERT INTO hw_ev VALUES (1, now() + interval '300 milliseconds')").Error)
	count := func(cached bool) int64 {
		var n int64
		q := e.db.Scopes(gormcache.NoCache())
		if cached {
			q = e.db.Scopes(gormcache.Cacheable())
		}
		must(t, q.Table("hw_ev").Where("at < ?", hwNow).Count(&n).Error)
		return n
	}
	if n := count(true); n != 0 {
		t.Fatalf("count before: %d", n)
	}
	time.Sleep(600 * time.Millisecond)
	want, got := count(false), count(true)
	if want != 1 {
		t.Fatalf("database count %d; want 1 (the row's time has passed)", want)
	}
	if got != want {
		t.Errorf("STALE: cached count %d of rows older than 'now'; database %d", got, want)
	}
}
