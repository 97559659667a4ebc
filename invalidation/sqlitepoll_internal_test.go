package invalidation

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"querycache.dev/querycache"
)

// BenchmarkSQLitePoll measures one poll: PRAGMA data_version on the
// poller's prepared statement, as the poller's goroutine runs it every
// Interval (no change seen, so no invalidation).
func BenchmarkSQLitePoll(b *testing.B) {
	for _, mode := range []string{"WAL", "DELETE"} {
		b.Run(mode, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.db")
			dsn := "file:" + path + "?_journal_mode=" + mode
			db, err := sql.Open("sqlite3", dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INT)"); err != nil {
				b.Fatal(err)
			}
			cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
			if err != nil {
				b.Fatal(err)
			}
			defer cache.Close()
			p, err := NewSQLitePoller(cache, SQLitePollOptions{DSN: dsn})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			// The poll alone, without the loop: connect as Start does,
			// with the stall timer the loop arms around each poll.
			p.stall = time.AfterFunc(time.Hour, p.onStall)
			p.stall.Stop()
			ctx := context.Background()
			if err := p.connect(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.poll(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSQLitePollChange measures what a detected change costs on top
// of the poll: PRAGMA schema_version and the invalidation of every table of
// a database of 20 tables (42 versions) in the memory store.
func BenchmarkSQLitePollChange(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	dsn := "file:" + path + "?_journal_mode=WAL"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < 20; i++ {
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE t%d (id INTEGER PRIMARY KEY, n INT)", i)); err != nil {
			b.Fatal(err)
		}
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	p, err := NewSQLitePoller(cache, SQLitePollOptions{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	p.stall = time.AfterFunc(time.Hour, p.onStall)
	p.stall.Stop()
	ctx := context.Background()
	if err := p.connect(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := p.onChange(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(p.Stats().Tables), "tables")
}
