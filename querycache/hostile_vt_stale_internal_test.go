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

// vtQuery is a cached query over rows of the counter database: its value
// is its tag, then the rows' values, so that a value filled for another
// query (another key, or the same key with other versions) is told apart.
type vtQuery struct {
	k    Key
	rows []int
	tag  string
}

// readOnce looks q up once, filling it on a miss (by Lookup+Store or
// GetOrSet, at random; a 1ns TTL one time in ttlOneIn; fills pausing up to
// maxPause), and checks what it got: this query's value, and no row older
// than its floor when the lookup started.
func (d *vtDB) readOnce(ctx context.Context, c *Cache, q vtQuery, rnd *rand.Rand, ttlOneIn int, maxPause time.Duration) (hit, filled bool, err error) {
	floors := make([]int64, len(q.rows))
	for i, r := range q.rows {
		floors[i] = d.floor[r].Load()
	}
	k := q.k
	if rnd.IntN(ttlOneIn) == 0 {
		k.TTL = time.Nanosecond
	}
	fill := func() []byte {
		val := q.tag + "|" + d.read(q.rows)
		if rnd.IntN(3) == 0 {
			time.Sleep(time.Duration(rnd.Int64N(int64(maxPause))))
		}
		filled = true
		return []byte(val)
	}
	var v []byte
	if rnd.IntN(2) == 0 {
		var m *Miss
		if v, hit, m = c.Lookup(ctx, k, LookupOptions{}); !hit {
			v = fill()
			m.Store(v)
		}
	} else {
		v, hit, err = c.GetOrSet(ctx, k, func(context.Context) (Fill, error) { return Fill{Value: fill()}, nil })
		if err != nil {
			return hit, filled, err
		}
	}
	tag, vals, ok := strings.Cut(string(v), "|")
	parts := strings.Split(vals, ",")
	if !ok || tag != q.tag || len(parts) != len(q.rows) {
		return hit, filled, fmt.Errorf("%s %v (%s): served %q (hit %v), recorded against other versions", k.Name, k.Versions, q.tag, v, hit)
	}
	for i, p := range parts {
		got, _ := strconv.ParseInt(p, 10, 64)
		if got < floors[i] {
			return hit, filled, fmt.Errorf("%s (%s): served %q (hit %v): row %d is %d, floor %d", k.Name, q.tag, v, hit, q.rows[i], got, floors[i])
		}
	}
	return hit, filled, nil
}

// write changes row r, bumps it with bump, then publishes the new value as
// the row's floor.
func (d *vtDB) write(r int, bump func() error) error {
	d.mu.Lock()
	d.rows[r]++
	v := d.rows[r]
	d.mu.Unlock()
	if err := bump(); err != nil {
		return err
	}
	for {
		old := d.floor[r].Load()
		if old >= v || d.floor[r].CompareAndSwap(old, v) {
			return nil
		}
	}
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
			var qs []vtQuery
			for r := range 8 {
				qs = append(qs, vtQuery{pkKey(c, "t", strconv.Itoa(r)), []int{r}, "pk" + strconv.Itoa(r)})
			}
			for n := 2; n <= 7; n++ {
				k := Key{Name: "q" + strconv.Itoa(n), Tables: []string{"t"}}
				var rows []int
				for r := range n {
					k.Versions = append(k.Versions, ns.ObjectVersion("t", strconv.Itoa(r)))
					rows = append(rows, r)
				}
				qs = append(qs, vtQuery{k, rows, "q" + strconv.Itoa(n)})
			}
			dup := Key{Name: "dup", Versions: []string{ns.ObjectVersion("t", "3"), ns.ObjectVersion("t", "3")}}
			qs = append(qs, vtQuery{dup, []int{3}, "dup"})
			// The same name with other versions: never served the other's value.
			other := Key{Name: "q3", Versions: []string{ns.ObjectVersion("t", "5")}}
			qs = append(qs, vtQuery{other, []int{5}, "q3other"})

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
						hit, _, err := db.readOnce(ctx, c, q, rnd, 20, 100*time.Microsecond)
						if err != nil {
							errs <- err
							return
						}
						if hit {
							hits.Add(1)
						}
						switch rnd.IntN(40) {
						case 0:
							store.Put(ctx, q.k.Name, encodeEntry(entry{key: q.k.Name, expires: time.Now().Add(time.Hour).UnixNano(), tokens: []uint64{1}, payload: []byte("x")}), time.Hour)
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
						if err := db.write(r, func() error {
							switch rnd.IntN(3) {
							case 0:
								return c.InvalidateObject(ctx, "t", r)
							case 1:
								return c.Store().Bump(ctx, []string{ns.ObjectVersion("t", strconv.Itoa(r))})
							default:
								err := c.InvalidateObject(ctx, "t", r)
								sweepNow(store) // a sweep right after the bump
								return err
							}
						}); err != nil {
							errs <- err
							return
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
