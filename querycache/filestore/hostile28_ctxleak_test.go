//go:build linux

package filestore

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestHostile28ShortContextDefeatsStuck: a stripe becomes stuck only in
// waitFor's timer branch, i.e. when the waiter of the lock file waited
// LockTimeout itself. If the first waiter of a stripe held by a stopped
// process gives up earlier, on its context (a request with a deadline
// below LockTimeout, a cancelled request: the usual case in a server), its
// abandoned flock goroutine keeps the stripe's mutex and the stripe is
// never marked stuck. Every later bounded caller then waits on the mutex
// (waits on the mutex never mark the stripe stuck) for the full
// LockTimeout and leaves one goroutine blocked on the mutex until the
// stopped process goes on: TestHostile27TimedOutCallsLeakGoroutines again,
// one goroutine and one LockTimeout per call, for as long as the holder
// stays stopped.
func TestHostile28ShortContextDefeatsStuck(t *testing.T) {
	dir := t.TempDir()
	const lockTimeout = 20 * time.Millisecond
	s := h27Store(t, dir, lockTimeout)
	_, _, stripe := s.path(kindEntry, "hot")
	kill := h27StoppedHolder(t, dir, lockName(stripe))
	defer kill()
	// One request with a short deadline.
	short, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
	err := s.Put(short, "hot", []byte("v"), time.Hour)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with a 2ms context: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	// The given-up wait itself marks the stripe once it has lasted
	// LockTimeout.
	if !s.stripes[stripe].stuck.Load() {
		t.Errorf("the stripe is not stuck %v after a wait of its lock file began (LockTimeout %v), its first caller having given up on its context", 50*time.Millisecond, lockTimeout)
	}
	runtime.GC()
	base := runtime.NumGoroutine()
	ctx := context.Background()
	const calls, concurrent = 400, 50
	var wg sync.WaitGroup
	sem := make(chan struct{}, concurrent)
	var mu sync.Mutex
	var timeouts, slow int
	for i := 0; i < calls; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			err := s.Put(ctx, "hot", []byte("v"), time.Hour)
			d := time.Since(start)
			mu.Lock()
			if isLockTimeout(err) {
				timeouts++
			}
			if d >= lockTimeout {
				slow++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	left := runtime.NumGoroutine() - base
	t.Logf("%d calls after one that gave up on its context: %d timed out, %d waited a full LockTimeout; %d goroutines left behind; stuck=%v",
		calls, timeouts, slow, left, s.stripes[stripe].stuck.Load())
	if left > 25 { // the runtime's and the test framework's own, under load
		t.Errorf("%d calls gave up, yet %d goroutines are left blocked on the stripe (at most %d were waiting at any time): the stripe never got stuck because its first waiter gave up on its context before LockTimeout", calls, left, concurrent)
	}
	if timeouts != calls {
		t.Errorf("%d of %d calls failed with a *LockTimeoutError, want all", timeouts, calls)
	}
}

// TestHostile28ShortSweepContextLeaksPerSweep: the same through the lock of
// sweeps. Another process is stopped in the middle of its sweep; a Sweep
// called here with a short context gives up its wait before LockTimeout,
// so the sweep stripe is never marked stuck: every later sweep (the
// background sweeper's included) waits LockTimeout on the mutex before
// sweeping without the lock, and leaves one goroutine behind, for as long
// as the other process stays stopped.
func TestHostile28ShortSweepContextLeaksPerSweep(t *testing.T) {
	dir := t.TempDir()
	const lockTimeout = 20 * time.Millisecond
	s := h27Store(t, dir, lockTimeout)
	kill := h27StoppedHolder(t, dir, "sweep")
	defer kill()
	short, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond)
	_, err := s.Sweep(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sweep with a 2ms context: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if !s.stripes[sweepStripe].stuck.Load() {
		t.Errorf("the lock of sweeps is not stuck %v after a wait of it began (LockTimeout %v), its first caller having given up on its context", 50*time.Millisecond, lockTimeout)
	}
	runtime.GC()
	base := runtime.NumGoroutine()
	const sweeps = 100
	start := time.Now()
	for range sweeps {
		if _, err := s.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	left := runtime.NumGoroutine() - base
	t.Logf("%d sweeps took %v; %d goroutines left behind", sweeps, took.Round(time.Millisecond), left)
	if left > 5 {
		t.Errorf("%d sweeps left %d goroutines behind (one per sweep): the lock of sweeps was never marked stuck because its first waiter gave up on its context", sweeps, left)
	}
}
