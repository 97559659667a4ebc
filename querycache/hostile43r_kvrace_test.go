package querycache_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHostile43RKVFillRacesOtherProcessWrite: a GetOrSet whose computation
// read the data before another "process" (cache) committed a write and
// invalidated it must never be served after that invalidation returned,
// from either process, on the plain and both two-level stores.
func TestHostile43RKVFillRacesOtherProcessWrite(t *testing.T) {
	for _, kind := range []string{"plain", "default", "strict"} {
		t.Run(kind, func(t *testing.T) {
			prefix := testenv.TestPrefix(t)
			opt, err := redis.ParseURL(testenv.SharedRedis(t))
			if err != nil {
				t.Fatal(err)
			}
			mk := func(kind string) *querycache.Cache {
				client := redis.NewClient(opt)
				t.Cleanup(func() { client.Close() })
				var store querycache.Store = querycache.NewRedisStore(client, querycache.RedisOptions{Timeout: 3 * time.Second, InvalidateTimeout: 3 * time.Second})
				switch kind {
				case "default":
					store = querycache.NewTieredStore(store.(*querycache.RedisStore), querycache.TieredOptions{})
				case "strict":
					store = querycache.NewTieredStore(store.(*querycache.RedisStore), querycache.TieredOptions{Strict: true})
				}
				c, err := querycache.New(querycache.Options{Store: store, Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			a, b := mk(kind), mk("plain")
			ctx := context.Background()
			var model atomic.Int64
			for i := 0; i < 100; i++ {
				key := "k" + strconv.Itoa(i%5)
				deps := querycache.DependsOn("t" + strconv.Itoa(i%3))
				if i%2 == 1 {
					deps = querycache.DependsOnObject("t"+strconv.Itoa(i%3), i%5)
				}
				// Fill in A, racing a write + invalidation in B.
				_, _, err := a.KV().GetOrSet(ctx, key, func(ctx context.Context) ([]byte, error) {
					old := model.Load()
					model.Add(1)
					var err error
					if i%2 == 1 {
						err = b.InvalidateObject(ctx, "t"+strconv.Itoa(i%3), i%5)
					} else {
						err = b.InvalidateTables(ctx, "t"+strconv.Itoa(i%3))
					}
					if err != nil {
						t.Fatal(err)
					}
					return []byte(strconv.FormatInt(old, 10)), nil
				}, deps)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond) // the broadcast delay for "default"
				want := strconv.FormatInt(model.Load(), 10)
				for name, c := range map[string]*querycache.Cache{"A": a, "B": b} {
					v, hit, err := c.KV().GetOrSet(ctx, key, func(context.Context) ([]byte, error) {
						return []byte(strconv.FormatInt(model.Load(), 10)), nil
					}, deps)
					if err != nil || string(v) != want {
						t.Fatalf("round %d: %s served %q (hit %v, err %v); the data is %s: a value computed before a write that returned was served", i, name, v, hit, err, want)
					}
				}
			}
		})
	}
}
