//go:build linux

package filestore

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestHostile28StuckAfterAShortFileWait: the design marks a stripe stuck
// when "a wait for the lock file has lasted LockTimeout". But lock() takes
// the deadline before it waits for the in-process mutex and hands the rest
// to the wait for the lock file: a caller that spent its budget queued
// behind another goroutine of this process (a burst of fills of a hot key)
// and then finds the lock file held for an instant by a live process
// (its ordinary rename) starts a file wait with ~0 left, whose timer fires
// at once and marks the stripe stuck. Until that other process lets go,
// every bounded caller of the stripe in this process fails at once with a
// *LockTimeoutError saying the file was "held by another process for over
// LockTimeout", although it was held for a few milliseconds and would be
// released well within the caller's own budget.
//
// Here: s1 and s2 are two stores on one directory (two open file
// descriptions: two processes as far as flock(2) is concerned). A
// goroutine of s1 holds the stripe's mutex (as a goroutine in the middle
// of a rename, or at the head of a queue, does) for 0.95 LockTimeout; C,
// an s1 Put, queues behind it. s2 takes the lock file at 0.75 LockTimeout
// and keeps it 0.5 LockTimeout (a live holder, far below LockTimeout).
// C gets the mutex at 0.95, finds the file held, and times out at 1.0
// (fine: its budget is spent) but marks the stripe stuck after a file wait
// of 0.05 LockTimeout. D, an s1 Put started at 1.05, whose file would be
// released 0.2 LockTimeout later, fails at once.
func TestHostile28StuckAfterAShortFileWait(t *testing.T) {
	dir := t.TempDir()
	const lt = 400 * time.Millisecond
	s1 := h27Store(t, dir, lt)
	s2 := h27Store(t, dir, lt)
	ctx := context.Background()
	_, _, stripe := s1.path(kindEntry, "hot")
	at := func(f float64) time.Duration { return time.Duration(f * float64(lt)) }

	t0 := time.Now()
	sleepUntil := func(f float64) { time.Sleep(time.Until(t0.Add(at(f)))) }
	// A goroutine of s1 holds the stripe (in-process).
	s1.stripes[stripe].mu.Lock()
	cDone := make(chan error, 1)
	go func() { cDone <- s1.Put(ctx, "hot", []byte("c"), time.Hour) }()
	// The other process takes the lock file for 0.5 LockTimeout.
	sleepUntil(0.75)
	st2, err := s2.lock(ctx, stripe, lt)
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan time.Time, 1)
	go func() {
		sleepUntil(1.25)
		st2.unlock()
		released <- time.Now()
	}()
	sleepUntil(0.95)
	s1.stripes[stripe].release()
	cErr := <-cDone
	t.Logf("C (queued 0.95 LockTimeout in-process): %v after %v", cErr, time.Since(t0).Round(time.Millisecond))
	sleepUntil(1.05)
	dStart := time.Now()
	dErr := s1.Put(ctx, "hot", []byte("d"), time.Hour)
	dTook := time.Since(dStart)
	rel := <-released
	t.Logf("D: %v after %v; s2 held the file %v in all", dErr, dTook.Round(time.Millisecond), rel.Sub(t0.Add(at(0.75))).Round(time.Millisecond))
	var lte *LockTimeoutError
	if errors.As(dErr, &lte) {
		t.Errorf("D failed after %v with %q, although the other holder kept the file %v (LockTimeout %v) and let go %v after D began: the stripe was marked stuck by C's file wait of %v",
			dTook.Round(time.Millisecond), dErr, rel.Sub(t0.Add(at(0.75))).Round(time.Millisecond), lt, rel.Sub(dStart).Round(time.Millisecond), at(0.05))
	} else if dErr != nil {
		t.Errorf("D: %v", dErr)
	}
}
