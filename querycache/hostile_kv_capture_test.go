package querycache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/querycache"
)

// Hostile review of the low-level API's dependency capture and typed
// helpers (commits d06646e, 12606c2). Each test states what a production
// user is promised and checks it; the ones named ...Stale... or ...Zero...
// showed a bug when they were written (see the review report).

// hkvQuery reads a cached query result that depends on table, through
// the Cache's own GetOrSet (what the GORM plugin does), in ctx: a capture
// in ctx records the table's version.
func hkvQuery(t *testing.T, ctx context.Context, c *querycache.Cache, table, v string) {
	t.Helper()
	k := querycache.Key{Name: c.Namespace().Query("db", [32]byte{byte(len(table)), 'h'}), Versions: []string{c.Namespace().TableVersion(table)}}
	if _, _, err := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte(v)}, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestHostileKVCapturedFollowerAfterWriteGetsStaleValue: C1 says a read
// that starts after a write's commit has returned never returns a result
// older than that write. GetOrSetCaptured shares one fill among the
// concurrent misses of a key, keyed by the key alone: a caller that
// starts after the write joins a fill that started (and read) before it,
// and is handed the pre-write value. GetOrSet keys its flights by the
// tokens read, so a caller after a write gets a flight of its own; the
// captured form needs the same (for instance: a follower re-checks, after
// the flight, that no version the leader captured has moved since it
// joined, and fills itself when one has).
func TestHostileKVCapturedFollowerAfterWriteGetsStaleValue(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		entered := make(chan struct{})
		release := make(chan struct{})
		var relOnce sync.Once
		leaderDone := make(chan string, 1)
		go func() {
			v, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
				hkvQuery(t, ctx, c, "users", "u")
				close(entered)
				<-release
				return []byte("rendered before the write"), nil
			})
			if err != nil {
				t.Error(err)
			}
			leaderDone <- string(v)
		}()
		<-entered
		// The write commits, and its invalidation has returned.
		must(t, c.InvalidateTables(bg, "users"))

		followerDone := make(chan string, 1)
		go func() {
			v, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
				hkvQuery(t, ctx, c, "users", "u2")
				return []byte("rendered after the write"), nil
			})
			if err != nil {
				t.Error(err)
			}
			followerDone <- string(v)
		}()
		var got string
		select {
		case got = <-followerDone: // it filled on its own: fine
		case <-time.After(3 * time.Second):
			// It is waiting for the leader's fill, which read before the write.
			relOnce.Do(func() { close(release) })
			got = <-followerDone
		}
		relOnce.Do(func() { close(release) })
		<-leaderDone
		if got != "rendered after the write" {
			t.Fatalf("a GetOrSetCaptured that started after the write returned %q (C1)", got)
		}
	})
}

// TestHostileKVRememberTypeChangeStoresStaleValue: Remember over a value
// of another type (a deploy that changed the cached struct) computes the
// value and stores it with SetAs, which reads the dependencies' versions
// after fn ran: a write that committed while fn computed is recorded as
// already seen, and the value computed before it is served afterwards
// (C2). Remember's own promise is "their versions are read before fn
// runs". Fix: on that path store against the tokens getOrSet read before
// the fill (as kv.fill does), not through SetAs.
func TestHostileKVRememberTypeChangeStoresStaleValue(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, querycache.SetAs(bg, kv, "profile", "a string from the old release", querycache.DependsOn("users")))
		n, err := querycache.Remember(bg, kv, "profile", 0, func(ctx context.Context) (int, error) {
			// Read from the database, then a write commits before we store.
			must(t, c.InvalidateTables(ctx, "users"))
			return 1, nil
		}, querycache.DependsOn("users"))
		if err != nil || n != 1 {
			t.Fatalf("Remember = %d, %v", n, err)
		}
		if got, ok, err := querycache.GetAs[int](bg, kv, "profile", querycache.DependsOn("users")); ok {
			t.Fatalf("the value computed before a write to users is served after it: %d, %v (C2)", got, err)
		}
		calls := 0
		n, err = querycache.Remember(bg, kv, "profile", 0, func(context.Context) (int, error) {
			calls++
			return 2, nil
		}, querycache.DependsOn("users"))
		if err != nil || n != 2 || calls != 1 {
			t.Fatalf("Remember after the write = %d, %v (fn ran %d times); want the value computed after the write", n, err, calls)
		}
	})
}

