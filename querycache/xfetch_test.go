package querycache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// xfetchFill returns a fill that advances clock by took (how long the
// query "took", recorded as the entry's delta) and returns value.
func xfetchFill(clock *fakeClock, took time.Duration, value string, calls *atomic.Int64) FillFunc {
	return func(context.Context) (Fill, error) {
		if calls != nil {
			calls.Add(1)
		}
		clock.Advance(took)
		return Fill{Value: []byte(value)}, nil
	}
}

// hotKeyNearExpiry fills k at the clock's time with a query that took
// 100ms, checks that reads far from expiry never refresh, and moves the
// clock to 1ns before the entry expires: there every hit is due for early
// refresh (probability 1 - e^(-1ns/100ms)).
func hotKeyNearExpiry(t *testing.T, clock *fakeClock, cs []*Cache, k Key) {
	t.Helper()
	t0 := clock.Now()
	if v, _ := lookup(t, cs[0], k, xfetchFill(clock, 100*time.Millisecond, "v1", nil)); v != "v1" {
		t.Fatalf("first fill: %q", v)
	}
	// 9.9s before expiry is more than 40 deltas away: never refreshed.
	for range 100 {
		for _, c := range cs {
			expectHit(t, c, k, "v1")
		}
	}
	if s := sumStats(cs); s.EarlyRefreshes != 0 {
		t.Fatalf("%d early refreshes far from expiry", s.EarlyRefreshes)
	}
	clock.Advance(t0.Add(10*time.Second - time.Nanosecond).Sub(clock.Now()))
}

