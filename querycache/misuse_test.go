package querycache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
)

// A nil OnRecover function is ignored, and one that panics is logged:
// both ran on the prober's goroutine when Redis came back, where the nil
// call and the panic ended the process (a hostile run, issue 8's fortieth
// session). The functions registered beside them still run.
func TestOnRecoverNilAndPanicking(t *testing.T) {
	opt, err := redis.ParseURL(testenv.SharedRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	var down atomic.Bool
	down.Store(true)
	opt.MaxRetries = -1
	opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if down.Load() {
			return nil, errors.New("simulated outage")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	st := NewRedisStore(client, RedisOptions{BreakerProbe: 20 * time.Millisecond, Timeout: testenv.StoreTimeout})
	c := newTestCache(t, Options{Store: st, Prefix: testenv.TestPrefix(t)})
	ran := make(chan struct{}, 1)
	st.OnRecover(nil)
	st.OnRecover(func() { panic("a recovery function's bug") })
	st.OnRecover(func() {
		select {
		case ran <- struct{}{}:
		default:
		}
	})
	fill := func(context.Context) (Fill, error) { return Fill{Value: []byte("v")}, nil }
	for i := 0; i < 10 && !st.BreakerOpen(); i++ {
		_, _, _ = c.GetOrSet(context.Background(), Key{Name: "k"}, fill)
	}
	if !st.BreakerOpen() {
		t.Fatal("the breaker did not open")
	}
	down.Store(false)
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the recovery functions did not run after Redis came back")
	}
}

// A nil OnInvalidate function is ignored: registered, every invalidation
// panicked in the writer's path.
func TestOnInvalidateNil(t *testing.T) {
	c := newTestCache(t, Options{})
	remove := c.OnInvalidate(nil)
	if err := c.InvalidateTables(context.Background(), "users"); err != nil {
		t.Fatal(err)
	}
	remove()
}

// Nil functions and options given to the low-level API are errors of the
// call they are given to (or ignored, where the call has no error): each
// panicked (a hostile run, issue 8's fortieth session).
func TestNilArgumentsAreErrors(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	kv := c.KV()
	want := func(what string, err error, sub string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s: %v; want an error containing %q", what, err, sub)
		}
	}
	_, _, err := c.GetOrSet(ctx, Key{Name: "k"}, nil)
	want("Cache.GetOrSet nil fill", err, "the fill function is nil")
	_, _, err = kv.GetOrSet(ctx, "k", nil)
	want("KV.GetOrSet nil fill", err, "the fill function is nil")
	_, _, err = kv.GetOrSetCaptured(ctx, "k", nil)
	want("KV.GetOrSetCaptured nil fill", err, "the fill function is nil")
	_, err = Remember[int](ctx, kv, "k", time.Minute, nil)
	want("Remember nil fn", err, "the fill function is nil")
	want("KV.Set nil option", kv.Set(ctx, "k", []byte("v"), nil), "KV option 1 of 1 is nil")
	_, err = Remember(ctx, kv, "k", -time.Second, func(context.Context) (int, error) { return 1, nil })
	want("Remember negative TTL", err, "querycache.Remember: the TTL is -1s")
	_, err = NewKV(&Cache{}, KVOptions{})
	want("NewKV zero Cache", err, "not made by querycache.New")
	var codec *nilCodec
	_, err = NewKV(c, KVOptions{Codec: codec})
	want("NewKV typed nil Codec", err, "KVOptions.Codec is a nil")
	want("KV.CheckOptions", kv.CheckOptions(WithTTL(-time.Second)), "WithTTL(-1s)")
	want("zero KV CheckOptions", (&KV{}).CheckOptions(), "not made by querycache.NewKV")

	c.HoldWrites(nil) // ignored: held, every later store with dependencies panicked
	if err := kv.Set(ctx, "d", []byte("v"), DependsOn("users")); err != nil {
		t.Fatal(err)
	}
}

// nilCodec is a Codec whose methods would dereference a nil receiver.
type nilCodec struct{ name string }

