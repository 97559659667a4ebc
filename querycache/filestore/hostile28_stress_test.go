//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostile28TwoStoresTinyTimeout: two stores on one directory (two open
// file descriptions per lock: two processes for flock(2)), a LockTimeout
// of a few milliseconds so that stripes get stuck, sweeps run without the
// lock of sweeps, waits are given up and left to helper goroutines all the
// time, a small MaxBytes and short VersionTTL so that sweeps evict and
// expire versions while fills extend them. Invariants:
//   - C1: a Bump through one store that returns nil changes the token the
//     other store reads afterwards;
//   - mutual exclusion: no two successful compare-and-swaps replace the
//     same (unique) old value.
func TestHostile28TwoStoresTinyTimeout(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, MaxBytes: 64 << 10, MaxEntryBytes: 4 << 10, LockTimeout: 3 * time.Millisecond,
		SweepInterval: 2 * time.Millisecond, VersionTTL: 40 * time.Millisecond, VersionMargin: 5 * time.Millisecond}
	var stores [2]*Store
	for i := range stores {
		s, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(f string, a ...any) {
		mu.Lock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(f, a...))
		}
		mu.Unlock()
	}
	running := func() bool {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	versions := []string{"tbl:a", "tbl:b", "tbl:c"}
	var bumps, bumpOK, casOK, timeouts atomic.Int64
	// Bump checkers.
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			for running() {
				v := versions[r.Intn(len(versions))]
				a, b := stores[g%2], stores[1-g%2]
				_, t1, err := a.Fetch(ctx, "", []string{v})
				if err != nil {
					continue
				}
				bumps.Add(1)
				if err := b.Bump(ctx, []string{v}); err != nil {
					fail("Bump: %v", err)
					continue
				}
				bumpOK.Add(1)
				_, t2, err := a.Fetch(ctx, "", []string{v})
				if err == nil && t2[0] == t1[0] {
					fail("C1: %s read %x before a Bump that returned nil, and %x after it", v, t1[0], t2[0])
				}
			}
		}()
	}
	// Fillers: extend the versions, fill the directory past MaxBytes.
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for i := 0; running(); i++ {
				err := s.PutFor(ctx, fmt.Sprint("fill", g, "/", i%200), make([]byte, 1500), 60*time.Millisecond, versions)
				if isLockTimeout(err) {
					timeouts.Add(1)
				} else if err != nil {
					fail("PutFor: %v", err)
				}
			}
		}()
	}
	// Compare-and-swap with unique values.
	var swapped sync.Map // old value -> who
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for i := 0; running(); i++ {
				old, _, err := s.Fetch(ctx, "counter", nil)
				if err != nil {
					continue
				}
				nv := []byte(fmt.Sprint(g, "/", i))
				ok, err := s.CompareAndSwap(ctx, "counter", old, nv, time.Hour, nil)
				if isLockTimeout(err) {
					timeouts.Add(1)
					continue
				}
				if err != nil {
					fail("CAS: %v", err)
					continue
				}
				if ok {
					casOK.Add(1)
					if old != nil {
						if prev, dup := swapped.LoadOrStore(string(old), string(nv)); dup {
							fail("two swaps replaced %q: by %s and by %s", old, prev, nv)
						}
					}
				}
			}
		}()
	}
	// Explicit sweeps from both.
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for running() {
				if _, err := stores[g].Sweep(ctx); err != nil && !isLockTimeout(err) {
					fail("Sweep: %v", err)
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("workers hung")
	}
	t.Logf("bumps %d (%d nil), swaps %d, lock timeouts %d", bumps.Load(), bumpOK.Load(), casOK.Load(), timeouts.Load())
	if len(failures) > 0 {
		t.Errorf("%d failures:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	_ = errors.New
}
