package querycache_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// TestHostileVTHotSetUnderSweeps: a hot set that fits the store keeps
// hitting while a scan (a) fills one-off keys that depend on the hot
// set's own row and table versions (their cells are held and released
// around the hot entries all the time) and (b) looks up one-off keys
// naming seven fresh versions each that never fill, so that the version
// table sweeps over and over. Nothing is written: every hot miss after
// warm-up is a regression.
func TestHostileVTHotSetUnderSweeps(t *testing.T) {
	for _, c := range []struct {
		maxBytes int64
		hot      int
	}{{256 << 10, 100}, {1 << 20, 500}} {
		t.Run(fmt.Sprintf("%dKiB_%dhot", c.maxBytes>>10, c.hot), func(t *testing.T) {
			store := querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: c.maxBytes})
			cache, err := querycache.New(querycache.Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer cache.Close()
			ns := cache.Namespace()
			ctx := context.Background()
			hotKey := func(i int) querycache.Key {
				table := "hot" + strconv.Itoa(i%10)
				pk := strconv.Itoa(i)
				return querycache.Key{Name: ns.Object("main", table, pk, keys.Sum([]byte("by pk"))), Versions: []string{ns.ObjectVersion(table, pk), ns.BulkVersion(table), ns.TableVersion(table)}, Tables: []string{table}}
			}
			get := func(k querycache.Key, fill bool) bool {
				_, ok, m := cache.Lookup(ctx, k, querycache.LookupOptions{})
				if !ok {
					if fill {
						m.Store(make([]byte, 64))
					} else {
						m.Abandon("")
					}
				}
				return ok
			}
			const rounds, warm = 20000, 4000
			var hotLookups, hotHits int
			for n := range rounds {
				if n%2 == 0 {
					i := n / 2 % c.hot
					ok := get(hotKey(i), true)
					if n >= warm {
						hotLookups++
						if ok {
							hotHits++
						}
					}
					continue
				}
				if n%4 == 1 {
					// One-off query over a hot row and its table.
					i := n % c.hot
					k := hotKey(i)
					k.Name = ns.Query("main", keys.Sum([]byte("scan"+strconv.Itoa(n))))
					get(k, true)
				} else {
					k := querycache.Key{Name: "never" + strconv.Itoa(n)}
					for j := range 7 {
						k.Versions = append(k.Versions, "fresh:"+strconv.Itoa(n)+":"+strconv.Itoa(j))
					}
					get(k, false)
				}
			}
			e, v := store.Evictions()
			rate := float64(hotHits) / float64(hotLookups)
			t.Logf("hot hits %d of %d (%.1f%%); evicted %d entries, %d versions", hotHits, hotLookups, 100*rate, e, v)
			if rate < 0.99 {
				t.Fatalf("the hot set hit %.1f%% while nothing was written", 100*rate)
			}
		})
	}
}
