package querycache_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

func h45Stores(t *testing.T, fn func(t *testing.T, c *querycache.Cache)) {
	for _, s := range kvStores[:3] { // memory, redis, tiered
		t.Run(s.name, func(t *testing.T) {
			c, err := querycache.New(querycache.Options{Store: s.open(t), Prefix: testenv.TestPrefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			fn(t, c)
		})
	}
}

func TestHostile45KVIncrEdges(t *testing.T) {
	h45Stores(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(kv.Set(bg, "max", []byte("9223372036854775807")))
		if n, err := kv.Incr(bg, "max", 1); err == nil {
			t.Errorf("Incr past MaxInt64 = %d, nil", n)
		}
		if v, _ := kvGet(t, kv, "max"); v != "9223372036854775807" {
			t.Errorf("after a failed Incr the value is %q", v)
		}
		must(kv.Set(bg, "min", []byte("-9223372036854775808")))
		if n, err := kv.Decr(bg, "min", 1); err == nil {
			t.Errorf("Decr past MinInt64 = %d, nil", n)
		}
		if n, err := kv.Decr(bg, "min", math.MinInt64); err == nil {
			t.Errorf("Decr by MinInt64 = %d, nil", n)
		}
		for _, bad := range []string{"", "1.5", " 1", "1e3", "0x10", "abc", "9223372036854775808"} {
			must(kv.Set(bg, "bad", []byte(bad)))
			if n, err := kv.Incr(bg, "bad", 1); !errors.Is(err, querycache.ErrNotInteger) {
				t.Errorf("Incr of %q = %d, %v; want ErrNotInteger", bad, n, err)
			}
		}
		if _, err := kv.Incr(bg, "absent", 1); !errors.Is(err, querycache.ErrNotFound) {
			t.Errorf("Incr of absent: %v", err)
		}
		// Typed integer stored by SetAs.
		must(querycache.SetAs(bg, kv, "typed", int64(41)))
		if n, err := kv.Incr(bg, "typed", 1); err != nil || n != 42 {
			t.Logf("Incr of SetAs int64: %d, %v", n, err)
		} else if v, ok, err := querycache.GetAs[int64](bg, kv, "typed"); err != nil || !ok || v != 42 {
			t.Errorf("GetAs after Incr of a typed int: %d %v %v", v, ok, err)
		}
	})
}

func TestHostile45KVKeys(t *testing.T) {
	h45Stores(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		keys := []string{"a:b", "a", "a:", ":a", "ключ", "ключ2", strings.Repeat("k", 250), strings.Repeat("k", 251), strings.Repeat("é", 10000), "a b", "a\x00b", "a#b", "{a}", "", "1:a"}
		for i, k := range keys {
			if err := kv.Set(bg, k, []byte{byte('A' + i)}); err != nil {
				t.Fatalf("Set(%.20q): %v", k, err)
			}
		}
		for i, k := range keys {
			v, ok := kvGet(t, kv, k)
			if !ok || v != string([]byte{byte('A' + i)}) {
				t.Errorf("Get(%.20q) = %q %v", k, v, ok)
			}
		}
		// Versions apart.
		if _, ok := kvGet(t, kv, "a", querycache.WithVersion(2)); ok {
			t.Error("version 2 sees version 1's value")
		}
		kv2, _ := querycache.NewKV(c, querycache.KVOptions{Prefix: "a"})
		if v, ok := kvGet(t, kv2, "b"); ok {
			t.Errorf("prefix a key b sees %q", v)
		}
	})
}

func TestHostile45KVGetOrSetFailures(t *testing.T) {
	h45Stores(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		boom := errors.New("boom")
		if _, _, err := kv.GetOrSet(bg, "f", func(context.Context) ([]byte, error) { return []byte("partial"), boom }); !errors.Is(err, boom) {
			t.Fatalf("err %v", err)
		}
		if v, ok := kvGet(t, kv, "f"); ok {
			t.Fatalf("a failed fill stored %q", v)
		}
		func() {
			defer func() { recover() }()
			kv.GetOrSet(bg, "p", func(context.Context) ([]byte, error) { panic("fill panics") })
		}()
		done := make(chan struct{})
		go func() {
			defer close(done)
			v, _, err := kv.GetOrSet(bg, "p", func(context.Context) ([]byte, error) { return []byte("ok"), nil })
			if err != nil || string(v) != "ok" {
				t.Errorf("after a panicking fill: %q %v", v, err)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("GetOrSet after a panicking fill hangs")
		}
		// Concurrent waiters on a panicking fill: none hangs, none gets the panic's value.
		var wg sync.WaitGroup
		var panics atomic.Int64
		release := make(chan struct{})
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					if recover() != nil {
						panics.Add(1)
					}
				}()
				kv.GetOrSet(bg, "p2", func(context.Context) ([]byte, error) {
					<-release
					panic("boom")
				})
			}()
		}
		time.Sleep(100 * time.Millisecond)
		close(release)
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatal("waiters of a panicking fill hang")
		}
	})
}

// Delete while a GetOrSet fill runs: the older computation must not be
// stored over the Delete (cache-aside purge).
func TestHostile45KVDeleteDuringFill(t *testing.T) {
	h45Stores(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		if err := kv.Set(bg, "d", []byte("v1")); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Delete(bg, "d"); err != nil {
			t.Fatal(err)
		}
		entered, release := make(chan struct{}), make(chan struct{})
		go func() {
			kv.GetOrSet(bg, "d", func(context.Context) ([]byte, error) {
				close(entered)
				<-release
				return []byte("old computation"), nil
			})
		}()
		<-entered
		if err := kv.Set(bg, "d", []byte("new")); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Delete(bg, "d"); err != nil {
			t.Fatal(err)
		}
		close(release)
		time.Sleep(300 * time.Millisecond)
		if v, ok := kvGet(t, kv, "d"); ok {
			t.Fatalf("a fill that began before a Delete stored %q after it", v)
		}
	})
}
