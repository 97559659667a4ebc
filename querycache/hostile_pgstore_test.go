package querycache

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// TestHostileNotifyPayloadBoundaries: names of every length around the
// payload limit, one at a time and packed so that messages end exactly
// at it: every payload fits PostgreSQL's limit, and the names come back
// in order or the message is "all".
func TestHostileNotifyPayloadBoundaries(t *testing.T) {
	check := func(names []string) {
		t.Helper()
		var got []string
		all := false
		for _, p := range notifyPayloads(names) {
			if len(p) >= 8000 {
				t.Fatalf("payload of %d bytes for %d names", len(p), len(names))
			}
			m, err := decodeNotify(p)
			if err != nil {
				t.Fatalf("decodeNotify: %v", err)
			}
			all = all || m.all
			got = append(got, m.names...)
		}
		if !all && !slices.Equal(got, names) {
			t.Fatalf("%d names sent, %d back", len(names), len(got))
		}
	}
	for n := maxNotifyRaw - 40; n <= maxNotifyRaw+2; n++ {
		check([]string{strings.Repeat("x", n)})
		check([]string{"a", strings.Repeat("y", n), "b"})
	}
	for first := 1; first < 400; first += 7 {
		for second := maxNotifyRaw - first - 20; second < maxNotifyRaw-first+5; second++ {
			if second <= 0 {
				continue
			}
			check([]string{strings.Repeat("a", first), strings.Repeat("b", second), "c", strings.Repeat("d", first)})
		}
	}
	// Many short names: the name-count bound and the byte bound together.
	for _, n := range []int{maxBroadcastNames - 1, maxBroadcastNames, maxBroadcastNames + 1, 2*maxBroadcastNames + 1} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("n%d", i)
		}
		check(names)
	}
}

// TestHostilePostgresTwoProcessesC1: two "processes" (pools, stores,
// caches) share a schema and prefix, plain and two-level Strict. Writers
// in both bump a "database" counter and invalidate; readers in both read
// through the cache. A read that starts after an invalidation returned
// never returns a counter older than that write (C1 across processes),
// with the sweeper running on a short interval and sweeping rows that
// expire under the readers (tiny VersionTTL and entry TTL).
func TestHostilePostgresTwoProcessesC1(t *testing.T) {
	for _, mode := range []string{"plain", "tiered strict"} {
		t.Run(mode, func(t *testing.T) {
			schema := pgTestSchema(t)
			prefix := "c1:"
			var caches []*Cache
			for range 2 {
				pool := pgTestPool(t, "", 8)
				l2 := newPgTestStore(t, pool, schema, PostgresOptions{
					VersionTTL: 300 * time.Millisecond, VersionMargin: time.Millisecond,
					SweepInterval: 20 * time.Millisecond, SweepBatch: 5,
				})
				var st Store = l2
				if mode != "plain" {
					st = NewTieredPostgresStore(l2, TieredOptions{Strict: true})
				}
				c, err := New(Options{Store: st, Prefix: prefix, DefaultTTL: 200 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				caches = append(caches, c)
			}
			const tables = 3
			var db [tables]atomic.Int64
			var committed [tables]atomic.Int64 // value whose invalidation has returned
			var stale, reads atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := caches[w%2]
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						tb := i % tables
						v := db[tb].Add(1)
						if err := c.InvalidateTables(context.Background(), fmt.Sprintf("t%d", tb)); err != nil {
							t.Error(err)
							return
						}
						for {
							old := committed[tb].Load()
							if old >= v || committed[tb].CompareAndSwap(old, v) {
								break
							}
						}
					}
				}()
			}
			for r := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := caches[r%2]
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						tb := (i + r) % tables
						floor := committed[tb].Load()
						k := tableKey(c, fmt.Sprintf("t%d", tb), fmt.Sprintf("SELECT n FROM t%d", tb))
						v, _, err := c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
							return Fill{Value: []byte(fmt.Sprint(db[tb].Load()))}, nil
						})
						if err != nil {
							t.Error(err)
							return
						}
						var got int64
						fmt.Sscan(string(v), &got)
						reads.Add(1)
						if got < floor {
							stale.Add(1)
						}
					}
				}()
			}
			time.Sleep(3 * time.Second)
			close(stop)
			wg.Wait()
			var hits, errs uint64
			for _, c := range caches {
				hits += c.Stats().Hits
				errs += c.Stats().Errors
			}
			t.Logf("store errors: %d", errs)
			t.Logf("%d reads, %d hits, %d stale", reads.Load(), hits, stale.Load())
			if stale.Load() != 0 {
				t.Errorf("%d reads returned a counter older than an invalidation that had returned", stale.Load())
			}
		})
	}
}

