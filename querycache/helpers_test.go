package querycache

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/keys"
)

// newTestCache returns a Cache on a fresh MemoryStore, closed at the end of
// the test.
func newTestCache(t testing.TB, opts Options) *Cache {
	t.Helper()
	if opts.Store == nil {
		opts.Store = NewMemoryStore(MemoryOptions{})
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tableKey is the key of a query reading table, built the way the GORM
// plugin builds it: it depends on the table's version.
func tableKey(c *Cache, table, sql string) Key {
	ns := c.Namespace()
	return Key{
		Name:     ns.Query("main", keys.Sum([]byte(sql))),
		Versions: []string{ns.TableVersion(table)},
		Tables:   []string{table},
		Label:    sql,
	}
}

// pkKey is the key of a lookup by primary key: it depends on the row's
// object version and the table's bulk version.
func pkKey(c *Cache, table, pk string) Key {
	ns := c.Namespace()
	sql := "SELECT * FROM " + table + " WHERE id = ?"
	return Key{
		Name:     ns.Object("main", table, pk, keys.Sum([]byte(sql))),
		Versions: []string{ns.ObjectVersion(table, pk), ns.BulkVersion(table)},
		Tables:   []string{table},
		Label:    sql + " " + pk,
	}
}

// counter is a FillFunc that returns value and counts its calls.
type counter struct {
	calls atomic.Int64
	value string
}

func (f *counter) fill(context.Context) (Fill, error) {
	f.calls.Add(1)
	return Fill{Value: []byte(f.value)}, nil
}

func fillValue(v string) FillFunc {
	return func(context.Context) (Fill, error) { return Fill{Value: []byte(v)}, nil }
}

// mustNotFill fails the test if a lookup that should hit calls fill.
func mustNotFill(t *testing.T) FillFunc {
	return func(context.Context) (Fill, error) {
		t.Error("fill called on what should be a hit")
		return Fill{Value: []byte("unexpected fill")}, nil
	}
}

// lookup runs GetOrSet and fails the test on error.
func lookup(t *testing.T, c *Cache, k Key, fill FillFunc) (string, bool) {
	t.Helper()
	v, hit, err := c.GetOrSet(context.Background(), k, fill)
	if err != nil {
		t.Fatalf("GetOrSet(%s): %v", k.Label, err)
	}
	return string(v), hit
}

// expectHit checks that k is served from the cache with value want.
func expectHit(t *testing.T, c *Cache, k Key, want string) {
	t.Helper()
	v, hit := lookup(t, c, k, mustNotFill(t))
	if !hit || v != want {
		t.Errorf("%s: got %q hit=%v; want hit %q", k.Label, v, hit, want)
	}
}

// expectMiss checks that k is not served from the cache: fill runs and its
// value is returned.
func expectMiss(t *testing.T, c *Cache, k Key, fillWith string) {
	t.Helper()
	f := &counter{value: fillWith}
	v, hit := lookup(t, c, k, f.fill)
	if hit || f.calls.Load() != 1 || v != fillWith {
		t.Errorf("%s: got %q hit=%v fills=%d; want a miss filled with %q", k.Label, v, hit, f.calls.Load(), fillWith)
	}
}

var errInjected = errors.New("injected store failure")

// faultyStore wraps a MemoryStore with switchable failures of Fetch, Put
// and Bump: fault injection on the engine's own Store interface.
type faultyStore struct {
	*MemoryStore
	failFetch, failPut, failBump atomic.Bool
	fetches, puts, bumps, closes atomic.Int64
}

func newFaultyStore() *faultyStore {
	return &faultyStore{MemoryStore: NewMemoryStore(MemoryOptions{})}
}

func (s *faultyStore) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	s.fetches.Add(1)
	if s.failFetch.Load() {
		return nil, nil, errInjected
	}
	return s.MemoryStore.Fetch(ctx, key, versions)
}

func (s *faultyStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.puts.Add(1)
	if s.failPut.Load() {
		return errInjected
	}
	return s.MemoryStore.Put(ctx, key, value, ttl)
}

func (s *faultyStore) Bump(ctx context.Context, versions []string) error {
	s.bumps.Add(1)
	if s.failBump.Load() {
		return errInjected
	}
	return s.MemoryStore.Bump(ctx, versions)
}

func (s *faultyStore) Close() error {
	s.closes.Add(1)
	return s.MemoryStore.Close()
}

// fakeClock is an Options.Now that only moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// flightWaiters returns how many callers joined another caller's fill
// still in flight, so that tests can wait until every goroutine has joined
// without sleeping.
func flightWaiters(g *fillGroup) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.m {
		n += c.dups
	}
	return n
}

// waitJoined waits until `callers` goroutines have missed and all but the
// leader wait on its fill.
func waitJoined(t *testing.T, c *Cache, missesBefore uint64, callers int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Misses-missesBefore < uint64(callers) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d callers missed", c.Stats().Misses-missesBefore, callers)
		}
		runtime.Gosched()
	}
	for flightWaiters(&c.flight) < callers-1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d callers joined the fill", flightWaiters(&c.flight), callers-1)
		}
		runtime.Gosched()
	}
}

// tokenList returns an entry's recorded tokens as a slice.
func (e entry) tokenList() []uint64 {
	out := make([]uint64, e.count())
	for i := range out {
		out[i] = e.token(i)
	}
	return out
}
