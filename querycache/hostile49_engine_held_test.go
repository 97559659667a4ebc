package querycache_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// The control: a fill that fails with an error releases its lease.
func TestHostile49EngineKVFailingFillReleasesLease(t *testing.T) {
	a, b := h49TwoProcesses(t)
	ctx := context.Background()
	boom := errors.New("boom")
	if _, _, err := a.KV().GetOrSet(ctx, "h49-err", func(context.Context) ([]byte, error) {
		return nil, boom
	}, querycache.DependsOn("users")); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	start := time.Now()
	v, _, err := b.KV().GetOrSet(ctx, "h49-err", func(context.Context) ([]byte, error) {
		return []byte("v"), nil
	}, querycache.DependsOn("users"))
	if err != nil || string(v) != "v" {
		t.Fatalf("GetOrSet = %q, %v", v, err)
	}
	if st := b.Stats(); st.LeaseWaits != 0 || time.Since(start) > time.Second {
		t.Fatalf("waited %v for the lease of a failed fill (LeaseWaits %d)", time.Since(start), st.LeaseWaits)
	}
}

// Hostile keys on every local store: the empty key, keys that differ only
// by a NUL, a newline or a trailing colon, a key spelling the hashed form
// of another, and a key spelling a version name are all distinct values;
// a TTL of centuries is served; a non-positive WithTTL is refused.
func TestHostile49EngineHostileKeysDistinct(t *testing.T) {
	for _, s := range kvStores {
		if s.name != "memory" && s.name != "file" && s.name != "redis" {
			continue
		}
		t.Run(s.name, func(t *testing.T) {
			c, err := querycache.New(querycache.Options{Store: s.open(t), Prefix: testenv.TestPrefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			kv := c.KV()
			ctx := context.Background()
			ks := []string{"", " ", "a", "a\x00", "a\n", "a:", "a:1", ":1:a", "v:tbl:users", "#", "#a",
				"kv::1:a", strings.Repeat("x", 128), strings.Repeat("x", 129), "a\x00b", "a\nb", "\xff"}
			for i, k := range ks {
				if err := kv.Set(ctx, k, []byte(fmt.Sprint(i)), querycache.WithTTL(100*365*24*time.Hour), querycache.DependsOn("users")); err != nil {
					t.Fatalf("Set(%q): %v", k, err)
				}
			}
			for i, k := range ks {
				v, ok, err := kv.Get(ctx, k, querycache.DependsOn("users"))
				if err != nil || !ok || string(v) != fmt.Sprint(i) {
					t.Fatalf("Get(%q) = %q, %v, %v; want %d", k, v, ok, err, i)
				}
			}
			if err := c.InvalidateTables(ctx, "users"); err != nil {
				t.Fatal(err)
			}
			for _, k := range ks {
				if v, ok, _ := kv.Get(ctx, k, querycache.DependsOn("users")); ok {
					t.Fatalf("Get(%q) = %q after users was invalidated", k, v)
				}
			}
			for _, ttl := range []time.Duration{0, -time.Second} {
				if err := kv.Set(ctx, "neg", []byte("x"), querycache.WithTTL(ttl)); err == nil {
					if v, ok, _ := kv.Get(ctx, "neg"); ok {
						t.Logf("WithTTL(%v) accepted and served %q", ttl, v)
					}
				}
			}
		})
	}
}
