package querycache

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	mem := NewMemoryStore(MemoryOptions{})
	defer mem.Close()
	for _, tc := range []struct {
		name string
		opts Options
		want []string // every one must appear in the error
	}{
		{"nil store", Options{}, []string{"Options.Store is nil", "NewMemoryStore", "NewRedisStore", "NewPostgresStore"}},
		{"negative DefaultTTL", Options{Store: mem, DefaultTTL: -time.Second}, []string{"DefaultTTL", "-1s", "positive duration", "0 for 5 minutes"}},
		{"MaxEntryBytes -2", Options{Store: mem, MaxEntryBytes: -2}, []string{"MaxEntryBytes", "-2", "0 for 1 MiB", "-1 for no limit"}},
		{"negative RetryInterval", Options{Store: mem, RetryInterval: -time.Millisecond}, []string{"RetryInterval", "positive duration"}},
		{"bad memory store", Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: -3})}, []string{"MemoryOptions.MaxBytes", "-3"}},
	} {
		c, err := New(tc.opts)
		if err == nil {
			c.Close()
			t.Errorf("%s: New succeeded", tc.name)
			continue
		}
		if c != nil {
			t.Errorf("%s: New returned a Cache with its error", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	// Boundary values that are valid.
	for _, opts := range []Options{
		{Store: NewMemoryStore(MemoryOptions{})},
		{Store: NewMemoryStore(MemoryOptions{}), MaxEntryBytes: -1, DefaultTTL: time.Nanosecond, RetryInterval: time.Nanosecond},
	} {
		c, err := New(opts)
		if err != nil {
			t.Errorf("New(%+v): %v", opts, err)
			continue
		}
		c.Close()
	}
}

func TestDefaults(t *testing.T) {
	c := newTestCache(t, Options{Prefix: "app:"})
	if c.DefaultTTL() != 5*time.Minute || c.maxSize != 1<<20 || c.retry != time.Second {
		t.Errorf("defaults: ttl %v, max %d, retry %v", c.DefaultTTL(), c.maxSize, c.retry)
	}
	if c.Namespace().Prefix() != "app:" {
		t.Errorf("prefix %q", c.Namespace().Prefix())
	}
	if _, ok := c.Store().(*MemoryStore); !ok {
		t.Errorf("Store() = %T", c.Store())
	}
}

func TestGetOrSetMissThenHit(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT * FROM users")
	f := &counter{value: "rows-1"}
	v, hit := lookup(t, c, k, f.fill)
	if hit || v != "rows-1" || f.calls.Load() != 1 {
		t.Fatalf("first lookup: %q hit=%v fills=%d; want a miss", v, hit, f.calls.Load())
	}
	for range 3 {
		expectHit(t, c, k, "rows-1")
	}
	s := c.Stats()
	if s.Hits != 3 || s.Misses != 1 || s.Fills != 1 || s.Stores != 1 || s.Shared != 0 || s.Errors != 0 || s.Corrupt != 0 {
		t.Errorf("stats %+v", s)
	}
	// Another query of the same table has its own entry (C5).
	expectMiss(t, c, tableKey(c, "users", "SELECT id FROM users"), "ids")
	expectHit(t, c, k, "rows-1")
}

func TestGetOrSetEmptyValueIsCached(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT * FROM users WHERE 0")
	expectMiss(t, c, k, "")
	expectHit(t, c, k, "")
}

func TestGetOrSetFillError(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT 1")
	boom := errors.New("database down")
	v, hit, err := c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) { return Fill{}, boom })
	if !errors.Is(err, boom) || hit || v != nil {
		t.Fatalf("GetOrSet with failing fill = %q, %v, %v", v, hit, err)
	}
	if s := c.Stats(); s.Stores != 0 {
		t.Errorf("a failed fill was stored: %+v", s)
	}
	expectMiss(t, c, k, "ok")
	expectHit(t, c, k, "ok")
}

