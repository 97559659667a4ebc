package gormcache

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"querycache.dev/querycache"
)

func TestParseLSN(t *testing.T) {
	for in, want := range map[string]uint64{
		"0/0": 0, "0/16B3748": 0x16B3748, "1/0": 1 << 32, "FFFFFFFF/FFFFFFFF": math.MaxUint64, "a/B": 0xa<<32 | 0xb,
	} {
		if got, ok := parseLSN(in); !ok || got != want {
			t.Errorf("parseLSN(%q) = %x, %v; want %x", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "0", "/", "0/", "/0", "x/0", "100000000/0", "0/-1", "0/0/0"} {
		if _, ok := parseLSN(bad); ok {
			t.Errorf("parseLSN(%q) accepted", bad)
		}
	}
}

// TestFenceNote: fences only rise; a position that could not be read
// fences its tables until a later one is read; past maxFenceTables the
// tables fold into the global fence.
func TestFenceNote(t *testing.T) {
	var f replicaFence
	f.note(querycache.Change{Tables: []string{"public.Users"}}, 10)
	f.note(querycache.Change{Rows: []querycache.Row{{Table: "users", PK: "1"}}}, 5)
	if got := f.required([]string{"users"}); got != 10 {
		t.Errorf("users fence %d, want 10 (fences never fall)", got)
	}
	if got := f.required([]string{"orders"}); got != 0 {
		t.Errorf("orders fence %d", got)
	}
	f.note(querycache.Change{Tables: []string{"orders"}}, math.MaxUint64)
	if got := f.required([]string{"orders"}); got != math.MaxUint64 {
		t.Errorf("unknown position: fence %d", got)
	}
	f.note(querycache.Change{Tables: []string{"items"}}, 20)
	if got := f.required([]string{"orders"}); got != 20 {
		t.Errorf("after a later position: orders fence %d, want 20", got)
	}
	f.note(querycache.Change{All: true}, 30)
	if got := f.required([]string{"items"}); got != 30 {
		t.Errorf("global fence not applied: %d", got)
	}
	for i := range maxFenceTables + 1 {
		f.note(querycache.Change{Tables: []string{fmt.Sprintf("t%d", i)}}, uint64(100+i))
	}
	if len(f.tables) > maxFenceTables {
		t.Errorf("overflow: %d tables kept", len(f.tables))
	}
	for i := range maxFenceTables + 1 {
		if got := f.required([]string{fmt.Sprintf("t%d", i)}); got < uint64(100+i) {
			t.Fatalf("overflow: t%d fence %d fell below %d", i, got, 100+i)
		}
	}
}

// TestPositionRounds: every caller gets a position read after it asked
// (at least the position it saw itself just before), and concurrent
// callers share reads. Run with -race.
//
// It runs beside the other parallel tests: its schema, pool and plugin are
// its own, and their writes only move the server's WAL position forward,
// which a caller's check (a position at least the one it saw) allows.
func TestPositionRounds(t *testing.T) {
	t.Parallel()
	db := pgSchemaDB(t)
	db.SetMaxOpenConns(40)
	// Every caller writes before it asks, so the WAL moves while rounds run
	// and a position read before a caller asked would be seen as too low.
	if _, err := db.Exec("CREATE TABLE w (n int)"); err != nil {
		t.Fatal(err)
	}
	p := &Plugin{inner: db}
	var wg sync.WaitGroup
	const callers, calls = 24, 15 // 40 calls each cost PostgreSQL 14 s of CPU (a commit each)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				var s string
				if err := db.QueryRow("INSERT INTO w VALUES (1) RETURNING pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
					t.Error(err)
					return
				}
				before, _ := parseLSN(s)
				got, err := p.primaryPositionAfter(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if got < before {
					t.Errorf("position %x read before the call began (%x seen first)", got, before)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d calls, %d reads", callers*calls, p.rf.fenceReads.Load())
	if n := p.rf.fenceReads.Load(); n > callers*calls {
		t.Errorf("%d reads for %d calls", n, callers*calls)
	}
}
