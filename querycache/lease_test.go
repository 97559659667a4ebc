package querycache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
)

// leaseEnv is the shared test Redis (logical DB 12 unless
// QUERYCACHE_REDIS_TEST_DB says otherwise) under a key prefix of the
// test's own, deleted when the test ends. Each process() is a Cache on a
// go-redis client of its own: what separate processes sharing the store
// look like to each other.
type leaseEnv struct {
	t      *testing.T
	url    string
	prefix string
}

func newLeaseEnv(t *testing.T) *leaseEnv {
	t.Helper()
	if os.Getenv("QUERYCACHE_REDIS_TEST_DB") == "" {
		t.Setenv("QUERYCACHE_REDIS_TEST_DB", "12")
	}
	u := testenv.SharedRedis(t)
	return &leaseEnv{t: t, url: u, prefix: testenv.TestPrefix(t)}
}

func (e *leaseEnv) client() *redis.Client {
	e.t.Helper()
	opt, err := redis.ParseURL(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	c := redis.NewClient(opt)
	e.t.Cleanup(func() { c.Close() })
	return c
}

// process returns a Cache on its own client and RedisStore, with the
// env's prefix.
func (e *leaseEnv) process(opts Options) *Cache {
	e.t.Helper()
	opts.Store = NewRedisStore(e.client(), RedisOptions{Timeout: time.Second})
	opts.Prefix = e.prefix
	c, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// leaseExists reports whether the fill lease of key is held.
func (e *leaseEnv) leaseExists(rdb *redis.Client, key string) bool {
	e.t.Helper()
	n, err := rdb.Exists(context.Background(), leaseKey(key)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n == 1
}

// storedPayload decodes the entry stored under key in Redis.
func storedPayload(t *testing.T, rdb *redis.Client, key string) string {
	t.Helper()
	raw, err := rdb.Get(context.Background(), key).Bytes()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	e, err := decodeEntryAt(key, raw)
	if err != nil {
		t.Fatal(err)
	}
	return string(e.payload)
}

func sumStats(cs []*Cache) Stats {
	var s Stats
	for _, c := range cs {
		x := c.Stats()
		s.Fills += x.Fills
		s.Stores += x.Stores
		s.Shared += x.Shared
		s.LeaseAcquired += x.LeaseAcquired
		s.LeaseWaits += x.LeaseWaits
		s.LeaseWaitHits += x.LeaseWaitHits
		s.LeaseTimeouts += x.LeaseTimeouts
		s.EarlyRefreshes += x.EarlyRefreshes
		s.Errors += x.Errors
	}
	return s
}

func TestLeaseKeySharesTheEntrySlot(t *testing.T) {
	for _, key := range []string{"a", "myapp:q:main:abc", "qct:0123:o:main:posts:1:xyz", strings.Repeat("k", 500)} {
		lk := leaseKey(key)
		if got, want := redisSlot(lk), redisSlot(key); got != want {
			t.Errorf("leaseKey(%q) = %q in slot %d; the entry is in slot %d", key, lk, got, want)
		}
		if !strings.HasPrefix(lk, key) {
			t.Errorf("leaseKey(%q) = %q does not start with the key (and its prefix)", key, lk)
		}
	}
	if leaseKey("a") == leaseKey("a:lease{a}") || leaseKey("ab") == leaseKey("a") {
		t.Error("two keys share a lease")
	}
}

// redisSlot is Redis Cluster's key slot: CRC16 (XMODEM) of the hash tag
// or the whole key, modulo 16384.
func redisSlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}

// On a private Redis Cluster: the server agrees that a lease shares its
// entry's slot, the fenced fill (a two-key script) and a waiter work, and
// a caller-chosen name with braces fills without a lease, without errors.
func TestLeaseOnRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t, 3)
	ctx := context.Background()
	process := func(opts Options) *Cache {
		opts.Store = NewRedisStore(cluster.Client(), RedisOptions{Timeout: time.Second})
		opts.Prefix = "lc:"
		c, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := process(Options{}), process(Options{LeaseWait: time.Minute})
	// Each client's first connection to a node of the fresh cluster finds
	// no identity marker there and replaces the epoch (identity.go): let
	// both connect to every node before the test proper.
	for _, c := range []*Cache{a, b} {
		for i := range 60 {
			if _, _, err := c.GetOrSet(ctx, Key{Name: fmt.Sprintf("lc:warm:%d", i)}, fillValue("w")); err != nil {
				t.Fatal(err)
			}
		}
	}
	rdb := cluster.Client()
	bFills := b.Stats().Fills
	k := tableKey(a, "posts", "SELECT * FROM posts")
	for _, key := range []string{k.Name, leaseKey(k.Name)} {
		n, err := rdb.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if uint16(n) != redisSlot(key) {
			t.Fatalf("slot of %q: Redis says %d, redisSlot %d", key, n, redisSlot(key))
		}
	}

	fa := newStalledFill("holder's")
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		_, _, _ = a.GetOrSet(ctx, k, fa.fill)
	}()
	<-fa.started
	bDone := make(chan string)
	go func() {
		v, _, _ := b.GetOrSet(ctx, k, mustNotFill(t))
		bDone <- string(v)
	}()
	waitFor(t, "B to wait for the lease", func() bool { return b.Stats().LeaseWaits == 1 })
	close(fa.release)
	<-aDone
	if v := <-bDone; v != "holder's" {
		t.Fatalf("waiter got %q; holder %+v, waiter %+v", v, a.Stats(), b.Stats())
	}
	a0, b0 := a.Stats(), b.Stats()
	if s := sumStats([]*Cache{a, b}); s.Errors != 0 || s.LeaseWaitHits != 1 || b0.Fills != bFills {
		t.Fatalf("stats %+v", s)
	}
	// The fill extended its versions on their own nodes.
	for _, v := range a.withEpoch(k.Versions) {
		if ttl := rdb.PTTL(ctx, v).Val(); ttl < a.DefaultTTL() {
			t.Errorf("version %s lives %v, less than the entry", v, ttl)
		}
	}

	braces := Key{Name: "lc:{user}:name", Versions: k.Versions}
	expectMiss(t, a, braces, "x")
	expectHit(t, b, braces, "x")
	if s := a.Stats(); s.Errors != 0 || s.LeaseAcquired != a0.LeaseAcquired {
		t.Errorf("a name with braces: %+v", s)
	}
}