// populate fills every key with its label and checks it is then a hit.
func populate(t *testing.T, c *Cache, ks ...Key) {
	t.Helper()
	for _, k := range ks {
		expectMiss(t, c, k, k.Label)
		expectHit(t, c, k, k.Label)
	}
}

func TestInvalidationScope(t *testing.T) {
	type keySet struct{ table, pk1, pk2, other Key }
	mk := func(c *Cache) keySet {
		return keySet{
			table: tableKey(c, "users", "SELECT * FROM users WHERE age > ?"),
			pk1:   pkKey(c, "users", "1"),
			pk2:   pkKey(c, "users", "2"),
			other: tableKey(c, "orders", "SELECT * FROM orders"),
		}
	}
	for _, tc := range []struct {
		name       string
		invalidate func(*Cache) error
		// which keys must miss afterwards: table, pk1, pk2, other
		miss [4]bool
	}{
		{"InvalidateObject pk 2", func(c *Cache) error { return c.InvalidateObject(context.Background(), "users", 2) },
			[4]bool{true, false, true, false}},
		{"InvalidateObject pk 1 as string", func(c *Cache) error { return c.InvalidateObject(context.Background(), "users", "1") },
			[4]bool{true, true, false, false}},
		{"InvalidateObject pk 1 as uint", func(c *Cache) error { return c.InvalidateObject(context.Background(), "users", uint(1)) },
			[4]bool{true, true, false, false}},
		{"InvalidateObject non-canonical pk falls back to the table", func(c *Cache) error {
			return c.InvalidateObject(context.Background(), "users", "01")
		}, [4]bool{true, true, true, false}},
		{"InvalidateObject other table", func(c *Cache) error { return c.InvalidateObject(context.Background(), "orders", 1) },
			[4]bool{false, false, false, true}},
		{"InvalidateTables users", func(c *Cache) error { return c.InvalidateTables(context.Background(), "users") },
			[4]bool{true, true, true, false}},
		{"InvalidateTables both", func(c *Cache) error { return c.InvalidateTables(context.Background(), "orders", "users") },
			[4]bool{true, true, true, true}},
		{"InvalidateTables none", func(c *Cache) error { return c.InvalidateTables(context.Background()) },
			[4]bool{false, false, false, false}},
		{"InvalidateAll", func(c *Cache) error { return c.InvalidateAll(context.Background()) },
			[4]bool{true, true, true, true}},
		{"Invalidate rows", func(c *Cache) error {
			return c.Invalidate(context.Background(), Change{Rows: []Row{{"users", "1"}, {"users", "2"}}})
		}, [4]bool{true, true, true, false}},
		{"Invalidate empty change", func(c *Cache) error { return c.Invalidate(context.Background(), Change{}) },
			[4]bool{false, false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCache(t, Options{})
			ks := mk(c)
			all := [4]Key{ks.table, ks.pk1, ks.pk2, ks.other}
			populate(t, c, all[:]...)
			if err := tc.invalidate(c); err != nil {
				t.Fatal(err)
			}
			for i, k := range all {
				if tc.miss[i] {
					expectMiss(t, c, k, "new "+k.Label)
					expectHit(t, c, k, "new "+k.Label)
				} else {
					expectHit(t, c, k, k.Label)
				}
			}
		})
	}
}

func TestInvalidateObjectCompositeKey(t *testing.T) {
	c := newTestCache(t, Options{})
	ns := c.Namespace()
	mk := func(a, b string) Key {
		pk := a + "," + b
		return Key{
			Name:     ns.Object("main", "memberships", pk, [32]byte{}),
			Versions: []string{ns.ObjectVersion("memberships", pk), ns.BulkVersion("memberships")},
			Label:    pk,
		}
	}
	k12, k21 := mk("1", "2"), mk("2", "1")
	populate(t, c, k12, k21)
	if err := c.InvalidateObject(context.Background(), "memberships", 1, int64(2)); err != nil {
		t.Fatal(err)
	}
	expectMiss(t, c, k12, "x")
	expectHit(t, c, k21, "2,1")
}

