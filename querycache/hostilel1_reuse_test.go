package querycache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHostileL1NewCacheOnClosedStoreLosesWritesForGood: a cache closed
// and made again on the same RedisStore. The store's prober and heartbeat
// are gone (goLive refuses after Close): once the breaker opened (a short
// network cut), only a write's own probe could close it, and a stall was
// never noticed by an idle process. querycache.New accepted the closed
// store without a word; it now refuses it, saying how to fix it.
func TestHostileL1NewCacheOnClosedStoreLosesWritesForGood(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, querycache.RedisOptions{BreakerProbe: 50 * time.Millisecond})
	a, err := querycache.New(querycache.Options{Store: st, Prefix: "l1r:"})
	must(t, err)
	must(t, a.Close())
	b, err := querycache.New(querycache.Options{Store: st, Prefix: "l1r:"})
	if err == nil {
		b.Close()
		t.Fatal("querycache.New accepted a closed RedisStore")
	}
	if !strings.Contains(err.Error(), "closed") || !strings.Contains(err.Error(), "constructor") {
		t.Errorf("New's error does not say the store is closed and how to fix it: %v", err)
	}
}

// TestHostileL1InvalidationAfterCloseNotSentOnceRedisIsBack: README
// (Close): "An invalidation after Close is still sent once to the store".
// The breaker opened during a short cut and Redis answers again; the
// cache is closed before its prober's next tick (BreakerProbe, 500 ms by
// default). An invalidation then (a write finishing during shutdown)
// should heal the breaker with a probe of its own (breaker.heal) and be
// delivered: since today's change the probe runs on the store's life,
// cancelled by Close, so it fails at once and the invalidation is
// refused with ErrStoreUnavailable while Redis answers. Another process
// serves what the write changed.
func TestHostileL1InvalidationAfterCloseNotSentOnceRedisIsBack(t *testing.T) {
	srv := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, srv.Addr())
	w, wst := l1openAddr(t, proxy.Addr(), "l1s:", querycache.RedisOptions{})
	r, _, _ := l1open(t, srv, "l1s:", querycache.RedisOptions{})
	if got := l1read(t, r, "old"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	proxy.Cut()
	for i := 0; i < 20 && !wst.BreakerOpen(); i++ {
		l1read(t, w, "old")
	}
	if !wst.BreakerOpen() {
		t.Fatal("W's breaker did not open")
	}
	proxy.Restore()
	must(t, w.Close())
	time.Sleep(100 * time.Millisecond)                       // Redis answers (R's reads, below, go through)
	err := w.InvalidateTables(context.Background(), "users") // "new" committed
	t.Logf("invalidation after Close, Redis answering: %v", err)
	if got := l1read(t, r, "new"); got != "new" {
		t.Fatalf("R read %q after W's write returned: the invalidation after Close was not sent (%v)", got, err)
	}
}

// TestHostileL1TieredCloseClosesL2UnderPlainCache: one process, two
// caches: A on a two-level store T over RedisStore rs, B (say the
// low-level KV of a worker loop) on rs itself. Stores are closed by the
// last cache using them (acquireStore counts by Store value), but T and
// rs are different values: A.Close closes T, which closes rs under B.
// rs's prober and heartbeat are gone and its life is cancelled, so once
// B's breaker opens (a short cut) it never closes again: B's writes are
// kept pending for ever while Redis answers, and another process serves
// what they changed.
func TestHostileL1TieredCloseClosesL2UnderPlainCache(t *testing.T) {
	srv := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, srv.Addr())
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	rs := querycache.NewRedisStore(client, querycache.RedisOptions{BreakerProbe: 50 * time.Millisecond})
	ts := querycache.NewTieredStore(rs, querycache.TieredOptions{})
	a, err := querycache.New(querycache.Options{Store: ts, Prefix: "l1u:"})
	must(t, err)
	b, err := querycache.New(querycache.Options{Store: rs, Prefix: "l1u:"})
	must(t, err)
	t.Cleanup(func() { b.Close() })
	must(t, a.Close()) // A's part of the process shuts down; B goes on
	r, _, _ := l1open(t, srv, "l1u:", querycache.RedisOptions{})
	if got := l1read(t, r, "old"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	proxy.Cut()
	for i := 0; i < 10 && !rs.BreakerOpen(); i++ {
		l1read(t, b, "old")
	}
	if !rs.BreakerOpen() {
		t.Fatal("B's breaker did not open")
	}
	proxy.Restore()
	time.Sleep(2 * time.Second)
	err = b.InvalidateTables(context.Background(), "users") // "new" committed
	time.Sleep(3 * time.Second)
	t.Logf("B's invalidation: %v; 3 s later breaker open %v, pending %d", err, rs.BreakerOpen(), b.Stats().Pending)
	if got := l1read(t, r, "new"); got != "new" {
		t.Fatalf("R read %q 3 s after B's write returned, Redis answering for 5 s: B's store was closed by A's Close", got)
	}
}
