//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"
)

// TestHostile28OpenCloseChurn: stores opened and closed over and over on
// one directory while other stores hammer the same stripes with a tiny
// LockTimeout (stripes stuck, waits abandoned to helper goroutines,
// sweeps without the lock of sweeps), Close landing at random moments.
// After everything stops and settles, no lock file may stay open, no call
// may hang, no error but ErrClosed, a *LockTimeoutError or a context's.
func TestHostile28OpenCloseChurn(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, MaxBytes: 64 << 10, MaxEntryBytes: 4 << 10, LockTimeout: 2 * time.Millisecond, SweepInterval: time.Millisecond}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []error
	check := func(err error) {
		if err == nil || errors.Is(err, ErrClosed) || isLockTimeout(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		mu.Lock()
		if len(bad) < 10 {
			bad = append(bad, err)
		}
		mu.Unlock()
	}
	keys := []string{"a", "b", "c", "d"}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, err := New(opts)
				if err != nil {
					check(err)
					continue
				}
				var inner sync.WaitGroup
				for w := 0; w < 4; w++ {
					inner.Add(1)
					go func() {
						defer inner.Done()
						for i := 0; ; i++ {
							ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.Intn(3000))*time.Microsecond)
							k := keys[(i+w)%len(keys)]
							var err error
							switch i % 5 {
							case 0:
								err = s.Bump(ctx, []string{"v" + k})
							case 1:
								_, _, err = s.Fetch(ctx, k, []string{"v" + k})
							case 2:
								_, err = s.CompareAndSwap(ctx, k, nil, []byte("x"), time.Hour, []string{"v" + k})
							case 3:
								_, err = s.Sweep(ctx)
							default:
								err = s.PutFor(ctx, fmt.Sprint(k, i%50), make([]byte, 1000), time.Hour, []string{"v" + k})
							}
							cancel()
							check(err)
							if errors.Is(err, ErrClosed) {
								return
							}
						}
					}()
				}
				time.Sleep(time.Duration(r.Intn(30)) * time.Millisecond)
				s.Close()
				inner.Wait()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("hung")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h27LockFDs(dir) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := h27LockFDs(dir); n != 0 {
		t.Errorf("%d lock files left open after every store was closed and every holder let go", n)
	}
	if len(bad) > 0 {
		t.Errorf("unexpected errors: %v", bad)
	}
}