func TestPrefixesAreIsolated(t *testing.T) {
	mem := NewMemoryStore(MemoryOptions{})
	a := newTestCache(t, Options{Store: mem, Prefix: "a:"})
	b, err := New(Options{Store: mem, Prefix: "b:"})
	if err != nil {
		t.Fatal(err)
	}
	ka, kb := tableKey(a, "users", "SELECT 1"), tableKey(b, "users", "SELECT 1")
	if ka.Name == kb.Name {
		t.Fatalf("two prefixes name one key %q", ka.Name)
	}
	populate(t, a, ka)
	populate(t, b, kb)
	if err := b.InvalidateAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	expectHit(t, a, ka, ka.Label)
	expectMiss(t, b, kb, "b2")
}

// TestStaleFillIsNotServed is C2: a value computed before a write committed
// is stored, but never served after the write's invalidation.
func TestStaleFillIsNotServed(t *testing.T) {
	for name, invalidate := range map[string]func(*Cache) error{
		"InvalidateObject": func(c *Cache) error { return c.InvalidateObject(context.Background(), "users", 1) },
		"InvalidateTables": func(c *Cache) error { return c.InvalidateTables(context.Background(), "users") },
		"InvalidateAll":    func(c *Cache) error { return c.InvalidateAll(context.Background()) },
	} {
		t.Run(name, func(t *testing.T) {
			c := newTestCache(t, Options{})
			k := pkKey(c, "users", "1")
			started, release := make(chan struct{}), make(chan struct{})
			done := make(chan string)
			go func() {
				v, _, err := c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
					close(started)
					<-release // the write commits and invalidates meanwhile
					return Fill{Value: []byte("old")}, nil
				})
				if err != nil {
					t.Error(err)
				}
				done <- string(v)
			}()
			<-started
			if err := invalidate(c); err != nil {
				t.Fatal(err)
			}
			close(release)
			if v := <-done; v != "old" {
				t.Fatalf("slow reader got %q", v)
			}
			if s := c.Stats(); s.Stores != 1 {
				t.Fatalf("the slow fill was not stored (%+v); the test no longer exercises C2", s)
			}
			// The stale value is in the store, recorded against the old
			// versions: it must not be served.
			if v, ok, _ := c.Get(context.Background(), k); ok {
				t.Fatalf("Get served %q", v)
			}
			expectMiss(t, c, k, "new")
			expectHit(t, c, k, "new")
			if v, ok, err := c.Get(context.Background(), k); err != nil || !ok || string(v) != "new" {
				t.Fatalf("Get = %q, %v, %v", v, ok, err)
			}
		})
	}
}

func TestSingleflight(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT * FROM users")
	const callers = 20
	var (
		fills   atomic.Int64
		release = make(chan struct{})
		wg      sync.WaitGroup
		results [callers]string
	)
	fill := func(context.Context) (Fill, error) {
		fills.Add(1)
		<-release
		return Fill{Value: []byte("rows")}, nil
	}
	for i := range callers {
		wg.Go(func() {
			v, hit, err := c.GetOrSet(context.Background(), k, fill)
			if err != nil || hit {
				t.Errorf("caller %d: hit=%v err=%v", i, hit, err)
			}
			results[i] = string(v)
		})
	}
	waitJoined(t, c, 0, callers)
	close(release)
	wg.Wait()
	if n := fills.Load(); n != 1 {
		t.Errorf("%d concurrent misses ran fill %d times; want 1", callers, n)
	}
	for i, v := range results {
		if v != "rows" {
			t.Errorf("caller %d got %q", i, v)
		}
	}
	s := c.Stats()
	if s.Misses != callers || s.Fills != 1 || s.Shared != callers-1 || s.Stores != 1 {
		t.Errorf("stats %+v; want %d misses, 1 fill, %d shared, 1 store", s, callers, callers-1)
	}
	expectHit(t, c, k, "rows")
}

