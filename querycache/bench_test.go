package querycache

import (
	"bytes"
	"context"
	"testing"
)

func benchKey(c *Cache) Key {
	ns := c.Namespace()
	k := pkKey(c, "users", "42")
	k.Versions = []string{ns.ObjectVersion("users", "42"), ns.BulkVersion("users"), ns.TableVersion("accounts")}
	return k
}

// BenchmarkGetOrSetHit measures a hit on the memory store: a key with three
// versions (plus the epoch) and a 200-byte value.
func BenchmarkGetOrSetHit(b *testing.B) {
	c := newTestCache(b, Options{})
	k := benchKey(c)
	value := bytes.Repeat([]byte("v"), 200)
	ctx := context.Background()
	if _, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) { return Fill{Value: value}, nil }); err != nil {
		b.Fatal(err)
	}
	fill := func(context.Context) (Fill, error) {
		b.Fatal("miss in a hit benchmark")
		return Fill{}, nil
	}
	b.ReportAllocs()
	for b.Loop() {
		v, hit, err := c.GetOrSet(ctx, k, fill)
		if err != nil || !hit || len(v) != 200 {
			b.Fatalf("hit=%v len=%d err=%v", hit, len(v), err)
		}
	}
}

func BenchmarkGetOrSetHitParallel(b *testing.B) {
	c := newTestCache(b, Options{})
	k := benchKey(c)
	value := bytes.Repeat([]byte("v"), 200)
	ctx := context.Background()
	c.GetOrSet(ctx, k, func(context.Context) (Fill, error) { return Fill{Value: value}, nil })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, hit, _ := c.GetOrSet(ctx, k, nil); !hit {
				b.Error("miss in a hit benchmark")
				return
			}
		}
	})
}

// BenchmarkMemoryStoreFetch measures the store alone: one entry and four
// versions, as GetOrSet fetches them.
func BenchmarkMemoryStoreFetch(b *testing.B) {
	s := newMem(b, MemoryOptions{})
	ctx := context.Background()
	names := []string{"v:epoch", "v:obj:users:42", "v:bulk:users", "v:tbl:accounts"}
	s.Put(ctx, "o:main:users:42:fp", bytes.Repeat([]byte("v"), 240), 1<<62)
	b.ReportAllocs()
	for b.Loop() {
		v, tokens, err := s.Fetch(ctx, "o:main:users:42:fp", names)
		if err != nil || v == nil || len(tokens) != 4 {
			b.Fatal("fetch failed")
		}
	}
}
