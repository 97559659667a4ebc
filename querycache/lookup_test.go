package querycache

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

func waitWaiting(t *testing.T, c *Cache, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.fills.waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d lookups joined the fill", c.fills.waiting(), n)
		}
		runtime.Gosched()
	}
}

func TestLookupMissStoreHit(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT 1")
	if _, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: true}); ok || m == nil {
		t.Fatal("empty cache hit")
	} else {
		m.Store([]byte("v1"))
		m.Store([]byte("ignored")) // ended: does nothing
		m.Abandon("ignored")
	}
	v, ok, m := c.Lookup(ctx, k, LookupOptions{})
	if !ok || m != nil || string(v) != "v1" {
		t.Fatalf("after Store: %q %v %v", v, ok, m)
	}
	st := c.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.Fills != 1 || st.Stores != 1 || st.Refusals["ignored"] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLookupStoresAgainstVersionsReadBefore is C2 for the two-step form: a
// value read before a write committed and stored after it is never served.
func TestLookupStoresAgainstVersionsReadBefore(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT * FROM users")
	_, _, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
	// The database is read here; then a write commits and invalidates.
	if err := c.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	m.Store([]byte("stale"))
	if v, ok, _ := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatalf("a value read before the invalidation was served: %q", v)
	}
}

func TestLookupAbandonAndTooLarge(t *testing.T) {
	c := newTestCache(t, Options{MaxEntryBytes: 4})
	if c.MaxEntryBytes() != 4 {
		t.Fatalf("MaxEntryBytes %d", c.MaxEntryBytes())
	}
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT 2")
	_, _, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
	m.Abandon("too_large")
	_, _, m = c.Lookup(ctx, k, LookupOptions{Lead: true})
	m.Store([]byte("12345"))
	if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatal("an abandoned or too large value was stored")
	} else {
		m.Abandon("")
	}
	if got := c.Stats().Refusals["too_large"]; got != 2 {
		t.Fatalf("too_large refusals %d; want 2", got)
	}
	if d, _ := New(Options{Store: NewMemoryStore(MemoryOptions{}), MaxEntryBytes: -1}); d.MaxEntryBytes() != -1 {
		t.Fatalf("unlimited MaxEntryBytes reported as %d", d.MaxEntryBytes())
	}
}

// TestLookupLeaderIsShared: concurrent misses wait for the leader and get
// its value; only one fill runs.
func TestLookupLeaderIsShared(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT 3")
	_, _, leader := c.Lookup(ctx, k, LookupOptions{Lead: true})
	const n = 8
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: i%2 == 0})
			if !ok {
				m.Abandon("")
				return
			}
			got[i] = string(v)
		}(i)
	}
	waitWaiting(t, c, n)
	leader.Store([]byte("shared"))
	wg.Wait()
	for i, v := range got {
		if v != "shared" {
			t.Fatalf("caller %d got %q", i, v)
		}
	}
	if st := c.Stats(); st.Fills != 1 || st.Shared != n {
		t.Fatalf("fills %d shared %d; want 1 and %d", st.Fills, st.Shared, n)
	}
}

// TestLookupAbandonedLeaderIsNotShared: when the leader stores nothing
// each waiter gets a miss of its own (and may store it).
func TestLookupAbandonedLeaderIsNotShared(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT 4")
	_, _, leader := c.Lookup(ctx, k, LookupOptions{Lead: true})
	const n = 4
	var wg sync.WaitGroup
	misses := make([]*Miss, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
			if ok {
				t.Errorf("caller %d shared an abandoned fill", i)
			}
			misses[i] = m
		}(i)
	}
	waitWaiting(t, c, n)
	leader.Abandon("too_large")
	wg.Wait()
	misses[0].Store([]byte("own"))
	for _, m := range misses[1:] {
		m.Abandon("")
	}
	if v, ok, _ := c.Lookup(ctx, k, LookupOptions{}); !ok || string(v) != "own" {
		t.Fatalf("a waiter's own fill was not stored: %q %v", v, ok)
	}
	if st := c.Stats(); st.Fills != n+1 {
		t.Fatalf("fills %d; want %d", st.Fills, n+1)
	}
}

// TestLookupNonLeaderDoesNotBlock: a miss that does not lead makes no one
// wait, even for the same key.
func TestLookupNonLeaderDoesNotBlock(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT 5")
	_, _, outer := c.Lookup(ctx, k, LookupOptions{Lead: false})
	_, ok, inner := c.Lookup(ctx, k, LookupOptions{Lead: true})
	if ok || inner == nil {
		t.Fatal("unexpected hit")
	}
	inner.Store([]byte("inner"))
	outer.Store([]byte("outer"))
	if v, _, _ := c.Lookup(ctx, k, LookupOptions{}); string(v) != "outer" {
		t.Fatalf("got %q", v)
	}
}