func TestSingleflightFailedFillIsNotShared(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT * FROM users")
	const callers = 20
	var (
		fills   atomic.Int64
		release = make(chan struct{})
		wg      sync.WaitGroup
		errs    [callers]error
		values  [callers]string
	)
	leaderErr := errors.New("leader's context cancelled")
	fill := func(context.Context) (Fill, error) {
		if fills.Add(1) == 1 {
			<-release
			return Fill{}, leaderErr
		}
		return Fill{Value: []byte("ok")}, nil
	}
	for i := range callers {
		wg.Go(func() {
			v, _, err := c.GetOrSet(context.Background(), k, fill)
			values[i], errs[i] = string(v), err
		})
	}
	waitJoined(t, c, 0, callers)
	joined := flightWaiters(&c.flight)
	close(release)
	wg.Wait()
	failed := 0
	for i := range callers {
		switch {
		case errors.Is(errs[i], leaderErr):
			failed++
			if values[i] != "" {
				t.Errorf("caller %d: value %q with the error", i, values[i])
			}
		case errs[i] != nil:
			t.Errorf("caller %d: %v", i, errs[i])
		case values[i] != "ok":
			t.Errorf("caller %d got %q", i, values[i])
		}
	}
	if failed != 1 {
		t.Errorf("%d callers got the leader's error; want only the leader", failed)
	}
	if joined >= 0 && fills.Load() != int64(1+joined) {
		t.Errorf("fill ran %d times with %d waiters; want 1 + waiters", fills.Load(), joined)
	}
	if s := c.Stats(); s.Fills != uint64(fills.Load()) || s.Shared != 0 {
		t.Errorf("stats %+v; want Fills == %d, Shared 0", s, fills.Load())
	}
	// The failure was not cached; the waiters' own values were.
	expectHit(t, c, k, "ok")
}

// TestFlightKeyIncludesTokens: a caller that read the versions after a write
// must not share the fill of a caller that read them before.
func TestFlightKeyIncludesTokens(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT * FROM users")
	started, release := make(chan struct{}), make(chan struct{})
	oldDone := make(chan string, 1)
	go func() {
		v, _, err := c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
			close(started)
			<-release
			return Fill{Value: []byte("old")}, nil
		})
		if err != nil {
			t.Error(err)
		}
		oldDone <- string(v)
	}()
	<-started
	if err := c.InvalidateTables(context.Background(), "users"); err != nil {
		t.Fatal(err)
	}
	// This caller reads the new versions: it must run its own fill now,
	// not wait for (and get) the old one.
	newDone := make(chan string, 1)
	var newFills atomic.Int64
	go func() {
		v, _, err := c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
			newFills.Add(1)
			return Fill{Value: []byte("new")}, nil
		})
		if err != nil {
			t.Error(err)
		}
		newDone <- string(v)
	}()
	select {
	case v := <-newDone:
		if v != "new" || newFills.Load() != 1 {
			t.Errorf("reader after the write got %q (own fills %d); want its own fill's \"new\"", v, newFills.Load())
		}
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		close(release)
		t.Fatalf("reader after the write waited for the fill of a reader before it; got %q", <-newDone)
	}
	close(release)
	if v := <-oldDone; v != "old" {
		t.Errorf("reader before the write got %q", v)
	}
	if s := c.Stats(); s.Shared != 0 || s.Fills != 2 {
		t.Errorf("stats %+v; want 2 fills, none shared", s)
	}
	// Whatever order the two stores happened in, "old" is never served.
	for range 2 {
		if v, _ := lookup(t, c, k, fillValue("refilled")); v == "old" {
			t.Error("value computed before the write served after it")
		}
	}
}

