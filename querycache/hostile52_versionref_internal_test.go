package querycache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostile50World is a simulated database of tables of integer-valued rows
// (each write increments a row) read through caches sharing one small
// memory store (sweeps run often).
type hostile50World struct {
	tables, rows int
	db           [][]atomic.Int64 // committed values
	floor        [][]atomic.Int64 // values whose write (commit + Invalidate) returned
	caches       []*Cache
	ms           *MemoryStore
	stale        atomic.Int64
	reads, hits  atomic.Int64
	firstStale   atomic.Pointer[string]
}

func newHostile50World(t *testing.T, tables, rows, caches int, maxBytes int64) *hostile50World {
	w := &hostile50World{tables: tables, rows: rows}
	w.ms = NewMemoryStore(MemoryOptions{MaxBytes: maxBytes})
	for range caches {
		c, err := New(Options{Store: w.ms, DefaultTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		w.caches = append(w.caches, c)
	}
	w.db = make([][]atomic.Int64, tables)
	w.floor = make([][]atomic.Int64, tables)
	for i := range w.db {
		w.db[i] = make([]atomic.Int64, rows)
		w.floor[i] = make([]atomic.Int64, rows)
	}
	return w
}

func hostile50Table(i int) string { return "t" + strconv.Itoa(i) }

func (w *hostile50World) write(ctx context.Context, rng *rand.Rand, ti, ri int) error {
	v := w.db[ti][ri].Add(1) // the commit
	if rng.IntN(4) == 0 {
		runtime.Gosched()
	}
	c := w.caches[rng.IntN(len(w.caches))]
	pk := strconv.Itoa(ri - w.rows/2) // negative keys too
	if err := c.Invalidate(ctx, Change{Rows: []Row{{Table: hostile50Table(ti), PK: pk}}, Cause: "h50"}); err != nil {
		return err
	}
	for {
		cur := w.floor[ti][ri].Load()
		if v <= cur || w.floor[ti][ri].CompareAndSwap(cur, v) {
			return nil
		}
	}
}

func (w *hostile50World) stale1(msg string) {
	w.stale.Add(1)
	w.firstStale.CompareAndSwap(nil, &msg)
}

// readRow is a lookup by primary key: object + bulk versions (and the table
// version too on odd rows, as the plugin's narrow keys may).
func (w *hostile50World) readRow(ctx context.Context, rng *rand.Rand, ti, ri int) error {
	c := w.caches[rng.IntN(len(w.caches))]
	ns := c.Namespace()
	tbl := hostile50Table(ti)
	pk := strconv.Itoa(ri - w.rows/2)
	vs := []string{ns.ObjectVersion(tbl, pk), ns.BulkVersion(tbl)}
	if ri%2 == 1 {
		vs = append(vs, ns.TableVersion(tbl))
	}
	k := Key{Name: "o:" + tbl + ":" + pk, Versions: vs, Tables: []string{tbl}}
	floor := w.floor[ti][ri].Load()
	filled := false
	b, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
		filled = true
		v := w.db[ti][ri].Load()
		if rng.IntN(3) == 0 {
			runtime.Gosched()
		}
		return Fill{Value: []byte(strconv.FormatInt(v, 10))}, nil
	})
	if err != nil {
		return err
	}
	w.reads.Add(1)
	if !filled {
		w.hits.Add(1)
	}
	got, _ := strconv.ParseInt(string(b), 10, 64)
	if got < floor {
		w.stale1(fmt.Sprintf("row %s/%s: got %d, a write of %d had returned (filled here: %v)", tbl, pk, got, floor, filled))
	}
	return nil
}

// readList reads every row of a table through the table's version.
func (w *hostile50World) readList(ctx context.Context, rng *rand.Rand, ti int) error {
	c := w.caches[rng.IntN(len(w.caches))]
	tbl := hostile50Table(ti)
	k := Key{Name: "l:" + tbl, Versions: []string{c.Namespace().TableVersion(tbl)}, Tables: []string{tbl}}
	floors := make([]int64, w.rows)
	for i := range floors {
		floors[i] = w.floor[ti][i].Load()
	}
	filled := false
	b, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
		filled = true
		var sb strings.Builder
		for i := 0; i < w.rows; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.FormatInt(w.db[ti][i].Load(), 10))
			if rng.IntN(8) == 0 {
				runtime.Gosched()
			}
		}
		return Fill{Value: []byte(sb.String())}, nil
	})
	if err != nil {
		return err
	}
	w.reads.Add(1)
	if !filled {
		w.hits.Add(1)
	}
	for i, s := range strings.Split(string(b), ",") {
		got, _ := strconv.ParseInt(s, 10, 64)
		if got < floors[i] {
			w.stale1(fmt.Sprintf("list %s row %d: got %d, a write of %d had returned (filled here: %v)", tbl, i, got, floors[i], filled))
			break
		}
	}
	return nil
}

