package querycache

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/keys"
)

// Hostile tests of the allocation-free hit path of a MemoryStore (memhit.go,
// MemoryStore.fetchInto): every shortcut it takes must serve nothing the
// general path (probe) would not.

// TestHostileMemHitLinearizable: concurrent hits, fills and invalidations
// on one key of a memory store. The "database" is a counter; a writer
// increments it and then invalidates. A lookup that starts after an
// invalidation returned must never be served a value older than the
// write that invalidation covered (C1), and a fill read before a write
// must never be served after it (C2).
func TestHostileMemHitLinearizable(t *testing.T) {
	for _, maxBytes := range []int64{0, minMemoryBytes} {
		t.Run(fmt.Sprint("maxBytes=", maxBytes), func(t *testing.T) {
			c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: maxBytes}), DefaultTTL: time.Minute})
			ctx := context.Background()
			var db atomic.Int64      // the committed value of table "all"
			var applied atomic.Int64 // the newest value whose invalidation has returned
			stop := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			// Noise: writers of other tables, whose versions share the
			// store (and, under a tiny MaxBytes, evict "all"'s versions).
			for w := range 3 {
				wg.Go(func() {
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						var err error
						if n%2 == 0 {
							err = c.InvalidateTables(ctx, "t"+strconv.Itoa(w)+"-"+strconv.Itoa(n%50))
						} else {
							err = c.InvalidateObject(ctx, "t"+strconv.Itoa(w), strconv.Itoa(n))
						}
						if err != nil {
							errs <- err
							return
						}
					}
				})
			}
			stop2 := make(chan struct{})
			var rwg sync.WaitGroup
			for r := range 6 {
				rwg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop2:
							return
						default:
						}
						k := tableKey(c, "all", "SELECT all "+strconv.Itoa(r%2))
						if i%2 == 1 {
							k = pkKey(c, "all", "1")
						}
						floor := applied.Load()
						v, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: i%3 == 0})
						if ok {
							got, _ := strconv.ParseInt(string(v), 10, 64)
							if got < floor {
								errs <- fmt.Errorf("served %d after the invalidation of %d returned", got, floor)
								return
							}
							continue
						}
						m.Store([]byte(strconv.FormatInt(db.Load(), 10)))
					}
				})
			}
			// One writer on the readers' table "all": writes bump the
			// counter and invalidate "all" by one of three routes.
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					v := db.Add(1)
					var err error
					switch n % 4 {
					case 0:
						err = c.InvalidateTables(ctx, "all")
					case 1:
						err = c.InvalidateObject(ctx, "all", "1")
						if err == nil {
							err = c.InvalidateTables(ctx, "all")
						}
					case 2:
						err = c.Invalidate(ctx, Change{Rows: []Row{{Table: "all", PK: "1"}}, Tables: []string{"all"}})
					default:
						err = c.InvalidateAll(ctx)
					}
					if err != nil {
						errs <- err
						return
					}
					for {
						old := applied.Load()
						if old >= v || applied.CompareAndSwap(old, v) {
							break
						}
					}
					if n%64 == 0 {
						time.Sleep(time.Millisecond) // let readers hit
					}
				}
			})
			time.Sleep(300 * time.Millisecond)
			close(stop2)
			rwg.Wait()
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if c.Stats().Hits == 0 {
				t.Fatal("no hits: the hit path was not exercised")
			}
		})
	}
}

// TestHostileMemHitNoHitAfterClose: lookups racing Close; once Close has
// returned, no lookup that starts is served from the cache, and hits
// counted are hits served.
func TestHostileMemHitNoHitAfterClose(t *testing.T) {
	for round := range 20 {
		c, err := New(Options{Store: NewMemoryStore(MemoryOptions{})})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		k := tableKey(c, "posts", "SELECT * FROM posts")
		if _, _, err := c.GetOrSet(ctx, k, fillValue("v")); err != nil {
			t.Fatal(err)
		}
		var closed atomic.Bool
		var served atomic.Uint64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 4 {
			wg.Go(func() {
				for i := 0; i < 2000; i++ {
					after := closed.Load()
					var hit bool
					if g%2 == 0 {
						_, hit, _ = c.GetOrSet(ctx, k, fillValue("db"))
					} else {
						_, hit, _ = c.Lookup(ctx, k, LookupOptions{})
					}
					if hit {
						served.Add(1)
						if after {
							errs <- fmt.Errorf("round %d: a lookup started after Close returned was served from the cache", round)
							return
						}
					}
				}
			})
		}
		time.Sleep(time.Duration(round%5) * 100 * time.Microsecond)
		c.Close()
		closed.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if h := c.Stats().Hits; h != served.Load() {
			t.Fatalf("round %d: %d hits counted, %d served", round, h, served.Load())
		}
	}
}

// TestHostileMemHitExpiry: memHit reads the store's deadline with the
// process clock but the entry's expiry with Options.Now; an entry whose
// TTL passed on either clock is not served.
func TestHostileMemHitExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newTestCache(t, Options{Now: clock.Now, EarlyRefreshBeta: -1})
	k := tableKey(c, "posts", "SELECT * FROM posts")
	k.TTL = time.Second
	expectMiss(t, c, k, "v1")
	expectHit(t, c, k, "v1")
	clock.Advance(time.Second - time.Nanosecond)
	expectHit(t, c, k, "v1")
	clock.Advance(time.Nanosecond)
	expectMiss(t, c, k, "v2") // the entry's own expiry, on Options.Now
	if v, ok, _ := c.Lookup(context.Background(), k, LookupOptions{}); !ok || string(v) != "v2" {
		t.Fatalf("after refill: %q %v", v, ok)
	}

	// The store's deadline, on the process clock: a real short TTL.
	real := newTestCache(t, Options{EarlyRefreshBeta: -1})
	k2 := tableKey(real, "posts", "SELECT 2")
	k2.TTL = 20 * time.Millisecond
	expectMiss(t, real, k2, "w1")
	time.Sleep(40 * time.Millisecond)
	expectMiss(t, real, k2, "w2")
}