// TestHostileTieredPostgresCloseWhileInUse closes the two-level store
// while lookups, fills and invalidations run on other goroutines, and
// while its listener may be connecting: no panic, no race, no listener
// left behind (its backend is gone once Close returns).
func TestHostileTieredPostgresCloseWhileInUse(t *testing.T) {
	schema := pgTestSchema(t)
	pool := pgTestPool(t, "", 8)
	for round := range 6 {
		l2 := newPgTestStore(t, pool, schema, PostgresOptions{})
		store := NewTieredPostgresStore(l2, TieredOptions{PingInterval: 200 * time.Millisecond})
		c, err := New(Options{Store: store, Prefix: fmt.Sprintf("cl%d:", round)})
		if err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			tieredWait(t, "the LISTEN connection", store.Subscribed)
		}
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 30 {
					k := tableKey(c, "t", fmt.Sprintf("SELECT %d", i%3))
					_, _, _ = c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
						return Fill{Value: []byte("v")}, nil
					})
					if (i+g)%5 == 0 {
						_ = c.InvalidateTables(context.Background(), "t")
					}
				}
			}()
		}
		if round%3 == 0 {
			time.Sleep(time.Duration(round) * 5 * time.Millisecond)
		}
		c.Close()
		wg.Wait()
		store.Close()
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, int(l2.listenerPID.Load())).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if l2.listenerPID.Load() != 0 && n != 0 {
			// The backend may take a moment to exit after the client closed.
			tieredWait(t, "the listener's backend to exit", func() bool {
				_ = pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, int(l2.listenerPID.Load())).Scan(&n)
				return n == 0
			})
		}
	}
}

// TestHostilePostgresFillBumpDeadlock: fills that extend several versions
// race bumps of the same versions (every fill extends: the versions live
// shorter than the entries). A deadlock between them costs a failed
// call, and failed calls open the breaker (everyone bypassed, the epoch
// replaced): count them.
func TestHostilePostgresFillBumpDeadlock(t *testing.T) {
	schema := pgTestSchema(t)
	pool := pgTestPool(t, "", 16)
	for _, ttl := range []time.Duration{time.Second, 5 * time.Millisecond} { // the second: lookups replace expired versions
		fillBumpDeadlocks(t, pool, schema, ttl)
	}
}

func fillBumpDeadlocks(t *testing.T, pool *pgxpool.Pool, schema string, ttl time.Duration) {
	// Generous timeouts: this counts deadlocks, and a 100 ms timeout on a
	// loaded CI machine ended a call that was only slow (CI: "1 other
	// error").
	s := newPgTestStore(t, pool, schema, PostgresOptions{VersionTTL: ttl, BreakerFailures: 1000000, Timeout: 10 * time.Second, InvalidateTimeout: 10 * time.Second})
	ctx := context.Background()
	names := []string{"v:a", "v:b", "v:c", "v:d"}
	var deadlocks, other atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				vs := slices.Clone(names)
				if (g+i)%2 == 0 {
					slices.Reverse(vs)
				}
				switch {
				case g%4 == 2:
					_, _, err = s.Fetch(ctx, fmt.Sprintf("k%d", i%4), vs)
				case g%2 == 0:
					err = s.PutFor(ctx, fmt.Sprintf("k%d", i%4), []byte("x"), time.Hour, vs)
				default:
					err = s.Bump(ctx, vs)
				}
				if err != nil {
					if strings.Contains(err.Error(), "40P01") {
						deadlocks.Add(1)
					} else {
						other.Add(1)
						firstErr.CompareAndSwap(nil, &err)
					}
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("deadlocks %d, other errors %d", deadlocks.Load(), other.Load())
	if e := firstErr.Load(); e != nil {
		t.Logf("first other error: %v", *e)
	}
	if deadlocks.Load() != 0 || other.Load() != 0 {
		t.Errorf("fills and bumps of the same versions failed: %d deadlocks, %d other errors", deadlocks.Load(), other.Load())
	}
}
