package querycache

// Hostile tests of the multi-process stores (RedisStore, TieredStore):
// garbage under our names, ambiguous names, a huge value, and a model
// database checked for read-your-writes while connections are killed and
// garbage is published. Every test uses its own prefix on the shared
// Redis (testenv.TestPrefix) or a private server.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
)

// hostileRedisCache returns a Cache on a RedisStore over a new client of
// the shared Redis, under prefix, with generous timeouts (the machine is
// shared and tests run with -race) unless ropts sets its own.
func hostileRedisCache(t *testing.T, prefix string, ropts RedisOptions, opts Options) (*Cache, *RedisStore, *redis.Client) {
	t.Helper()
	opt, err := redis.ParseURL(testenv.SharedRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	if ropts.Timeout == 0 {
		ropts.Timeout = 5 * time.Second
	}
	if ropts.InvalidateTimeout == 0 {
		ropts.InvalidateTimeout = 5 * time.Second
	}
	store := NewRedisStore(client, ropts)
	opts.Store, opts.Prefix = store, prefix
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, store, client
}

// The coalescer merges Fetch calls whose key and version names, joined
// with NUL bytes, are the same string. Names are not NUL-free by
// construction for GetOrSet (Key.Name and Key.Versions are the caller's),
// so two different lookups can be merged:
//
//	A: key N+"\x00"+V1, versions [V2]
//	B: key N,           versions [V1, V2]
//
// Both are "N\x00V1\x00V2". When B joins A's batch it gets A's entry (a
// different key: a different query's result) and one token for two
// versions.
func TestHostileCoalescerKeysAreUnambiguous(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	_, store, client := hostileRedisCache(t, prefix, RedisOptions{}, Options{})
	ctx := context.Background()
	n, v1, v2 := prefix+"q:n", prefix+"v:one", prefix+"v:two"
	keyA, verA := n+"\x00"+v1, []string{v2}
	keyB, verB := n, []string{v1, v2}
	if err := client.Set(ctx, keyA, "value of A", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Set(ctx, keyB, "value of B", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	var wrong atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200 && wrong.Load() == 0; i++ {
				key, ver, want := keyA, verA, "value of A"
				if (g+i)%2 == 1 {
					key, ver, want = keyB, verB, "value of B"
				}
				v, tokens, err := store.Fetch(ctx, key, ver)
				if err != nil {
					continue
				}
				if string(v) != want || len(tokens) != len(ver) {
					if wrong.Add(1) == 1 {
						first.Store(fmt.Sprintf("Fetch(%q, %q) = %q with %d tokens; want %q with %d", key, ver, v, len(tokens), want, len(ver)))
					}
				}
			}
		}()
	}
	wg.Wait()
	if wrong.Load() > 0 {
		t.Fatalf("%d fetches answered with another key's round trip; first: %v", wrong.Load(), first.Load())
	}
}

// The same ambiguity in a TieredStore: the token slice shorter than the
// version names reaches fillVersions, which indexes it by version: a
// panic in the caller's goroutine.
func TestHostileTieredAmbiguousNamesDoNotPanic(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	p := newTieredProc(t, tieredProcOpts{prefix: prefix})
	p.waitSubscribed(t)
	ctx := context.Background()
	n, v1, v2 := prefix+"q:n", prefix+"v:one", prefix+"v:two"
	var panics atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200 && panics.Load() == 0; i++ {
				// Fresh names each round: L1 holds none of them, so every
				// Fetch goes to Redis (and through the coalescer).
				r := strconv.Itoa(i)
				key, ver := n+r+"\x00"+v1+r, []string{v2 + r}
				if (g+i)%2 == 1 {
					key, ver = n+r, []string{v1 + r, v2 + r}
				}
				func() {
					defer func() {
						if e := recover(); e != nil {
							if panics.Add(1) == 1 {
								first.Store(fmt.Sprint(e))
							}
						}
					}()
					_, _, _ = p.store.Fetch(ctx, key, ver)
				}()
			}
		}()
	}
	wg.Wait()
	if panics.Load() > 0 {
		t.Fatalf("%d TieredStore.Fetch calls panicked; first: %v", panics.Load(), first.Load())
	}
}

