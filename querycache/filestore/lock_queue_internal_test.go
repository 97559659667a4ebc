//go:build unix

package filestore

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestQueueBehindOwnGoroutinesOutlastsLockTimeout: calls queued behind
// other goroutines of this process, each holding the stripe for less than
// LockTimeout, wait their turn however long the line (a stampede of Sync
// writes on a loaded disk): no other process holds the lock file, so a
// *LockTimeoutError saying one does would be false, and the write's fill
// lost. Under load CI saw 1 of 1024 Puts of one hot key fail so
// (TestHostile27InProcessQueueIsNotAStoppedProcess). A holder that keeps
// the stripe for LockTimeout still ends the wait
// (TestQueueBehindHungHolderGivesUp).
func TestQueueBehindOwnGoroutinesOutlastsLockTimeout(t *testing.T) {
	s, err := New(Options{Dir: t.TempDir(), SweepInterval: -1, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, i := s.path(kindEntry, "hot")
	first, err := s.lock(context.Background(), i, s.opts.LockTimeout)
	if err != nil {
		t.Fatal(err)
	}
	// A line of holders, 20 ms each: 300 ms in all, past LockTimeout.
	const holders = 15
	var wg sync.WaitGroup
	errs := make(chan error, holders+1)
	for range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.lock(context.Background(), i, s.opts.LockTimeout)
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
			st.unlock()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Put(context.Background(), "hot", []byte("v"), time.Hour); err != nil {
			errs <- err
		}
	}()
	time.Sleep(20 * time.Millisecond)
	first.unlock()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a call queued behind this process's own goroutines failed: %v", err)
	}
}

// TestQueueBehindHungHolderGivesUp: a goroutine of this process that
// holds a stripe for LockTimeout (a write stuck on a hung disk) makes the
// calls queued behind it give up, as before, rather than wait with it.
func TestQueueBehindHungHolderGivesUp(t *testing.T) {
	s, err := New(Options{Dir: t.TempDir(), SweepInterval: -1, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, _, i := s.path(kindEntry, "hot")
	st, err := s.lock(context.Background(), i, s.opts.LockTimeout)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Put(context.Background(), "hot", []byte("v"), time.Hour) }()
	select {
	case err := <-done:
		if !isLockTimeout(err) {
			t.Errorf("a Put behind a hung holder returned %v, want a *LockTimeoutError", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a Put behind a holder hung for 10 s still waits")
	}
	st.unlock()
}