// readHot has goroutines per cache read k reads times each, with a fill
// that counts its calls and takes a few real milliseconds (so that many
// reads overlap the refresh). Every read must return v1 or v2, as a hit
// or from the refresh.
func readHot(t *testing.T, cs []*Cache, k Key, goroutines, reads int, calls *atomic.Int64) {
	t.Helper()
	fill := func(context.Context) (Fill, error) {
		calls.Add(1)
		time.Sleep(5 * time.Millisecond)
		return Fill{Value: []byte("v2")}, nil
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(cs)*goroutines)
	for _, c := range cs {
		for range goroutines {
			wg.Go(func() {
				<-start
				for range reads {
					v, _, err := c.GetOrSet(context.Background(), k, fill)
					if err != nil || (string(v) != "v1" && string(v) != "v2") {
						errs <- fmt.Errorf("read %q, %v", v, err)
						return
					}
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// (d) A hot key near expiry, read by many goroutines of one process, is
// refreshed once, before it expires: no reader misses.
func TestXFetchOneRefreshPerProcess(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newTestCache(t, Options{Now: clock.Now, DefaultTTL: 10 * time.Second})
	k := tableKey(c, "posts", "SELECT * FROM posts")
	hotKeyNearExpiry(t, clock, []*Cache{c}, k)
	missesBefore := c.Stats().Misses
	var calls atomic.Int64
	readHot(t, []*Cache{c}, k, 50, 20, &calls)
	s := c.Stats()
	t.Logf("memory store: 50 goroutines x 20 reads at 1ns before expiry: %d fills, %d early refreshes", calls.Load(), s.EarlyRefreshes)
	if calls.Load() != 1 || s.EarlyRefreshes != 1 {
		t.Errorf("fills %d, early refreshes %d; want 1 and 1", calls.Load(), s.EarlyRefreshes)
	}
	if s.Misses != missesBefore {
		t.Errorf("%d misses: the refresh did not beat the expiry", s.Misses-missesBefore)
	}
	expectHit(t, c, k, "v2")
}

// (d) Across processes sharing Redis, the lease makes that one refresh in
// all: a hit that cannot get the lease serves what it found.
func TestXFetchOneRefreshAcrossProcesses(t *testing.T) {
	for _, mode := range []LeaseMode{LeaseAuto, LeaseOff} {
		t.Run(fmt.Sprintf("lease=%v", mode == LeaseAuto), func(t *testing.T) {
			env := newLeaseEnv(t)
			clock := &fakeClock{now: time.Now()}
			const processes = 3
			cs := make([]*Cache, processes)
			for i := range cs {
				cs[i] = env.process(Options{Now: clock.Now, DefaultTTL: 10 * time.Second, Lease: mode})
			}
			k := tableKey(cs[0], "posts", "SELECT * FROM posts")
			hotKeyNearExpiry(t, clock, cs, k)
			var calls atomic.Int64
			readHot(t, cs, k, 30, 20, &calls)
			s := sumStats(cs)
			t.Logf("lease %v: %d processes x 30 goroutines x 20 reads at 1ns before expiry: %d fills, %d early refreshes, %d leases",
				mode == LeaseAuto, processes, calls.Load(), s.EarlyRefreshes, s.LeaseAcquired)
			if mode == LeaseAuto && (calls.Load() != 1 || s.EarlyRefreshes != 1) {
				t.Errorf("fills %d, early refreshes %d; want 1 and 1", calls.Load(), s.EarlyRefreshes)
			}
			if mode == LeaseOff && calls.Load() > processes {
				t.Errorf("without leases: %d fills; want at most one per process (%d)", calls.Load(), processes)
			}
			for _, c := range cs {
				expectHit(t, c, k, "v2")
			}
		})
	}
}

// Lookup refreshes early too: one due hit gets a Miss to fill, the hits
// around it are served.
func TestXFetchLookup(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newTestCache(t, Options{Now: clock.Now, DefaultTTL: 10 * time.Second})
	k := tableKey(c, "posts", "SELECT * FROM posts")
	hotKeyNearExpiry(t, clock, []*Cache{c}, k)
	ctx := context.Background()
	for _, lead := range []bool{true, false} {
		_, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: lead})
		if ok || m == nil || !m.refresh {
			t.Fatalf("lead %v: a due hit did not refresh (ok %v)", lead, ok)
		}
		for range 10 {
			if v, ok, _ := c.Lookup(ctx, k, LookupOptions{Lead: lead}); !ok || string(v) != "v1" {
				t.Fatalf("lead %v: hit during the refresh: %q %v", lead, v, ok)
			}
		}
		if lead {
			m.Abandon("") // the refresh may fail: the entry stays
		} else {
			m.Store([]byte("v2"))
		}
	}
	if v, ok, _ := c.Lookup(ctx, k, LookupOptions{Lead: true}); !ok || string(v) != "v2" {
		t.Fatalf("after the refresh: %q %v", v, ok)
	}
	if s := c.Stats(); s.EarlyRefreshes != 2 {
		t.Errorf("early refreshes %d; want 2", s.EarlyRefreshes)
	}
}

// A refresh whose query fails serves the entry it found.
func TestXFetchFailedRefreshServesTheHit(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newTestCache(t, Options{Now: clock.Now, DefaultTTL: 10 * time.Second})
	k := tableKey(c, "posts", "SELECT * FROM posts")
	hotKeyNearExpiry(t, clock, []*Cache{c}, k)
	v, hit, err := c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
		return Fill{}, errors.New("database down")
	})
	if err != nil || !hit || string(v) != "v1" {
		t.Fatalf("got %q hit %v err %v; want the hit", v, hit, err)
	}
	if s := c.Stats(); s.EarlyRefreshes != 1 {
		t.Errorf("early refreshes %d", s.EarlyRefreshes)
	}
}

// Early refresh off (negative beta), and entries without a delta (format
// 2, or a fill that took no time), are never refreshed early.
func TestXFetchNeverWithoutDeltaOrBeta(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	off := newTestCache(t, Options{Now: clock.Now, DefaultTTL: 10 * time.Second, EarlyRefreshBeta: -1})
	k := tableKey(off, "posts", "SELECT * FROM posts")
	hotKeyNearExpiry(t, clock, []*Cache{off}, k)
	for range 100 {
		expectHit(t, off, k, "v1")
	}

	clock2 := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newTestCache(t, Options{Now: clock2.Now, DefaultTTL: 10 * time.Second})
	k2 := tableKey(c, "posts", "SELECT * FROM posts")
	expectMiss(t, c, k2, "instant") // the fake clock does not move: delta 0
	clock2.Advance(10*time.Second - time.Nanosecond)
	for range 100 {
		expectHit(t, c, k2, "instant")
	}
	if off.Stats().EarlyRefreshes+c.Stats().EarlyRefreshes != 0 {
		t.Error("refreshed early")
	}
}

func TestXFetchRecordsFillDuration(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := NewMemoryStore(MemoryOptions{})
	c := newTestCache(t, Options{Store: store, Now: clock.Now})
	k := tableKey(c, "posts", "SELECT * FROM posts")
	lookup(t, c, k, xfetchFill(clock, 250*time.Millisecond, "v", nil))
	raw, _, _ := store.Fetch(context.Background(), k.Name, nil)
	e, err := decodeEntryAt(k.Name, raw)
	if err != nil || e.delta != int64(250*time.Millisecond) || e.format != entryFormat {
		t.Fatalf("stored entry %+v, %v; want format %d with delta 250ms", e, err, entryFormat)
	}
}

// dueEarly refreshes with probability exp(-gap / (delta*beta)).
func TestXFetchProbability(t *testing.T) {
	c := newTestCache(t, Options{EarlyRefreshBeta: 2})
	now := time.Unix(1_700_000_000, 0)
	delta := 100 * time.Millisecond
	// gap = delta * beta * ln 2: half the hits refresh.
	gap := time.Duration(float64(delta) * 2 * 0.6931471805599453)
	e := entry{expires: now.Add(gap).UnixNano(), delta: int64(delta)}
	n := 0
	const draws = 20000
	for range draws {
		if c.dueEarly(e, now) {
			n++
		}
	}
	if f := float64(n) / draws; f < 0.45 || f > 0.55 {
		t.Errorf("refreshed %.3f of hits at gap delta*beta*ln2; want 0.5", f)
	}
	if c.dueEarly(entry{expires: now.Add(41 * 2 * delta).UnixNano(), delta: int64(delta)}, now) {
		t.Error("refreshed more than 40 deltas before expiry")
	}
}

// (e) Entries written in format 2 (before the delta field) are still
// served, by the memory store and by Redis, and are not refreshed early.
func TestXFetchFormat2EntriesStillHit(t *testing.T) {
	check := func(t *testing.T, c *Cache) {
		ctx := context.Background()
		k := tableKey(c, "posts", "SELECT * FROM posts")
		names := c.withEpoch(k.Versions)
		_, tokens, err := c.Store().Fetch(ctx, "", names)
		if err != nil {
			t.Fatal(err)
		}
		now := c.now()
		raw := format2Bytes(now.Add(time.Minute).UnixNano(), now.UnixNano(), tokens, "written by format 2")
		if err := c.Store().Put(ctx, k.Name, raw, time.Minute); err != nil {
			t.Fatal(err)
		}
		expectHit(t, c, k, "written by format 2")
		if v, ok, _ := c.Lookup(ctx, k, LookupOptions{Lead: true}); !ok || string(v) != "written by format 2" {
			t.Fatalf("Lookup: %q %v", v, ok)
		}
		// A write still invalidates it.
		if err := c.InvalidateTables(ctx, "posts"); err != nil {
			t.Fatal(err)
		}
		expectMiss(t, c, k, "new")
	}
	t.Run("memory", func(t *testing.T) { check(t, newTestCache(t, Options{})) })
	t.Run("redis", func(t *testing.T) { check(t, newLeaseEnv(t).process(Options{})) })
}

// Gates held for other processes' refreshes are swept, not kept forever.
func TestXFetchGatesAreBounded(t *testing.T) {
	var s stampede
	past := time.Now().Add(-time.Second)
	for i := range 3 * maxRefreshGates {
		key := fmt.Sprint("k", i)
		if !s.enterRefresh(key, time.Now().Add(time.Hour)) {
			t.Fatal("gate refused")
		}
		s.holdRefresh(key, past) // another process refreshes; expired since
	}
	if n := s.gates.Load(); n > maxRefreshGates+1 {
		t.Fatalf("%d gates kept", n)
	}
	n := 0
	s.refreshing.Range(func(any, any) bool { n++; return true })
	if int64(n) != s.gates.Load() {
		t.Fatalf("map holds %d gates, counted %d", n, s.gates.Load())
	}
	if !s.enterRefresh("k0", time.Now().Add(time.Hour)) || s.enterRefresh("k0", time.Now().Add(time.Hour)) {
		t.Fatal("gate of k0: want taken once")
	}
	s.leaveRefresh("k0")
	if !s.enterRefresh("k0", time.Now().Add(time.Hour)) {
		t.Fatal("left gate not reopened")
	}
}