func TestMaxEntryBytes(t *testing.T) {
	c := newTestCache(t, Options{MaxEntryBytes: 100})
	big := strings.Repeat("x", 101)
	k := tableKey(c, "users", "SELECT big")
	for range 2 {
		expectMiss(t, c, k, big) // returned, never stored
	}
	s := c.Stats()
	if s.Refusals["too_large"] != 2 || s.Stores != 0 {
		t.Errorf("stats %+v; want 2 too_large refusals, no store", s)
	}
	fit := tableKey(c, "users", "SELECT fit")
	populate(t, c, Key{Name: fit.Name, Versions: fit.Versions, Label: strings.Repeat("y", 100)})

	// Exactly one refusal for one too-large fill.
	c2 := newTestCache(t, Options{MaxEntryBytes: 10})
	expectMiss(t, c2, tableKey(c2, "t", "q"), "01234567890")
	if got := c2.Stats().Refusals["too_large"]; got != 1 {
		t.Errorf(`Refusals["too_large"] = %d; want 1`, got)
	}

	// The default is 1 MiB.
	c3 := newTestCache(t, Options{})
	k3 := tableKey(c3, "t", "q")
	expectMiss(t, c3, k3, strings.Repeat("z", 1<<20+1))
	expectMiss(t, c3, k3, strings.Repeat("z", 1<<20))
	expectHit(t, c3, k3, strings.Repeat("z", 1<<20))

	// -1 means no limit.
	c4 := newTestCache(t, Options{MaxEntryBytes: -1})
	k4 := tableKey(c4, "t", "q")
	huge := strings.Repeat("h", 2<<20)
	expectMiss(t, c4, k4, huge)
	expectHit(t, c4, k4, huge)
	if len(c4.Stats().Refusals) != 0 {
		t.Errorf("refusals with no limit: %v", c4.Stats().Refusals)
	}
}

func TestFillNoStore(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT NOW()")
	var fills atomic.Int64
	noStore := func(context.Context) (Fill, error) {
		fills.Add(1)
		return Fill{Value: []byte("now"), NoStore: "nondeterministic"}, nil
	}
	for range 3 {
		if v, hit := lookup(t, c, k, noStore); hit || v != "now" {
			t.Fatalf("got %q hit=%v", v, hit)
		}
	}
	s := c.Stats()
	if fills.Load() != 3 || s.Refusals["nondeterministic"] != 3 || s.Stores != 0 {
		t.Errorf("fills %d, stats %+v; want 3 fills, 3 refusals, no store", fills.Load(), s)
	}
	c.CountRefusal("locking")
	c.CountBypass("transaction")
	c.CountBypass("transaction")
	if s := c.Stats(); s.Refusals["locking"] != 1 || s.Bypasses["transaction"] != 2 {
		t.Errorf("CountRefusal/CountBypass: %+v", s)
	}
}

func TestCorruptEntry(t *testing.T) {
	for _, garbage := range [][]byte{
		[]byte("garbage"),
		{},
		encodeEntry(entry{expires: 1 << 62, tokens: []uint64{1, 2}, payload: []byte("p")})[:entryHeader+5],
		append([]byte("qc\x07"), make([]byte, 40)...),
	} {
		c := newTestCache(t, Options{})
		k := tableKey(c, "users", "SELECT * FROM users")
		if err := c.Store().Put(context.Background(), k.Name, garbage, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := c.Get(context.Background(), k); ok || err != nil {
			t.Errorf("Get of %q: ok=%v err=%v", garbage, ok, err)
		}
		expectMiss(t, c, k, "rows")
		if s := c.Stats(); s.Corrupt != 2 || s.Stores != 1 {
			t.Errorf("garbage %q: stats %+v; want Corrupt 2 (Get, GetOrSet), one store", garbage, s)
		}
		expectHit(t, c, k, "rows")
	}
}

// A well-formed entry recorded against other tokens (another process with
// a different prefix layout, say) is a miss, not a hit.
func TestEntryWithForeignTokensIsMiss(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "users", "SELECT 1")
	raw := encodeEntry(entry{key: k.Name, expires: time.Now().Add(time.Hour).UnixNano(), tokens: []uint64{1, 2}, payload: []byte("foreign")})
	c.Store().Put(context.Background(), k.Name, raw, time.Minute)
	expectMiss(t, c, k, "mine")
	// Recorded against zero tokens: never served.
	raw = encodeEntry(entry{key: k.Name, expires: time.Now().Add(time.Hour).UnixNano(), tokens: []uint64{0, 0}, payload: []byte("zero")})
	c.Store().Put(context.Background(), k.Name, raw, time.Minute)
	expectMiss(t, c, k, "mine")
}