// TestHostileKVRememberFollowerOfOtherTypeGetsZero: two Remember calls of
// one key with different types (two releases side by side during a
// rolling deploy, or two call sites) that miss together share one fill.
// The follower cannot decode the leader's value into its type and returns
// its own fn's result, which was never computed: the zero value, with a
// nil error. It should compute its own value (or return an error). Fix:
// key the flight by the kind and the Go type too, or run fn when the
// shared value does not decode.
func TestHostileKVRememberFollowerOfOtherTypeGetsZero(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	entered := make(chan struct{})
	release := make(chan struct{})
	var relOnce sync.Once
	leader := make(chan error, 1)
	go func() {
		_, err := querycache.Remember(bg, kv, "shared", 0, func(context.Context) (string, error) {
			close(entered)
			<-release
			return "text", nil
		})
		leader <- err
	}()
	<-entered
	type result struct {
		n   int
		err error
	}
	follower := make(chan result, 1)
	go func() {
		n, err := querycache.Remember(bg, kv, "shared", 0, func(context.Context) (int, error) { return 42, nil })
		follower <- result{n, err}
	}()
	var r result
	select {
	case r = <-follower:
	case <-time.After(3 * time.Second):
		relOnce.Do(func() { close(release) })
		r = <-follower
	}
	relOnce.Do(func() { close(release) })
	must(t, <-leader)
	if r.err == nil && r.n != 42 {
		t.Fatalf("Remember[int] beside a Remember[string] of the same key = %d, nil error; want its fn's 42 or an error", r.n)
	}
}

// TestHostileKVCapturedPageMissesSetOfValueItShowed: Capture promises
// that a page stored against what it read "is invalidated by the first
// write to anything it showed". A page that shows a low-level value (a
// banner, a counter) records only what that value depends on, not the
// value itself: a Set, Incr or Delete of the value leaves the page served
// with the old one. Fix: give each low-level key a version of its own
// (v:kv:<name>), recorded by reads in a capture and bumped by every
// change of the value (Set, Add, Incr, Delete, Touch need not), or
// document that captured pages do not follow changes of low-level values.
func TestHostileKVCapturedPageMissesSetOfValueItShowed(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must(t, kv.Set(bg, "banner", []byte("old banner")))
		must(t, kv.Set(bg, "visits", []byte("1")))
		page := func() string {
			v, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
				hkvQuery(t, ctx, c, "users", "u")
				b, _, err := kv.Get(ctx, "banner")
				if err != nil {
					return nil, err
				}
				n, _, err := kv.Get(ctx, "visits")
				return []byte(string(b) + "|" + string(n)), err
			})
			must(t, err)
			return string(v)
		}
		if got := page(); got != "old banner|1" {
			t.Fatalf("page = %q", got)
		}
		must(t, kv.Set(bg, "banner", []byte("new banner")))
		if got := page(); got != "new banner|1" {
			t.Errorf("after Set of the banner the page shows %q; want \"new banner|1\"", got)
		}
		if _, err := kv.Incr(bg, "visits", 1); err != nil {
			t.Fatal(err)
		}
		if got := page(); got != "new banner|2" {
			t.Errorf("after Incr of the counter the page shows %q; want \"new banner|2\"", got)
		}
	})
}

// TestHostileKVDependsOnCaptureStoresUntrackedWork: a capture that
// recorded an untracked read (a query the cache did not cache: no
// version stands for it) is stored by Set/Add with DependsOnCapture as
// if it were complete; GetOrSetCaptured refuses such a value ("a page
// cache should then not store the page"). The value is then served after
// a write to what the untracked read showed. Fix: DependsOnCapture of a
// capture with Untracked() > 0 makes the call fail (an error naming the
// reasons), or stores nothing.
func TestHostileKVDependsOnCaptureStoresUntrackedWork(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	ctx, cp := querycache.WithCapture(bg)
	hkvQuery(t, ctx, c, "users", "u")
	querycache.Untracked(ctx, "not_cached") // a read of orders the cache did not see
	err = kv.Set(bg, "page", []byte("users and orders"), querycache.DependsOnCapture(cp))
	if err != nil {
		return // refused: fine
	}
	must(t, c.InvalidateTables(bg, "orders"))
	if v, ok, _ := kv.Get(bg, "page"); ok {
		t.Fatalf("a value built from an untracked read was stored with DependsOnCapture and is served after a write: %q", v)
	}
}

