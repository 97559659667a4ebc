package querycache_test

import (
	"context"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// h49TwoProcesses returns two caches sharing one Redis prefix (two
// processes), with fill leases and a long LeaseWait.
func h49TwoProcesses(t *testing.T) (a, b *querycache.Cache) {
	t.Helper()
	prefix := testenv.TestPrefix(t)
	open := func() *querycache.Cache {
		c, err := querycache.New(querycache.Options{
			Store:     querycache.NewRedisStore(kvRedisClient(t), querycache.RedisOptions{Timeout: 5 * time.Second}),
			Prefix:    prefix,
			Lease:     querycache.LeaseAuto,
			LeaseTTL:  10 * time.Second,
			LeaseWait: 3 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return open(), open()
}

// A KV.GetOrSet fill that panics (the panic is the caller's, recovered
// by its HTTP server) leaves the key's fill lease held in Redis: KV.fill
// releases it on an error, not on a panic (Cache.runFill releases on both,
// with a defer). Every other process that misses the key then waits the
// whole LeaseWait for a value that will never come, before filling.
func TestHostile49EngineKVPanickingFillKeepsLease(t *testing.T) {
	a, b := h49TwoProcesses(t)
	ctx := context.Background()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the fill's panic did not reach its caller")
			}
		}()
		a.KV().GetOrSet(ctx, "h49-panic", func(context.Context) ([]byte, error) {
			panic("loader bug")
		}, querycache.DependsOn("users"))
	}()

	start := time.Now()
	v, _, err := b.KV().GetOrSet(ctx, "h49-panic", func(context.Context) ([]byte, error) {
		return []byte("v"), nil
	}, querycache.DependsOn("users"))
	took := time.Since(start)
	if err != nil || string(v) != "v" {
		t.Fatalf("GetOrSet = %q, %v", v, err)
	}
	if st := b.Stats(); st.LeaseWaits != 0 || took > time.Second {
		t.Fatalf("another process waited %v for the lease of a fill that panicked (LeaseWaits %d, LeaseTimeouts %d); want no wait, as after a fill that failed", took.Round(time.Millisecond), st.LeaseWaits, st.LeaseTimeouts)
	}
}