func TestStoreFetchFailureFailsOpen(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st})
	k := tableKey(c, "users", "SELECT * FROM users")
	populate(t, c, k)
	st.failFetch.Store(true)
	for i := range 3 {
		f := &counter{value: "from db"}
		v, hit, err := c.GetOrSet(context.Background(), k, f.fill)
		if err != nil || hit || v == nil || string(v) != "from db" || f.calls.Load() != 1 {
			t.Fatalf("lookup %d with the store down: %q hit=%v err=%v fills=%d", i, v, hit, err, f.calls.Load())
		}
	}
	// A failing fill still reports its own error.
	boom := errors.New("db error")
	if _, _, err := c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) { return Fill{}, boom }); !errors.Is(err, boom) {
		t.Errorf("fill error with the store down: %v", err)
	}
	s := c.Stats()
	if s.Errors != 4 || s.Bypasses["store_error"] != 4 {
		t.Errorf("stats %+v; want 4 errors, 4 store_error bypasses", s)
	}
	if _, ok, err := c.Get(context.Background(), k); ok || err == nil {
		t.Errorf("Get with the store down: ok=%v err=%v", ok, err)
	}
	if err := c.Set(context.Background(), k, []byte("x")); err == nil {
		t.Error("Set with the store down succeeded")
	}
	st.failFetch.Store(false)
	expectHit(t, c, k, k.Label)
}

func TestStorePutFailure(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st})
	k := tableKey(c, "users", "SELECT * FROM users")
	st.failPut.Store(true)
	expectMiss(t, c, k, "a")
	expectMiss(t, c, k, "b")
	if s := c.Stats(); s.Errors != 2 || s.Stores != 0 {
		t.Errorf("stats %+v; want 2 errors, no store", s)
	}
	st.failPut.Store(false)
	expectMiss(t, c, k, "c")
	expectHit(t, c, k, "c")
}

// TestUndeliveredInvalidation is C4: an invalidation that could not reach
// the store is not forgotten; what it covers bypasses the cache until a
// retry delivers it, and then the entries it invalidates are misses.
func TestUndeliveredInvalidation(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st, RetryInterval: 10 * time.Millisecond})
	users := tableKey(c, "users", "SELECT * FROM users")
	user1 := pkKey(c, "users", "1")
	orders := tableKey(c, "orders", "SELECT * FROM orders")
	populate(t, c, users, user1, orders)

	st.failBump.Store(true)
	err := c.InvalidateTables(context.Background(), "users")
	if err == nil || !errors.Is(err, errInjected) {
		t.Fatalf("InvalidateTables with the store down: %v; want the store's error", err)
	}
	if p := c.Stats().Pending; p != 2 { // tbl:users and bulk:users
		t.Fatalf("Pending = %d; want 2", p)
	}
	for range 3 {
		expectMiss(t, c, users, "db users")
		expectMiss(t, c, user1, "db user1")
	}
	if v, ok, _ := c.Get(context.Background(), users); ok {
		t.Errorf("Get of a key with a pending invalidation = %q", v)
	}
	expectHit(t, c, orders, orders.Label)
	s := c.Stats()
	if s.Bypasses["undelivered_invalidation"] != 6 {
		t.Errorf(`Bypasses["undelivered_invalidation"] = %d; want 6`, s.Bypasses["undelivered_invalidation"])
	}
	if s.Errors != 1 {
		t.Errorf("Errors = %d; want 1", s.Errors)
	}

	// The retry loop keeps trying while the store is down.
	bumps := st.bumps.Load()
	waitFor(t, "the retry loop to try again", func() bool { return st.bumps.Load() >= bumps+2 })
	if p := c.Stats().Pending; p != 2 {
		t.Fatalf("Pending = %d while the store is still down", p)
	}

	st.failBump.Store(false)
	waitFor(t, "the pending invalidation to be delivered", func() bool { return c.Stats().Pending == 0 })
	// The entries stored before the failure are now invalid.
	expectMiss(t, c, users, "fresh users")
	expectMiss(t, c, user1, "fresh user1")
	expectHit(t, c, users, "fresh users")
	expectHit(t, c, user1, "fresh user1")
	expectHit(t, c, orders, orders.Label)
}