func (c *nilCodec) Marshal(v any) ([]byte, error)   { return []byte(c.name), nil }
func (c *nilCodec) Unmarshal(b []byte, v any) error { return errors.New(c.name) }

// A value the store cannot hold, given to the KV API, is the refusal the
// engine's own fills count (too_large_for_store, warned once), not a
// store error with a Warn line each time (a hostile run, issue 8's
// fortieth session); and a KV GetOrSet over MaxEntryBytes is counted as
// the too_large refusal GetOrSetCaptured counts.
func TestKVTooLargeIsARefusal(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: 64 << 10})})
	kv := c.KV()
	big := make([]byte, 100<<10)
	for i := 0; i < 3; i++ {
		if _, _, err := kv.GetOrSet(ctx, "big", func(context.Context) ([]byte, error) { return big, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Errors != 0 || st.Refusals["too_large_for_store"] != 3 {
		t.Errorf("errors %d, refusals %v; want no error and three too_large_for_store", st.Errors, st.Refusals)
	}
	small := newTestCache(t, Options{MaxEntryBytes: 1 << 10})
	if _, _, err := small.KV().GetOrSet(ctx, "big", func(context.Context) ([]byte, error) { return big, nil }); err != nil {
		t.Fatal(err)
	}
	if st := small.Stats(); st.Refusals["too_large"] != 1 {
		t.Errorf("refusals %v; want one too_large", st.Refusals)
	}
}

// The KV API's misses give their reasons, as the engine's do: the reasons
// summed to less than Misses (a hostile run, issue 8's fortieth session).
func TestKVMissReasons(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	kv := c.KV()
	fill := func(context.Context) ([]byte, error) { return []byte("v"), nil }
	if _, ok, err := kv.Get(ctx, "absent"); ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, _, err := kv.GetOrSet(ctx, "a", fill, DependsOn("users")); err != nil { // absent
		t.Fatal(err)
	}
	if err := c.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.GetOrSet(ctx, "a", fill, DependsOn("users")); err != nil { // stale
		t.Fatal(err)
	}
	if _, _, err := kv.GetOrSetCaptured(ctx, "c", fill); err != nil { // absent
		t.Fatal(err)
	}
	st := c.Stats()
	sum := uint64(0)
	for _, n := range st.MissReasons {
		sum += n
	}
	if st.Misses != 4 || sum != st.Misses || st.MissReasons[MissStale] != 1 || st.MissReasons[MissAbsent] != 3 {
		t.Errorf("misses %d, reasons %v; want 4 misses, 3 absent and 1 stale", st.Misses, st.MissReasons)
	}
}

// After Close, a KV GetOrSet computes around the cache and counts no
// fill, as the engine's GetOrSet counts none (it counted one).
func TestKVClosedCountsNoFill(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	kv := c.KV()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fill := func(context.Context) ([]byte, error) { return []byte("v"), nil }
	if v, hit, err := kv.GetOrSet(ctx, "k", fill); err != nil || hit || string(v) != "v" {
		t.Fatalf("GetOrSet after Close: %q %v %v", v, hit, err)
	}
	if v, hit, err := kv.GetOrSetCaptured(ctx, "k", fill); err != nil || hit || string(v) != "v" {
		t.Fatalf("GetOrSetCaptured after Close: %q %v %v", v, hit, err)
	}
	if _, _, err := c.GetOrSet(ctx, Key{Name: "k"}, func(context.Context) (Fill, error) { return Fill{Value: []byte("v")}, nil }); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Fills != 0 || st.Bypasses["closed"] != 3 {
		t.Errorf("fills %d, bypasses %v; want no fill and three closed bypasses", st.Fills, st.Bypasses)
	}
}

// A negative Key.TTL is an error of GetOrSet and Set; it became the
// default TTL without a word (a hostile run, issue 8's fortieth session).
func TestNegativeKeyTTL(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	k := Key{Name: "k", TTL: -time.Second}
	if _, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) { return Fill{Value: []byte("v")}, nil }); err == nil || !strings.Contains(err.Error(), "Key.TTL is -1s") {
		t.Errorf("GetOrSet: %v", err)
	}
	if err := c.Set(ctx, k, []byte("v")); err == nil || !strings.Contains(err.Error(), "Key.TTL is -1s") {
		t.Errorf("Set: %v", err)
	}
	if _, ok, m := c.Lookup(ctx, k, LookupOptions{}); !ok {
		m.Store([]byte("v"))
		if m.Stored() {
			t.Error("a Lookup's Miss stored a value with a negative TTL")
		}
	}
	if st := c.Stats(); st.Stores != 0 {
		t.Errorf("stores %d", st.Stores)
	}
}