// TestLookupWaiterHonoursContext: a waiter whose context ends stops
// waiting and gets a miss of its own.
func TestLookupWaiterHonoursContext(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT 6")
	_, _, leader := c.Lookup(context.Background(), k, LookupOptions{Lead: true})
	defer leader.Abandon("")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Miss)
	go func() {
		_, _, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
		done <- m
	}()
	waitWaiting(t, c, 1)
	cancel()
	if m := <-done; m == nil {
		t.Fatal("a cancelled waiter got no miss")
	} else {
		m.Abandon("")
	}
}

// TestLookupValidRejectsAndReplaces: a value its owner cannot read (an
// older format) is a miss, counted as corrupt, and the fill replaces it.
func TestLookupValidRejectsAndReplaces(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT 7")
	valid := func(b []byte) bool { return len(b) > 0 && b[0] == '2' }
	_, _, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
	m.Store([]byte("1-old"))
	_, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: true, Valid: valid})
	if ok {
		t.Fatal("a rejected value was served")
	}
	m.Store([]byte("2-new"))
	if v, ok, _ := c.Lookup(ctx, k, LookupOptions{Valid: valid}); !ok || string(v) != "2-new" {
		t.Fatalf("got %q %v", v, ok)
	}
	if c.Stats().Corrupt != 1 {
		t.Fatalf("corrupt %d; want 1", c.Stats().Corrupt)
	}
}

// TestLookupFailsOpen: with the store failing, a lookup is a miss that
// stores nothing, and an undelivered invalidation makes lookups bypass.
func TestLookupFailsOpen(t *testing.T) {
	s := newFaultyStore()
	c := newTestCache(t, Options{Store: s})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT 8")
	s.failFetch.Store(true)
	_, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
	if ok || m == nil {
		t.Fatal("no miss on a failing store")
	}
	s.failFetch.Store(false)
	m.Store([]byte("unsafe"))
	if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); ok {
		t.Fatal("a value filled without versions was stored")
	} else {
		m.Abandon("")
	}
	s.failBump.Store(true)
	_ = c.InvalidateTables(ctx, "users")
	_, ok, m = c.Lookup(ctx, k, LookupOptions{Lead: true})
	if ok {
		t.Fatal("hit while an invalidation is pending")
	}
	m.Store([]byte("pending"))
	s.failBump.Store(false)
	if st := c.Stats(); st.Bypasses["undelivered_invalidation"] == 0 || st.Bypasses["store_error"] == 0 || st.Stores != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMissReason: every miss says why it missed (issue 8: the reason for
// every miss is visible).
func TestMissReason(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT reason")
	miss := func(want string, opts LookupOptions) {
		t.Helper()
		_, ok, m := c.Lookup(ctx, k, opts)
		if ok || m == nil {
			t.Fatalf("want a %s miss, got a hit", want)
		}
		if got := m.Reason(); got != want {
			t.Fatalf("Reason() = %q, want %q", got, want)
		}
		m.Store([]byte("v"))
	}
	miss(MissAbsent, LookupOptions{})
	if err := c.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	miss(MissStale, LookupOptions{})
	miss(MissCorrupt, LookupOptions{Valid: func([]byte) bool { return false }})

	short := k
	short.Name, short.TTL = k.Name+"-short", time.Millisecond
	if _, _, m := c.Lookup(ctx, short, LookupOptions{}); m != nil {
		m.Store([]byte("v"))
	}
	// The memory store drops an expired entry itself: it reads as absent
	// there; a store that keeps it (Redis with a longer key TTL) reads as
	// expired. Either names the cause truthfully.
	time.Sleep(5 * time.Millisecond)
	_, _, m := c.Lookup(ctx, short, LookupOptions{})
	if r := m.Reason(); r != MissExpired && r != MissAbsent {
		t.Fatalf("expired entry: Reason() = %q", r)
	}
	m.Abandon("")

	if st := c.Stats(); st.MissReasons[MissAbsent] < 2 || st.MissReasons[MissStale] != 1 || st.MissReasons[MissCorrupt] != 1 {
		t.Fatalf("Stats.MissReasons = %v", st.MissReasons)
	}
	c.Close()
	_, _, m = c.Lookup(ctx, k, LookupOptions{})
	if r := m.Reason(); r != "closed" || m.Bypass() != "closed" {
		t.Fatalf("closed: Reason() = %q", r)
	}
	var nilMiss *Miss
	if nilMiss.Reason() != "" {
		t.Fatal("nil Miss has a reason")
	}
}