func TestUndeliveredInvalidateAllCoversEverything(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st, RetryInterval: 10 * time.Millisecond})
	users, orders := tableKey(c, "users", "q1"), tableKey(c, "orders", "q2")
	populate(t, c, users, orders)
	st.failBump.Store(true)
	if err := c.InvalidateAll(context.Background()); err == nil {
		t.Fatal("InvalidateAll with the store down returned nil")
	}
	expectMiss(t, c, users, "u")
	expectMiss(t, c, orders, "o")
	expectMiss(t, c, Key{Name: "no-versions", Label: "no-versions"}, "n")
	st.failBump.Store(false)
	waitFor(t, "delivery", func() bool { return c.Stats().Pending == 0 })
	expectMiss(t, c, users, "u2")
	expectMiss(t, c, orders, "o2")
}

// A fill that was running when an invalidation failed must not store its
// value: its tokens may predate a write the store never heard of.
func TestFillDuringUndeliveredInvalidationIsNotStored(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st, RetryInterval: time.Hour})
	k := tableKey(c, "users", "SELECT * FROM users")
	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
			close(started)
			<-release
			return Fill{Value: []byte("old")}, nil
		})
	}()
	<-started
	st.failBump.Store(true)
	if err := c.InvalidateTables(context.Background(), "users"); err == nil {
		t.Fatal("invalidation succeeded")
	}
	close(release)
	<-done
	// A refusal, not a bypass: the lookup used the cache (its miss is
	// counted); only the value is not kept.
	if s := c.Stats(); s.Stores != 0 || s.Refusals["undelivered_invalidation"] != 1 || len(s.Bypasses) != 0 {
		t.Errorf("stats %+v; want no store, one undelivered_invalidation refusal and no bypass", s)
	}
	// Set is refused the same way.
	if err := c.Set(context.Background(), k, []byte("set")); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.Stores != 0 {
		t.Errorf("Set stored under a pending invalidation: %+v", s)
	}
}

func TestPendingSetGenerations(t *testing.T) {
	var p pendingSet
	if p.covers([]string{"a"}, "e") || p.len() != 0 {
		t.Fatal("empty set covers")
	}
	p.add([]string{"a", "b"}, "epoch")
	snap := p.snapshot()
	p.add([]string{"b"}, "epoch") // b fails again after the snapshot
	p.done(snap)
	if p.covers([]string{"a"}, "e") {
		t.Error("a still pending after delivery")
	}
	if !p.covers([]string{"b"}, "e") || p.len() != 1 {
		t.Error("b's later failure was dropped by an older delivery")
	}
	p.add([]string{"e"}, "epoch")
	if !p.covers([]string{"zzz"}, "e") {
		t.Error("a pending epoch does not cover everything")
	}
	p.done(p.snapshot())
	if p.len() != 0 || p.covers([]string{"b", "e"}, "e") {
		t.Error("not empty after delivering everything")
	}
}

func TestExpiryWithFakeClock(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	c := newTestCache(t, Options{Now: clock.Now, DefaultTTL: 10 * time.Second})
	k := tableKey(c, "users", "SELECT 1")
	expectMiss(t, c, k, "v1")
	clock.Advance(10*time.Second - time.Nanosecond)
	expectHit(t, c, k, "v1")
	if _, ok, _ := c.Get(context.Background(), k); !ok {
		t.Error("Get before expiry missed")
	}
	clock.Advance(time.Nanosecond)
	if _, ok, _ := c.Get(context.Background(), k); ok {
		t.Error("Get at expiry hit")
	}
	expectMiss(t, c, k, "v2")
	expectHit(t, c, k, "v2")

	// A key's own TTL wins over DefaultTTL.
	long := tableKey(c, "users", "SELECT 2")
	long.TTL = time.Minute
	expectMiss(t, c, long, "long")
	clock.Advance(30 * time.Second)
	expectHit(t, c, long, "long")
	clock.Advance(30 * time.Second)
	expectMiss(t, c, long, "long2")
}

