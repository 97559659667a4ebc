package querycache

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"
)

// TestHostilePostgresLongNames: keys and version names are any bytes of
// any length (the Redis and memory stores take them), but a PostgreSQL
// btree index row holds at most about 2700 bytes. A long incompressible
// key or version name must still round-trip, and must not count as a
// store failure (five of them opened the breaker: every query of every
// key bypassed the cache, and the probe replaced the epoch).
func TestHostilePostgresLongNames(t *testing.T) {
	schema := pgTestSchema(t)
	pool := pgTestPool(t, "", 4)
	s := newPgTestStore(t, pool, schema, PostgresOptions{BreakerFailures: 2})
	ctx := context.Background()
	long := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return string(b)
	}
	key, ver, other := long(5000), long(9000), long(5000)
	_, toks, err := s.Fetch(ctx, key, []string{ver, "v:short"})
	if err != nil {
		t.Fatalf("Fetch with a %d-byte key and a %d-byte version: %v", len(key), len(ver), err)
	}
	if err := s.PutFor(ctx, key, []byte("value"), time.Minute, []string{ver, "v:short"}); err != nil {
		t.Fatalf("PutFor with a long key: %v", err)
	}
	v, again, err := s.Fetch(ctx, key, []string{ver, "v:short"})
	if err != nil || string(v) != "value" || again[0] != toks[0] || again[1] != toks[1] {
		t.Fatalf("Fetch after Put: %q %v %v (tokens before %v)", v, again, err, toks)
	}
	if v, _, err := s.Fetch(ctx, other, nil); err != nil || v != nil {
		t.Fatalf("another long key reads %q %v", v, err)
	}
	if err := s.Bump(ctx, []string{ver}); err != nil {
		t.Fatalf("Bump of a long version: %v", err)
	}
	if _, bumped, err := s.Fetch(ctx, "", []string{ver}); err != nil || bumped[0] == toks[0] {
		t.Fatalf("after Bump: %v %v (before %v)", bumped, err, toks)
	}
	if s.BreakerOpen() || s.Stats().BreakerOpenings != 0 {
		t.Fatalf("long names opened the breaker: %+v", s.Stats())
	}
}

// TestHostilePostgresCloseWhileFailing closes the store while calls fail
// and open the breaker (starting the prober) on other goroutines: no
// WaitGroup misuse, no prober left running after Close.
func TestHostilePostgresCloseWhileFailing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every connection is refused at once
	for round := 0; round < 20; round++ {
		pool := pgTestPool(t, "postgres://postgres@"+addr+"/test?connect_timeout=1", 4)
		s := NewPostgresStore(pool, PostgresOptions{BreakerFailures: 1, SweepInterval: -1, BreakerProbe: time.Millisecond})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					_, _, _ = s.Fetch(context.Background(), "k", []string{"v"})
					s.brk.success() // close it again so the next failure opens it (and starts a prober)
				}
			}()
		}
		s.Close()
		wg.Wait()
		s.Close()
	}
}
