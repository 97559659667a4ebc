package querycache_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestPauseWriteRetriesSoon: two caches on one private Redis
// (two processes: separate clients and stores, every option default).
// Reader B has row 1 cached. The operator runs CLIENT PAUSE <ms> WRITE (what
// Redis's FAILOVER command and a controlled switchover do): writes wait,
// reads and PING do not. Writer A's invalidation of row 1 (after the
// database commit) times out and A's call returns; B, which reads now and
// then, never opens its breaker. Every read B starts after A's invalidation
// returned must miss (the truth is "new"). Found by a hostile run (issue 8,
// thirty-eighth session): A retried only every RetryInterval, after the
// pause had ended.
func TestPauseWriteRetriesSoon(t *testing.T) {
	for _, pause := range []time.Duration{1500 * time.Millisecond, 3000 * time.Millisecond} {
		t.Run(pause.String(), func(t *testing.T) {
			srv := testenv.StartRedis(t)
			a, as, _ := redisCacheOn(t, srv.Addr())
			b, bs, _ := redisCacheOn(t, srv.Addr())
			ctx := context.Background()
			k := querycache.Key{Name: "app:q:row1", Versions: []string{b.Namespace().ObjectVersion("t", "1")}}
			if v, _, _ := b.GetOrSet(ctx, k, valueFill("old", nil)); string(v) != "old" {
				t.Fatalf("fill: %q", v)
			}
			if v, hit, _ := b.GetOrSet(ctx, k, valueFill("old", nil)); !hit || string(v) != "old" {
				t.Fatalf("not cached: %q %v", v, hit)
			}
			admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			defer admin.Close()
			pausedAt := time.Now()
			if err := admin.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "WRITE").Err(); err != nil {
				t.Fatal(err)
			}
			// The database commit of row 1 has returned; now its invalidation.
			err := a.InvalidateObject(ctx, "t", 1)
			returned := time.Now()
			t.Logf("A's invalidation returned after %v (err %v); pending %d; A breaker open %v",
				returned.Sub(pausedAt), err, a.Stats().Pending, as.BreakerOpen())
			stale, reads := 0, 0
			var first, last time.Duration
			for time.Since(pausedAt) < pause+1500*time.Millisecond {
				v, hit, err := b.GetOrSet(ctx, k, valueFill("new", nil))
				if err != nil {
					t.Fatal(err)
				}
				reads++
				if string(v) == "old" {
					if stale == 0 {
						first = time.Since(pausedAt)
					}
					last = time.Since(pausedAt)
					stale++
					_ = hit
				}
				time.Sleep(250 * time.Millisecond)
			}
			t.Logf("B: %d reads, breaker openings %d; A: breaker openings %d, pending now %d", reads, bs.BreakerOpenings(), as.BreakerOpenings(), a.Stats().Pending)
			if stale > 0 {
				t.Fatalf("%d of %d reads by B after A's invalidation returned served \"old\" (first %v, last %v after the pause began; pause %v)", stale, reads, first, last, pause)
			}
		})
	}
}