func TestSetAndGet(t *testing.T) {
	c := newTestCache(t, Options{})
	k := pkKey(c, "users", "7")
	if _, ok, err := c.Get(context.Background(), k); ok || err != nil {
		t.Fatalf("Get of a missing key: ok=%v err=%v", ok, err)
	}
	if err := c.Set(context.Background(), k, []byte("seven")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Get(context.Background(), k); !ok || err != nil || string(v) != "seven" {
		t.Fatalf("Get after Set = %q, %v, %v", v, ok, err)
	}
	expectHit(t, c, k, "seven")
	c.InvalidateObject(context.Background(), "users", 7)
	if _, ok, _ := c.Get(context.Background(), k); ok {
		t.Error("Get after invalidation hit")
	}
}

func TestTableStats(t *testing.T) {
	c := newTestCache(t, Options{})
	users := tableKey(c, "users", "SELECT * FROM users")
	join := tableKey(c, "users", "SELECT * FROM users JOIN orders")
	join.Tables = []string{"users", "orders"}
	join.Versions = []string{c.Namespace().TableVersion("users"), c.Namespace().TableVersion("orders")}
	populate(t, c, users, join) // users: 2 misses, 2 hits; orders: 1 miss, 1 hit
	expectHit(t, c, join, join.Label)
	c.InvalidateTables(context.Background(), "users", "users")
	c.InvalidateObject(context.Background(), "orders", 9)
	c.Invalidate(context.Background(), Change{Rows: []Row{{"orders", "1"}, {"orders", "2"}}, Tables: []string{"orders"}})
	expectMiss(t, c, join, "j2")
	s := c.Stats()
	want := map[string]TableStats{
		"users":  {Hits: 3, Misses: 3, Invalidations: 1},
		"orders": {Hits: 2, Misses: 2, Invalidations: 2},
	}
	for table, w := range want {
		got := s.Tables[table]
		if got.Hits != w.Hits || got.Misses != w.Misses || got.Invalidations != w.Invalidations {
			t.Errorf("Tables[%s] = %+v; want %+v", table, got, w)
		}
		r := got.MissReasons
		if r.Absent+r.Stale+r.Expired+r.Corrupt != got.Misses {
			t.Errorf("Tables[%s].MissReasons = %+v; want them to add up to its %d misses", table, r, got.Misses)
		}
	}
	if len(s.Tables) != 2 {
		t.Errorf("Tables = %v", s.Tables)
	}
	if s.Invalidations != 3 {
		t.Errorf("Invalidations = %d; want 3", s.Invalidations)
	}
}

func TestCloseIsIdempotentAndStopsRetry(t *testing.T) {
	st := newFaultyStore()
	c, err := New(Options{Store: st, RetryInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st.failBump.Store(true)
	c.InvalidateTables(context.Background(), "users")
	if c.retryDone == nil {
		t.Fatal("no retry loop after an undelivered invalidation")
	}
	bumps := st.bumps.Load()
	waitFor(t, "the retry loop to run", func() bool { return st.bumps.Load() > bumps })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.retryDone:
	default:
		t.Fatal("Close returned with the retry loop still running")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := st.closes.Load(); n != 1 {
		t.Errorf("store closed %d times; want 1", n)
	}
	// After Close no retry loop starts again, and no retry runs.
	bumps = st.bumps.Load()
	c.InvalidateTables(context.Background(), "orders")
	if got := st.bumps.Load(); got != bumps+1 {
		t.Errorf("bumps after Close: %d -> %d; want only Invalidate's own", bumps, got)
	}

	// Close without a retry loop ever started.
	c2, _ := New(Options{Store: NewMemoryStore(MemoryOptions{})})
	if err := c2.Close(); err != nil || c2.Close() != nil {
		t.Error("Close of an idle cache failed")
	}
}