// TestHostileMemHitSuspendAndPending: a Suspend taken while an entry is hot
// stops it being served at once, for the held table, the held row and the
// epoch; other keys keep hitting through the general path; after resume the
// entry (unchanged versions) hits again.
func TestHostileMemHitSuspendAndPending(t *testing.T) {
	c := newTestCache(t, Options{EarlyRefreshBeta: -1})
	ctx := context.Background()
	tk := tableKey(c, "posts", "SELECT * FROM posts")
	ok1 := pkKey(c, "posts", "1")
	other := tableKey(c, "users", "SELECT * FROM users")
	for _, k := range []Key{tk, ok1, other} {
		expectMiss(t, c, k, "v")
		expectHit(t, c, k, "v")
	}
	for _, ch := range []Change{
		{Tables: []string{"posts"}},
		{Rows: []Row{{Table: "posts", PK: "1"}}},
		{All: true},
	} {
		resume := c.Suspend(ch)
		if _, ok, m := c.Lookup(ctx, ok1, LookupOptions{}); ok || m.Bypass() != "suspended" {
			t.Fatalf("%+v: the held row's lookup was served (bypass %q)", ch, m.Bypass())
		}
		if !ch.All {
			if v, ok, _ := c.Lookup(ctx, other, LookupOptions{}); !ok || string(v) != "v" {
				t.Fatalf("%+v: an unrelated key stopped hitting", ch)
			}
		} else if _, ok, _ := c.Lookup(ctx, other, LookupOptions{}); ok {
			t.Fatal("a suspended epoch served a hit")
		}
		resume()
		expectHit(t, c, ok1, "v")
	}
}

// TestHostileMemHitVersionCountBoundary: keys with 6, 7 and 8 versions
// (memHit takes fewer than 8 with the epoch; the rest go to probe) are
// invalidated by a write to their last table.
func TestHostileMemHitVersionCountBoundary(t *testing.T) {
	c := newTestCache(t, Options{EarlyRefreshBeta: -1})
	ctx := context.Background()
	for n := 6; n <= 9; n++ {
		k := Key{Name: c.ns.Query("main", keys.Sum([]byte{byte(n)})), Label: fmt.Sprint(n, " versions")}
		for i := range n {
			k.Versions = append(k.Versions, c.ns.TableVersion(fmt.Sprint("t", i)))
		}
		expectMiss(t, c, k, "old")
		expectHit(t, c, k, "old")
		if err := c.InvalidateTables(ctx, fmt.Sprint("t", n-1)); err != nil {
			t.Fatal(err)
		}
		expectMiss(t, c, k, "new")
		expectHit(t, c, k, "new")
	}
}

// TestHostileMemHitHostileNames: a key named like a version, and versions
// named like the key, never serve an entry the versions do not validate.
func TestHostileMemHitHostileNames(t *testing.T) {
	c := newTestCache(t, Options{EarlyRefreshBeta: -1})
	ctx := context.Background()
	ver := c.ns.TableVersion("posts")
	// An entry whose name is its own version: the store keeps versions
	// apart from entries, so it is served until the version is bumped.
	k := Key{Name: ver, Versions: []string{ver}, Label: "self"}
	expectMiss(t, c, k, "a")
	expectHit(t, c, k, "a")
	if err := c.InvalidateTables(ctx, "posts"); err != nil {
		t.Fatal(err)
	}
	if v, ok, m := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatalf("an entry stored under its own version's name was served after the version's bump: %q", v)
	} else {
		m.Abandon("")
	}
	// A key named like the epoch: served until the epoch is replaced.
	k2 := Key{Name: c.ns.Epoch(), Label: "epoch"}
	expectMiss(t, c, k2, "b")
	expectHit(t, c, k2, "b")
	if err := c.InvalidateAll(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok, m := c.Lookup(ctx, k2, LookupOptions{}); ok {
		t.Fatalf("an entry stored under the epoch's name was served after InvalidateAll: %q", v)
	} else {
		m.Abandon("")
	}
	// Garbage stored directly under a key is corrupt, never served.
	k3 := tableKey(c, "posts", "SELECT garbage")
	for _, raw := range [][]byte{{}, {entryMagic0}, {entryMagic0, entryMagic1, entryFormat, 0, 0, 0}, []byte("not an entry at all, but long enough to parse")} {
		if err := c.Store().Put(ctx, k3.Name, raw, time.Minute); err != nil {
			t.Fatal(err)
		}
		if v, ok, m := c.Lookup(ctx, k3, LookupOptions{}); ok || m.Reason() != MissCorrupt {
			t.Fatalf("garbage %q: served %q %v (reason %q)", raw, v, ok, m.Reason())
		} else {
			m.Abandon("")
		}
	}
	// A valid entry whose tokens were recorded against another key's
	// versions is not fresh here.
	a := tableKey(c, "a", "SELECT a")
	b := tableKey(c, "b", "SELECT b")
	expectMiss(t, c, a, "from a")
	raw, _, _ := c.Store().Fetch(ctx, a.Name, nil)
	if err := c.Store().Put(ctx, b.Name, raw, time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, ok, m := c.Lookup(ctx, b, LookupOptions{}); ok {
		t.Fatalf("an entry copied from another key's versions was served: %q", v)
	} else {
		m.Abandon("")
	}
}