func TestLeaseOptions(t *testing.T) {
	mem := NewMemoryStore(MemoryOptions{})
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{Store: mem, Lease: 7}, "Options.Lease"},
		{Options{Store: mem, LeaseTTL: -time.Second}, "Options.LeaseTTL"},
		{Options{Store: mem, LeaseWait: -time.Second}, "Options.LeaseWait"},
		{Options{Store: mem, EarlyRefreshBeta: math.NaN()}, "Options.EarlyRefreshBeta"},
		{Options{Store: mem, EarlyRefreshBeta: math.Inf(1)}, "Options.EarlyRefreshBeta"},
	} {
		if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v; want an error naming %s", tc.opts, err, tc.want)
		}
	}
	c := newTestCache(t, Options{})
	if c.stamp.leaser != nil || c.stamp.leaseTTL != 2*time.Second || c.stamp.leaseWait != 200*time.Millisecond || c.stamp.beta != 1 {
		t.Errorf("defaults: leaser %v, ttl %v, wait %v, beta %v", c.stamp.leaser, c.stamp.leaseTTL, c.stamp.leaseWait, c.stamp.beta)
	}
	rs := NewRedisStore(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), RedisOptions{})
	if c := newTestCache(t, Options{Store: rs}); c.stamp.leaser == nil {
		t.Error("a RedisStore cache takes no leases by default")
	}
	if c := newTestCache(t, Options{Store: rs, Lease: LeaseOff}); c.stamp.leaser != nil {
		t.Error("LeaseOff still takes leases")
	}
}

