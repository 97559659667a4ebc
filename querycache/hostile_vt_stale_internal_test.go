package querycache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// vtDB is the counter database: one value per row, under a mutex; a
// writer changes a row, then bumps, then publishes the value as the floor
// every lookup that starts afterwards must see.
type vtDB struct {
	mu    sync.Mutex
	rows  [8]int64
	floor [8]atomic.Int64
}

func (d *vtDB) read(rows []int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = strconv.FormatInt(d.rows[r], 10)
	}
	return strings.Join(parts, ",")
}

// TestHostileVTStaleUnderEviction: readers fill through Lookup+Store and
// GetOrSet (queries over 1 to 7 rows, one listing a row twice) while
// writers bump rows by InvalidateObject, InvalidateTables and the store's
// Bump, with plain Puts of the same keys, 1ns TTLs and noise lookups that
// never fill, in stores of 4 to 64 KiB. A value older than a write whose
// bump returned before the lookup started must never be served.
func TestHostileVTStaleUnderEviction(t *testing.T) {
	for _, maxBytes := range []int64{4 << 10, 16 << 10, 64 << 10} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			ctx := context.Background()
			store := NewMemoryStore(MemoryOptions{MaxBytes: maxBytes})
			c := newTestCache(t, Options{Store: store, DefaultTTL: time.Hour, EarlyRefreshBeta: -1})
			ns := c.Namespace()
			var db vtDB
			type query struct {
				k    Key
				rows []int
			}
			var qs []query
			for r := range 8 {
				qs = append(qs, query{pkKey(c, "t", strconv.Itoa(r)), []int{r}})
			}
			for n := 2; n <= 7; n++ {
				k := Key{Name: "q" + strconv.Itoa(n), Tables: []string{"t"}}
				var rows []int
				for r := range n {
					k.Versions = append(k.Versions, ns.ObjectVersion("t", strconv.Itoa(r)))
					rows = append(rows, r)
				}
				qs = append(qs, query{k, rows})
			}
			dup := Key{Name: "dup", Versions: []string{ns.ObjectVersion("t", "3"), ns.ObjectVersion("t", "3")}}
			qs = append(qs, query{dup, []int{3}})
			// The same name with other versions: never served the other's value.
			other := Key{Name: "q3", Versions: []string{ns.ObjectVersion("t", "5")}}
			qs = append(qs, query{other, []int{5}})

			stop := make(chan struct{})
			errs := make(chan error, 16)
			var wg sync.WaitGroup
			var hits atomic.Int64
			for g := range 6 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(g), 11))
					for {
						select {
						case <-stop:
							return
						default:
						}
						q := qs[rnd.IntN(len(qs))]
						floors := make([]int64, len(q.rows))
						for i, r := range q.rows {
							floors[i] = db.floor[r].Load()
						}
						k := q.k
						if rnd.IntN(20) == 0 {
							k.TTL = time.Nanosecond
						}
						var v []byte
						var hit bool
						if rnd.IntN(2) == 0 {
							var m *Miss
							v, hit, m = c.Lookup(ctx, k, LookupOptions{})
							if !hit {
								v = []byte(db.read(q.rows))
								if rnd.IntN(3) == 0 {
									time.Sleep(time.Duration(rnd.IntN(100)) * time.Microsecond)
								}
								m.Store(v)
							}
						} else {
							var err error
							v, hit, err = c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
								val := db.read(q.rows)
								if rnd.IntN(3) == 0 {
									time.Sleep(time.Duration(rnd.IntN(100)) * time.Microsecond)
								}
								return Fill{Value: []byte(val)}, nil
							})
							if err != nil {
								errs <- err
								return
							}
						}
						if hit {
							hits.Add(1)
						}
						parts := strings.Split(string(v), ",")
						if len(parts) != len(q.rows) {
							errs <- fmt.Errorf("%s %v: served %q (hit %v), not this query's value", k.Name, k.Versions, v, hit)
							return
						}
						for i, p := range parts {
							got, _ := strconv.ParseInt(p, 10, 64)
							if got < floors[i] {
								errs <- fmt.Errorf("%s: served %q (hit %v): row %d is %d, floor %d", k.Name, v, hit, q.rows[i], got, floors[i])
								return
							}
						}
						switch rnd.IntN(40) {
						case 0:
							store.Put(ctx, q.k.Name, encodeEntry(entry{expires: time.Now().Add(time.Hour).UnixNano(), tokens: []uint64{1}, payload: []byte("x")}), time.Hour)
						case 1:
							for j := range 8 {
								store.Fetch(ctx, "", []string{"noise:" + strconv.Itoa(rnd.IntN(1<<20)) + ":" + strconv.Itoa(j)})
							}
						case 2:
							c.Set(ctx, Key{Name: "filler" + strconv.Itoa(rnd.IntN(200)), Versions: []string{"noise:t"}}, make([]byte, rnd.IntN(1000)))
						}
					}
				})
			}
			for w := range 2 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(w), 12))
					for {
						select {
						case <-stop:
							return
						default:
						}
						r := rnd.IntN(8)
						db.mu.Lock()
						db.rows[r]++
						v := db.rows[r]
						db.mu.Unlock()
						var err error
						switch rnd.IntN(3) {
						case 0:
							err = c.InvalidateObject(ctx, "t", r)
						case 1:
							err = c.Store().Bump(ctx, []string{ns.ObjectVersion("t", strconv.Itoa(r))})
						default:
							err = c.InvalidateObject(ctx, "t", r)
							sweepNow(store) // a sweep right after the bump
						}
						if err != nil {
							errs <- err
							return
						}
						for {
							old := db.floor[r].Load()
							if old >= v || db.floor[r].CompareAndSwap(old, v) {
								break
							}
						}
						if rnd.IntN(8) == 0 {
							time.Sleep(20 * time.Microsecond)
						}
					}
				})
			}
			time.Sleep(600 * time.Millisecond)
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if hits.Load() == 0 {
				t.Fatal("no hits")
			}
			vtAudit(t, store)
			t.Logf("hits %d", hits.Load())
		})
	}
}
