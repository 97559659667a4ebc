package querycache_test

import (
	"context"
	"math"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// TestHostileKVForeverTTL: "forever" spelled as the largest Duration
// (time.Duration(math.MaxInt64), a common idiom; Django's timeout=None)
// must either be stored and served, or refused with an error: Set, Add,
// Touch and GetOrSet must not report success and then never serve the
// value. The entry's expiry is created.Add(ttl).UnixNano(), which is past
// int64's range for a TTL over about 236 years (now + ttl beyond 2262):
// it wraps negative and the value is expired at once. Fix: cap the
// expiry (as MemoryStore caps its deadline), or refuse TTLs past it.
func TestHostileKVForeverTTL(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		forever := time.Duration(math.MaxInt64)
		if err := kv.Set(bg, "set", []byte("v"), querycache.WithTTL(forever)); err == nil {
			if _, ok := kvGet(t, kv, "set"); !ok {
				t.Errorf("Set with WithTTL(MaxInt64) succeeded and the value is not served")
			}
		}
		if ok, err := kv.Add(bg, "add", []byte("v"), querycache.WithTTL(forever)); err == nil && ok {
			if _, ok := kvGet(t, kv, "add"); !ok {
				t.Errorf("Add with WithTTL(MaxInt64) succeeded and the value is not served")
			}
		}
		must(t, kv.Set(bg, "touch", []byte("v")))
		if ok, err := kv.Touch(bg, "touch", forever); err == nil && ok {
			if _, ok := kvGet(t, kv, "touch"); !ok {
				t.Errorf("Touch with MaxInt64 succeeded and the value is gone")
			}
		}
		if _, _, err := kv.GetOrSet(bg, "gos", func(context.Context) ([]byte, error) { return []byte("v"), nil }, querycache.WithTTL(forever)); err == nil {
			if _, ok := kvGet(t, kv, "gos"); !ok {
				t.Errorf("GetOrSet with WithTTL(MaxInt64) stored nothing that is served")
			}
		}
	})
}