// Another program's hash under the server marker (prefix + "v:server")
// is garbage like any other key of another type under our names: it must
// cost at most a miss. The marker script's GET fails with WRONGTYPE in
// OnConnect, so no connection can be made: the breaker opens and the
// prober (which needs a connection too) never closes it.
func TestHostileMarkerOfAnotherType(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	opt, err := redis.ParseURL(testenv.SharedRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opt)
	defer admin.Close()
	ctx := context.Background()
	if err := admin.HSet(ctx, prefix+"v:server", "owner", "another program").Err(); err != nil {
		t.Fatal(err)
	}
	c, store, _ := hostileRedisCache(t, prefix, RedisOptions{Timeout: time.Second, BreakerProbe: 50 * time.Millisecond}, Options{})
	k := Key{Name: prefix + "q:marker", Versions: []string{prefix + "v:tbl:t"}}
	var fills atomic.Int64
	deadline := time.Now().Add(5 * time.Second)
	hit := false
	for !hit && time.Now().Before(deadline) {
		var err error
		_, hit, err = c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
			fills.Add(1)
			return Fill{Value: []byte("db")}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !hit {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !hit {
		t.Fatalf("no hit in 5s with a hash under %sv:server: %d fills, breaker open %v, stats %+v", prefix, fills.Load(), store.BreakerOpen(), c.Stats())
	}
}

// garbageEntry is a value that starts like an entry (magic "qc", format
// 3) and claims to have been created at created, followed by junk: its
// CRC is wrong, so every reader treats it as a miss.
func garbageEntry(created int64) []byte {
	b := []byte{entryMagic0, entryMagic1, entryFormat}
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().Add(time.Hour).UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(created))
	return append(b, "junk written by someone else"...)
}

// A corrupt value under an entry's name is a miss, and the next fill
// replaces it. The fenced fill (PutLeased) refuses to overwrite an entry
// "created after ours" judged by bytes 11-18 alone, before the entry is
// checked at all: garbage (or a valid entry from a host whose clock is far
// ahead) claiming a future creation time, with no TTL, keeps the key a
// miss forever: every lookup queries the database.
func TestHostileFutureGarbageEntryIsReplaced(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	c, _, client := hostileRedisCache(t, prefix, RedisOptions{}, Options{})
	ctx := context.Background()
	k := Key{Name: prefix + "q:future", Versions: []string{prefix + "v:tbl:t"}, TTL: time.Minute}
	if err := client.Set(ctx, k.Name, garbageEntry(time.Now().Add(24*time.Hour).UnixNano()), 0).Err(); err != nil {
		t.Fatal(err)
	}
	var fills atomic.Int64
	for i := 0; i < 3; i++ {
		_, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
			fills.Add(1)
			return Fill{Value: []byte("db")}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if fills.Load() != 1 {
		t.Fatalf("3 lookups made %d fills; want 1 (the garbage replaced by the first); stats %+v", fills.Load(), c.Stats())
	}
}

// A huge value under one entry's name (another program's blob) makes
// every Fetch of that key read it, time out and count a failure. When
// that key is hot, the breaker opens for every key, and each time the
// prober closes it the epoch is replaced: every entry of every process is
// invalidated. One bad key must not cost the whole cache.
func TestHostileHugeValueDoesNotOpenTheBreaker(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 8})
	t.Cleanup(func() { client.Close() })
	// No heartbeat: what is tested is that the lookups of one huge value
	// do not open the breaker; a heartbeat that times out behind the
	// value's transfer (a stall, as far as it can tell) may.
	store := NewRedisStore(client, RedisOptions{Timeout: 100 * time.Millisecond, BreakerProbe: 50 * time.Millisecond, Heartbeat: -1})
	c, err := New(Options{Store: store, Prefix: "h:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	huge := Key{Name: "h:q:huge", Versions: []string{"h:v:tbl:t"}}
	if err := client.Set(ctx, huge.Name, strings.Repeat("x", 64<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	other := Key{Name: "h:q:other", Versions: []string{"h:v:tbl:u"}, TTL: time.Hour}
	if _, _, err := c.GetOrSet(ctx, other, fillValue("other")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 12; i++ {
		if _, _, err := c.GetOrSet(ctx, huge, fillValue("db")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let a probe close the breaker, if it opened
	_, hit, err := c.GetOrSet(ctx, other, fillValue("other"))
	if err != nil {
		t.Fatal(err)
	}
	if store.BreakerOpenings() > 0 || !hit {
		t.Fatalf("one huge value: breaker opened %d times, another key's entry hit %v (stats %+v)", store.BreakerOpenings(), hit, c.Stats())
	}
}

// hostileProc is one "process" of a read-your-writes run: its own client
// (named, so that chaos kills only this test's connections on the shared
// server) and cache.
type hostileProc struct {
	cache  *Cache
	client *redis.Client
}

func newHostileProc(t *testing.T, prefix, name, kind string) hostileProc {
	t.Helper()
	opt, err := redis.ParseURL(testenv.SharedRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.ClientName = name
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	ropts := RedisOptions{Timeout: 5 * time.Second, InvalidateTimeout: 5 * time.Second}
	var store Store
	switch kind {
	case "redis":
		store = NewRedisStore(client, ropts)
	case "tiered":
		store = NewTieredStore(NewRedisStore(client, ropts), TieredOptions{PingInterval: 10 * time.Second})
	case "strict":
		store = NewTieredStore(NewRedisStore(client, ropts), TieredOptions{Strict: true, PingInterval: 10 * time.Second})
	}
	c, err := New(Options{Store: store, Prefix: prefix, RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if ts, ok := store.(*TieredStore); ok && kind == "tiered" {
		tieredWait(t, "the subscription", ts.Subscribed)
	}
	return hostileProc{cache: c, client: client}
}

// killNamed kills the connections of clients named name (subscriptions
// too when subs is set).
func killNamed(ctx context.Context, admin *redis.Client, name string, subs bool) {
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		return
	}
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") || (!subs && !strings.Contains(line, " sub=0 ")) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				_ = admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err()
			}
		}
	}
}

// A model database (one counter) behind a writer and readers, in one
// process (local) or two (cross), while connections are killed, garbage
// is published on the channel and written under version and entry names.
// A read that starts after an invalidation returned must never see a
// value older than the write it followed (C1); the writer's own process
// must not even after an invalidation that failed (it is pending, C4).
func TestHostileReadYourWritesUnderChaos(t *testing.T) {
	for _, tc := range []struct {
		kind  string
		cross bool // readers in another process (C1 across processes)
	}{
		{"redis", true}, {"strict", true}, {"tiered", false}, {"redis", false},
	} {
		t.Run(fmt.Sprintf("%s/cross=%v", tc.kind, tc.cross), func(t *testing.T) {
			prefix := testenv.TestPrefix(t)
			name := "qcth-" + strings.TrimSuffix(strings.TrimPrefix(prefix, "qct:"), ":")
			w := newHostileProc(t, prefix, name, tc.kind)
			r := w
			if tc.cross {
				r = newHostileProc(t, prefix, name, tc.kind)
			}
			ctx := context.Background()
			ns := w.cache.Namespace()
			key := Key{Name: ns.Query("main", [32]byte{1}), Versions: []string{ns.TableVersion("t")}, TTL: time.Minute}

			var db, committed atomic.Int64
			var stale, reads, hits atomic.Int64
			var first atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			raise := func(n int64) {
				for {
					c := committed.Load()
					if n <= c || committed.CompareAndSwap(c, n) {
						return
					}
				}
			}
			admin := sideClient(t, "")
			wg.Add(1)
			go func() { // writer
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					n := db.Add(1)
					err := w.cache.InvalidateTables(ctx, "t")
					if err == nil || !tc.cross {
						raise(n)
					}
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
				}
			}()
			for g := 0; g < 6; g++ {
				wg.Add(1)
				go func() { // readers
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						floor := committed.Load()
						v, hit, err := r.cache.GetOrSet(ctx, key, func(context.Context) (Fill, error) {
							if rand.IntN(4) == 0 {
								time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
							}
							return Fill{Value: []byte(strconv.FormatInt(db.Load(), 10))}, nil
						})
						if err != nil {
							t.Errorf("GetOrSet: %v", err)
							return
						}
						reads.Add(1)
						if hit {
							hits.Add(1)
						}
						got, _ := strconv.ParseInt(string(v), 10, 64)
						if got < floor {
							if stale.Add(1) == 1 {
								first.Store(fmt.Sprintf("read %d (hit %v) after write %d's invalidation returned", got, hit, floor))
							}
						}
					}
				}()
			}
			wg.Add(1)
			go func() { // chaos
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(15 * time.Millisecond):
					}
					switch i % 5 {
					case 0:
						killNamed(ctx, admin, name, i%10 == 0)
					case 1:
						admin.Publish(ctx, prefix+tieredChannel, "\x00garbage")
					case 2:
						admin.Del(ctx, key.Versions[0])
						admin.HSet(ctx, key.Versions[0], "f", "v")
					case 3:
						admin.Del(ctx, key.Name)
						admin.RPush(ctx, key.Name, "x")
					case 4:
						admin.Set(ctx, key.Versions[0], "not a token", 0)
					}
				}
			}()
			time.Sleep(3 * time.Second)
			close(stop)
			wg.Wait()
			t.Logf("%d reads, %d hits, %d writes", reads.Load(), hits.Load(), db.Load())
			if stale.Load() > 0 {
				t.Fatalf("%d stale reads; first: %v", stale.Load(), first.Load())
			}
		})
	}
}