// TestHostileKVNestedCaptureFollowerRecordsLeaderDeps: a follower of a
// GetOrSetCaptured flight records, in its own capture, what the leader's
// fill read, so an outer page built by the follower depends on it. (An
// attack that failed: the follower records the leader's versions.)
func TestHostileKVNestedCaptureFollowerRecordsLeaderDeps(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	entered := make(chan struct{})
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, err := kv.GetOrSetCaptured(bg, "fragment", func(ctx context.Context) ([]byte, error) {
			hkvQuery(t, ctx, c, "orders", "o")
			close(entered)
			<-release
			return []byte("frag"), nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-entered
	ctx, cp := querycache.WithCapture(bg)
	fdone := make(chan struct{})
	go func() {
		defer close(fdone)
		_, _, err := kv.GetOrSetCaptured(ctx, "fragment", func(ctx context.Context) ([]byte, error) {
			hkvQuery(t, ctx, c, "orders", "o")
			return []byte("frag"), nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(200 * time.Millisecond) // let it join
	close(release)
	<-done
	<-fdone
	names, _ := cp.Versions()
	want := c.Namespace().TableVersion("orders")
	for _, n := range names {
		if n == want {
			return
		}
	}
	t.Fatalf("the follower's capture holds %v; want %s among them", names, want)
}

// TestHostileKVCaptureUntrackedWhenClosed: GetOrSet on a closed cache
// computes the value with no version read, and must say so to the
// captures of its context (GetOrSetCaptured and the query path do:
// Untracked(ctx, "closed")); otherwise a page built from it is stored,
// by another cache that is still open, as if complete. Fix: call
// Untracked(ctx, "closed") in getOrSet's closed branch.
func TestHostileKVCaptureUntrackedWhenClosed(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	kv := c.KV()
	c.Close()
	ctx, cp := querycache.WithCapture(bg)
	v, hit, err := kv.GetOrSet(ctx, "k", func(context.Context) ([]byte, error) { return []byte("db"), nil })
	if err != nil || hit || string(v) != "db" {
		t.Fatalf("GetOrSet on a closed cache = %q %v %v", v, hit, err)
	}
	if n, _ := cp.Untracked(); n == 0 {
		t.Fatal("GetOrSet on a closed cache left its capture tracked")
	}
}

// TestHostileKVCaptureUntrackedOnStoreError: GetOrSet and GetOrSetCaptured
// whose store is unreachable fall back to the fill and mark the caller's
// capture untracked. (An attack that failed.)
func TestHostileKVCaptureUntrackedOnStoreError(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	c, err := querycache.New(querycache.Options{Store: querycache.NewRedisStore(client, querycache.RedisOptions{Timeout: time.Second})})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	for _, captured := range []bool{false, true} {
		ctx, cp := querycache.WithCapture(bg)
		get := kv.GetOrSet
		if captured {
			get = kv.GetOrSetCaptured
		}
		v, hit, err := get(ctx, "k", func(context.Context) ([]byte, error) { return []byte("db"), nil }, querycache.DependsOn("users"))
		if err != nil || hit || string(v) != "db" {
			t.Fatalf("captured=%v: GetOrSet on an unreachable store = %q %v %v; want the fill's value", captured, v, hit, err)
		}
		if n, _ := cp.Untracked(); n == 0 {
			t.Fatalf("captured=%v: a read that bypassed the store left the capture tracked", captured)
		}
	}
	if s := c.Stats(); s.Errors == 0 && s.Bypasses["store_unavailable"] == 0 {
		t.Fatalf("store failures neither counted as errors nor as bypasses: %+v", s)
	}
}