// noise creates versions no entry holds (lookups that store nothing, of
// one-off names), so that cells are created (begun moves) and sweeps run.
func (w *hostile50World) noise(ctx context.Context, rng *rand.Rand, n int) error {
	c := w.caches[rng.IntN(len(w.caches))]
	name := fmt.Sprintf("noise%d", n)
	k := Key{Name: "n:" + name, Versions: []string{c.Namespace().TableVersion(name)}}
	_, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
		return Fill{Value: []byte("x"), NoStore: "noise"}, nil
	})
	return err
}

// TestHostile52VersionRefStress: writers of one row at a time (the memory
// store's one-row path, through each cache's versionRef of the table)
// race readers of rows and of whole tables, on a store small enough that
// versions are swept all the time, with noise creating one-off versions;
// half the tables are written for a while before anyone reads them (the
// ref remembers them missing). A read that starts after a write returned
// must see it.
func TestHostile52VersionRefStress(t *testing.T) {
	for _, cfg := range []struct {
		name     string
		caches   int
		maxBytes int64
		noise    bool
	}{
		{"one-cache-small", 1, 64 << 10, true},
		{"two-caches-small", 2, 64 << 10, true},
		{"two-caches-nonoise", 2, 64 << 10, false},
		{"one-cache-big", 1, 32 << 20, true},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			ctx := context.Background()
			const tables, rows = 6, 8
			w := newHostile50World(t, tables, rows, cfg.caches, cfg.maxBytes)
			var readable atomic.Int32 // tables below it are readable; the rest written only
			readable.Store(tables / 2)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var errs atomic.Int64
			var noiseN atomic.Int64
			worker := func(seed uint64, fn func(rng *rand.Rand) error) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(seed, 50))
					for {
						select {
						case <-stop:
							return
						default:
						}
						if err := fn(rng); err != nil {
							errs.Add(1)
							t.Error(err)
							return
						}
					}
				}()
			}
			for i := range 3 {
				worker(uint64(i), func(rng *rand.Rand) error {
					return w.write(ctx, rng, rng.IntN(tables), rng.IntN(rows))
				})
			}
			for i := range 4 {
				worker(uint64(100+i), func(rng *rand.Rand) error {
					ti := rng.IntN(int(readable.Load()))
					if rng.IntN(3) == 0 {
						return w.readList(ctx, rng, ti)
					}
					return w.readRow(ctx, rng, ti, rng.IntN(rows))
				})
			}
			if cfg.noise {
				worker(200, func(rng *rand.Rand) error {
					return w.noise(ctx, rng, int(noiseN.Add(1)))
				})
			}
			// 2 s a configuration, 8 goroutines: CI's machine has 2 cores
			// (4 s each had cost 32 core-seconds of the suite's time).
			time.Sleep(800 * time.Millisecond)
			readable.Store(tables)
			time.Sleep(1200 * time.Millisecond)
			close(stop)
			wg.Wait()
			t.Logf("reads %d, hits %d, stale %d, swept %d", w.reads.Load(), w.hits.Load(), w.stale.Load(), w.ms.versions.swept.Load())
			if w.hits.Load() == 0 {
				t.Error("no hit: the test tests nothing")
			}
			if n := w.stale.Load(); n > 0 {
				t.Errorf("%d stale reads; first: %s", n, *w.firstStale.Load())
			}
		})
	}
}

// TestHostile52WrittenBeforeReadThenRaced: a table written many times
// before it is ever read (the ref remembers its version missing), then one
// fill and one write race in lockstep, many rounds, each on a fresh table:
// the fill's value must not be served after the write returned.
func TestHostile52WrittenBeforeReadThenRaced(t *testing.T) {
	ctx := context.Background()
	ms := NewMemoryStore(MemoryOptions{MaxBytes: 64 << 10})
	c, err := New(Options{Store: ms, DefaultTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stale := 0
	for round := 0; round < 3000; round++ {
		tbl := "w" + strconv.Itoa(round%50) // memo of 50 tables reused across rounds
		ver := strconv.Itoa(round)
		k := Key{Name: "l:" + tbl + ":" + ver, Versions: []string{c.Namespace().TableVersion(tbl)}, Tables: []string{tbl}}
		row := Change{Rows: []Row{{Table: tbl, PK: "1"}}}
		for range 3 {
			if err := c.Invalidate(ctx, row); err != nil {
				t.Fatal(err)
			}
		}
		var db atomic.Int64
		var wrote atomic.Bool
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			_, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
				v := db.Load()
				runtime.Gosched()
				return Fill{Value: []byte(strconv.FormatInt(v, 10))}, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			db.Store(1)
			if err := c.Invalidate(ctx, row); err != nil {
				t.Error(err)
			}
			wrote.Store(true)
		}()
		close(start)
		wg.Wait()
		b, _, err := c.GetOrSet(ctx, k, func(context.Context) (Fill, error) {
			return Fill{Value: []byte(strconv.FormatInt(db.Load(), 10))}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "1" {
			stale++
			if stale == 1 {
				t.Errorf("round %d: after the write returned, %q served", round, b)
			}
		}
		if round%97 == 0 {
			ms.versions.sweep()
		}
	}
	if stale > 0 {
		t.Errorf("%d stale rounds of 3000", stale)
	}
}