// (a) Many processes missing one key at once query the database about
// once: the lease holder fills, the other processes wait for its value.
func TestLeaseOneFillAcrossProcesses(t *testing.T) {
	for _, api := range []string{"GetOrSet", "Lookup"} {
		t.Run(api, func(t *testing.T) {
			env := newLeaseEnv(t)
			const processes, goroutines, rounds = 4, 50, 5
			cs := make([]*Cache, processes)
			for i := range cs {
				cs[i] = env.process(Options{})
			}
			var fills []int64
			for round := range rounds {
				k := tableKey(cs[0], "posts", fmt.Sprintf("SELECT * FROM posts -- round %d", round))
				var calls atomic.Int64
				want := fmt.Sprintf("rows of round %d", round)
				fill := func(context.Context) (Fill, error) {
					calls.Add(1)
					time.Sleep(20 * time.Millisecond) // the database query
					return Fill{Value: []byte(want)}, nil
				}
				start := make(chan struct{})
				var wg sync.WaitGroup
				errs := make(chan error, processes*goroutines)
				for _, c := range cs {
					for range goroutines {
						wg.Go(func() {
							<-start
							var v []byte
							if api == "GetOrSet" {
								var err error
								if v, _, err = c.GetOrSet(context.Background(), k, fill); err != nil {
									errs <- err
									return
								}
							} else {
								var ok bool
								var m *Miss
								if v, ok, m = c.Lookup(context.Background(), k, LookupOptions{Lead: true}); !ok {
									f, _ := fill(context.Background())
									v = f.Value
									m.Store(v)
								}
							}
							if string(v) != want {
								errs <- fmt.Errorf("got %q; want %q", v, want)
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
				fills = append(fills, calls.Load())
				if n := calls.Load(); n > 3 {
					t.Errorf("round %d: %d processes x %d goroutines ran the query %d times; want about once (at most 3)", round, processes, goroutines, n)
				}
			}
			s := sumStats(cs)
			t.Logf("%s: fills per round %v (of %d callers each); leases %d, waits %d, wait hits %d, timeouts %d, shared %d, errors %d",
				api, fills, processes*goroutines, s.LeaseAcquired, s.LeaseWaits, s.LeaseWaitHits, s.LeaseTimeouts, s.Shared, s.Errors)
			if s.Errors != 0 {
				t.Errorf("%d store errors", s.Errors)
			}
		})
	}
}

// Without leases, each process fills once: the baseline the lease saves.
func TestLeaseOffFillsOncePerProcess(t *testing.T) {
	env := newLeaseEnv(t)
	const processes, goroutines = 4, 50
	cs := make([]*Cache, processes)
	for i := range cs {
		cs[i] = env.process(Options{Lease: LeaseOff})
	}
	k := tableKey(cs[0], "posts", "SELECT * FROM posts")
	var calls atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range cs {
		for range goroutines {
			wg.Go(func() {
				<-start
				_, _, _ = c.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
					calls.Add(1)
					time.Sleep(20 * time.Millisecond)
					return Fill{Value: []byte("rows")}, nil
				})
			})
		}
	}
	close(start)
	wg.Wait()
	s := sumStats(cs)
	t.Logf("LeaseOff: %d processes x %d goroutines ran the query %d times", processes, goroutines, calls.Load())
	if s.LeaseAcquired+s.LeaseWaits != 0 {
		t.Errorf("LeaseOff took %d leases and waited %d times", s.LeaseAcquired, s.LeaseWaits)
	}
}

// stalledFill is a fill that signals when it starts and returns value when
// released (or err, when set).
type stalledFill struct {
	started, release chan struct{}
	value            string
	err              error
}

func newStalledFill(value string) *stalledFill {
	return &stalledFill{started: make(chan struct{}), release: make(chan struct{}), value: value}
}

func (f *stalledFill) fill(context.Context) (Fill, error) {
	close(f.started)
	<-f.release
	if f.err != nil {
		return Fill{}, f.err
	}
	return Fill{Value: []byte(f.value)}, nil
}

// (b) A holder that stalls past its lease while another process fills
// must not overwrite that process's (newer) value, whether the other
// filler has stored and released already or still holds the lease.
func TestLeaseStalledHolderDoesNotOverwrite(t *testing.T) {
	for _, otherDone := range []bool{true, false} {
		t.Run(fmt.Sprintf("otherStored=%v", otherDone), func(t *testing.T) {
			env := newLeaseEnv(t)
			clock := &fakeClock{now: time.Now()}
			opts := Options{Now: clock.Now, LeaseTTL: 100 * time.Millisecond, LeaseWait: 10 * time.Second}
			a, b := env.process(opts), env.process(opts)
			rdb := env.client()
			k := tableKey(a, "posts", "SELECT * FROM posts")

			// A misses, takes the lease and stalls in its query.
			fa := newStalledFill("old")
			aDone := make(chan string)
			go func() {
				v, _, err := a.GetOrSet(context.Background(), k, fa.fill)
				if err != nil {
					t.Error(err)
				}
				aDone <- string(v)
			}()
			<-fa.started
			if !env.leaseExists(rdb, k.Name) || a.Stats().LeaseAcquired != 1 {
				t.Fatalf("A holds no lease: exists %v, stats %+v", env.leaseExists(rdb, k.Name), a.Stats())
			}
			// A's lease expires while it stalls.
			waitFor(t, "A's lease to expire", func() bool { return !env.leaseExists(rdb, k.Name) })

			// B misses later, takes the lease over and fills.
			clock.Advance(time.Second)
			fb := newStalledFill("new")
			bDone := make(chan string)
			go func() {
				v, _, err := b.GetOrSet(context.Background(), k, fb.fill)
				if err != nil {
					t.Error(err)
				}
				bDone <- string(v)
			}()
			<-fb.started
			if b.Stats().LeaseAcquired != 1 || b.Stats().LeaseWaits != 0 {
				t.Fatalf("B did not take the expired lease: %+v", b.Stats())
			}
			if otherDone {
				close(fb.release)
				if v := <-bDone; v != "new" {
					t.Fatalf("B got %q", v)
				}
				if env.leaseExists(rdb, k.Name) {
					t.Fatal("B's lease was not released by its store")
				}
			}

			// A wakes up and stores its older result: refused.
			close(fa.release)
			if v := <-aDone; v != "old" {
				t.Fatalf("A's caller got %q; want its own result", v)
			}
			if sa := a.Stats(); sa.Refusals["lease_lost"] != 1 || sa.Stores != 0 {
				t.Errorf("A: lease_lost %d, stores %d; want its store refused", sa.Refusals["lease_lost"], sa.Stores)
			}
			if !otherDone {
				if !env.leaseExists(rdb, k.Name) {
					t.Fatal("A's refused store released B's lease")
				}
				close(fb.release)
				<-bDone
			}
			if got := storedPayload(t, rdb, k.Name); got != "new" {
				t.Fatalf("stored value %q; want B's newer %q", got, "new")
			}
			expectHit(t, b, k, "new")
			expectHit(t, a, k, "new")
		})
	}
}

// (c) A waiter gives up after LeaseWait, queries and stores itself; the
// holder, finishing later, does not overwrite the newer value.
func TestLeaseWaiterPastLeaseWaitFillsItself(t *testing.T) {
	env := newLeaseEnv(t)
	clock := &fakeClock{now: time.Now()}
	a := env.process(Options{Now: clock.Now, LeaseTTL: time.Minute})
	b := env.process(Options{Now: clock.Now, LeaseWait: 30 * time.Millisecond})
	rdb := env.client()
	k := tableKey(a, "posts", "SELECT * FROM posts")

	fa := newStalledFill("holder's")
	aDone := make(chan string)
	go func() {
		v, _, _ := a.GetOrSet(context.Background(), k, fa.fill)
		aDone <- string(v)
	}()
	<-fa.started

	clock.Advance(time.Second)
	var calls atomic.Int64
	v, hit, err := b.GetOrSet(context.Background(), k, func(context.Context) (Fill, error) {
		calls.Add(1)
		return Fill{Value: []byte("waiter's")}, nil
	})
	if err != nil || hit || string(v) != "waiter's" || calls.Load() != 1 {
		t.Fatalf("waiter: %q hit %v err %v fills %d", v, hit, err, calls.Load())
	}
	sb := b.Stats()
	if sb.LeaseWaits != 1 || sb.LeaseTimeouts != 1 || sb.LeaseWaitHits != 0 || sb.LeaseAcquired != 0 || sb.Stores != 1 {
		t.Errorf("waiter stats: waits %d, timeouts %d, wait hits %d, acquired %d, stores %d; want 1, 1, 0, 0, 1",
			sb.LeaseWaits, sb.LeaseTimeouts, sb.LeaseWaitHits, sb.LeaseAcquired, sb.Stores)
	}
	if got := storedPayload(t, rdb, k.Name); got != "waiter's" {
		t.Fatalf("stored %q", got)
	}

	// The holder finishes: its lease is still its own, but the store holds
	// a result read after its own: kept.
	close(fa.release)
	if v := <-aDone; v != "holder's" {
		t.Fatalf("holder's caller got %q", v)
	}
	if a.Stats().Refusals["lease_lost"] != 1 {
		t.Errorf("holder's store was not refused: %+v", a.Stats())
	}
	if env.leaseExists(rdb, k.Name) {
		t.Error("the holder's refused store left its lease behind")
	}
	if got := storedPayload(t, rdb, k.Name); got != "waiter's" {
		t.Fatalf("the holder overwrote the newer value: %q", got)
	}
}

// A waiter is served the holder's value as soon as it is stored.
func TestLeaseWaiterServedByHolder(t *testing.T) {
	env := newLeaseEnv(t)
	a := env.process(Options{})
	b := env.process(Options{LeaseWait: time.Minute})
	k := tableKey(a, "posts", "SELECT * FROM posts")

	fa := newStalledFill("holder's")
	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		_, _, _ = a.GetOrSet(context.Background(), k, fa.fill)
	}()
	<-fa.started
	type result struct {
		v   string
		hit bool
		err error
	}
	bDone := make(chan result)
	go func() {
		v, hit, err := b.GetOrSet(context.Background(), k, mustNotFill(t))
		bDone <- result{string(v), hit, err}
	}()
	waitFor(t, "B to wait for the lease", func() bool { return b.Stats().LeaseWaits == 1 })
	close(fa.release)
	<-aDone
	r := <-bDone
	if r.err != nil || !r.hit || r.v != "holder's" {
		t.Fatalf("waiter got %+v; want the holder's value as a hit", r)
	}
	if sb := b.Stats(); sb.LeaseWaitHits != 1 || sb.Shared != 1 || sb.Fills != 0 || sb.LeaseTimeouts != 0 {
		t.Errorf("waiter stats %+v", sb)
	}
}

// A holder whose query fails releases its lease: a waiting process takes
// it over at its next poll instead of waiting out LeaseWait.
func TestLeaseFailedFillHandsOver(t *testing.T) {
	env := newLeaseEnv(t)
	a := env.process(Options{})
	b := env.process(Options{LeaseWait: time.Minute})
	rdb := env.client()
	k := tableKey(a, "posts", "SELECT * FROM posts")

	fa := newStalledFill("")
	fa.err = errors.New("query failed")
	aDone := make(chan error)
	go func() {
		_, _, err := a.GetOrSet(context.Background(), k, fa.fill)
		aDone <- err
	}()
	<-fa.started
	bDone := make(chan string)
	go func() {
		v, _, _ := b.GetOrSet(context.Background(), k, fillValue("b's"))
		bDone <- string(v)
	}()
	waitFor(t, "B to wait for the lease", func() bool { return b.Stats().LeaseWaits == 1 })
	close(fa.release)
	if err := <-aDone; err == nil {
		t.Fatal("A's failed query returned no error")
	}
	if v := <-bDone; v != "b's" {
		t.Fatalf("B got %q", v)
	}
	if sb := b.Stats(); sb.LeaseAcquired != 1 || sb.LeaseTimeouts != 0 || sb.Stores != 1 {
		t.Errorf("B did not take over the released lease: %+v", sb)
	}
	if env.leaseExists(rdb, k.Name) {
		t.Error("lease left behind")
	}
}

// Lookup: the Miss stores with its lease, and Abandon releases it.
func TestLeaseLookupMiss(t *testing.T) {
	env := newLeaseEnv(t)
	c := env.process(Options{})
	other := env.process(Options{LeaseWait: time.Minute})
	rdb := env.client()
	ctx := context.Background()
	k := tableKey(c, "posts", "SELECT * FROM posts")

	_, ok, m := c.Lookup(ctx, k, LookupOptions{Lead: true})
	if ok || !env.leaseExists(rdb, k.Name) || m.token == "" {
		t.Fatalf("miss holds no lease (ok %v)", ok)
	}
	m.Abandon("too_large")
	if env.leaseExists(rdb, k.Name) {
		t.Fatal("Abandon left the lease")
	}

	_, ok, m = c.Lookup(ctx, k, LookupOptions{Lead: true})
	if ok || !env.leaseExists(rdb, k.Name) {
		t.Fatal("second miss holds no lease")
	}
	// Another process waits for this miss's value.
	got := make(chan []byte)
	go func() {
		v, ok, m2 := other.Lookup(ctx, k, LookupOptions{Lead: true})
		if !ok {
			m2.Abandon("")
		}
		got <- v
	}()
	waitFor(t, "the other process to wait", func() bool { return other.Stats().LeaseWaits == 1 })
	m.Store([]byte("rows"))
	if v := <-got; string(v) != "rows" {
		t.Fatalf("other process got %q", v)
	}
	if env.leaseExists(rdb, k.Name) {
		t.Fatal("Store left the lease")
	}
	if s := c.Stats(); s.Stores != 1 || s.LeaseAcquired != 2 {
		t.Errorf("stats %+v", s)
	}
	if len(c.stamp.own) != 0 {
		t.Errorf("leases still counted as held: %v", c.stamp.own)
	}
}

// A streaming lookup (Lead false) holds the lease while its caller's code
// runs; that code looking the same key up must not wait for its own
// process's lease.
func TestLeaseNestedLookupDoesNotWaitForItself(t *testing.T) {
	env := newLeaseEnv(t)
	c := env.process(Options{LeaseWait: time.Minute})
	ctx := context.Background()
	k := tableKey(c, "posts", "SELECT * FROM posts")
	_, ok, outer := c.Lookup(ctx, k, LookupOptions{})
	if ok || outer.token == "" {
		t.Fatal("outer miss holds no lease")
	}
	_, ok, inner := c.Lookup(ctx, k, LookupOptions{})
	if ok || inner.token != "" {
		t.Fatal("inner lookup got a lease or a value")
	}
	if s := c.Stats(); s.LeaseWaits != 0 {
		t.Fatalf("the nested lookup waited for its own process's lease: %+v", s)
	}
	inner.Store([]byte("inner"))
	outer.Store([]byte("outer"))
}

// Store failures around the lease fail open: the query runs and succeeds.
func TestLeaseFailsOpen(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	defer client.Close()
	c := newTestCache(t, Options{Store: NewRedisStore(client, RedisOptions{})})
	var calls atomic.Int64
	v, hit, err := c.GetOrSet(context.Background(), Key{Name: "x:q:1"}, func(context.Context) (Fill, error) {
		calls.Add(1)
		return Fill{Value: []byte("db")}, nil
	})
	if err != nil || hit || string(v) != "db" || calls.Load() != 1 {
		t.Fatalf("got %q hit %v err %v calls %d", v, hit, err, calls.Load())
	}
}

// The memory store takes no leases, and behaves as before.
func TestLeaseMemoryStoreHasNone(t *testing.T) {
	c := newTestCache(t, Options{})
	k := tableKey(c, "posts", "SELECT 1")
	expectMiss(t, c, k, "v")
	expectHit(t, c, k, "v")
	if s := c.Stats(); s.LeaseAcquired+s.LeaseWaits != 0 {
		t.Errorf("memory store leases: %+v", s)
	}
}