// A captured Get that missed depends on the value's own version: the
// capture is invalidated when the value is Set later. It recorded nothing,
// and a page that showed the value absent was served for ever (a hostile
// run, issue 8's fortieth session).
func TestCapturedGetMissInvalidatedBySet(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	kv := c.KV()
	render := func(ctx context.Context) ([]byte, error) {
		v, ok, err := kv.Get(ctx, "announcement")
		if !ok {
			return []byte("none"), err
		}
		return v, err
	}
	if v, _, err := kv.GetOrSetCaptured(ctx, "page", render); err != nil || string(v) != "none" {
		t.Fatalf("first render: %q %v", v, err)
	}
	if err := kv.Set(ctx, "announcement", []byte("site down at 5")); err != nil {
		t.Fatal(err)
	}
	if v, hit, err := kv.GetOrSetCaptured(ctx, "page", render); err != nil || string(v) != "site down at 5" {
		t.Errorf("the page shows %q (hit %v, %v) after the value it showed absent was Set", v, hit, err)
	}
}

// A GetOrSet (or GetOrSetCaptured) that begins after a Delete returned
// computes anew: it joined a fill of the same process begun before the
// Delete, and was handed the value computed from the data before the
// application's write (a hostile run, issue 8's fortieth session).
func TestKVGetOrSetAfterDeleteComputesAnew(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	kv := c.KV()
	for _, captured := range []bool{false, true} {
		key := fmt.Sprintf("k%v", captured)
		getOrSet := kv.GetOrSet
		if captured {
			getOrSet = kv.GetOrSetCaptured
		}
		started, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = getOrSet(ctx, key, func(context.Context) ([]byte, error) {
				close(started)
				<-release // computed from the data as it was before the write
				return []byte("old"), nil
			})
		}()
		<-started
		if _, err := kv.Delete(ctx, key); err != nil { // the application wrote, then purges the key
			t.Fatal(err)
		}
		go func() { time.Sleep(50 * time.Millisecond); close(release) }()
		v, _, err := getOrSet(ctx, key, func(context.Context) ([]byte, error) { return []byte("new"), nil })
		if err != nil || string(v) != "new" {
			t.Errorf("captured %v: begun after Delete returned, got %q (%v); want a value computed anew", captured, v, err)
		}
		<-done
	}
}

// A fill begun before a Delete is not stored after the store evicted the
// Delete's marker: the compare-and-swap found the key absent, as when the
// fill began, and the value computed before the Delete was served to
// every caller (a hostile run, issue 8's fortieth session).
func TestKVFillAfterEvictedDeleteNotStored(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: 1 << 20})})
	kv := c.KV()
	for _, captured := range []bool{false, true} {
		key := fmt.Sprintf("k%v", captured)
		getOrSet := kv.GetOrSet
		if captured {
			getOrSet = kv.GetOrSetCaptured
		}
		started, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = getOrSet(ctx, key, func(context.Context) ([]byte, error) {
				close(started)
				<-release
				return []byte("old"), nil
			})
		}()
		<-started
		if _, err := kv.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2000; i++ { // other traffic evicts the marker
			if err := kv.Set(ctx, fmt.Sprintf("other%d", i), make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
		}
		close(release)
		<-done
		if v, ok, _ := kv.Get(ctx, key); ok {
			t.Errorf("captured %v: served %q after Delete returned", captured, v)
		}
	}
}
