//go:build linux

package filestore

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestHostile28FillHangsBehindSweepOfManyStoppedStripes: the sweep fix of
// hostile27 bounded the wait for the lock of sweeps, but removeAll still
// waits LockTimeout, one stripe after the other, for each stripe that a
// stopped process holds and that is not stuck yet. A process stopped
// while K of its goroutines were writing holds K stripes; the first sweep
// that has files to remove on them (expired files: any stripe of a busy
// store has some) takes K × LockTimeout, and this process's writers, once
// they have written MaxBytes/16, wait in wait() for the *next* sweep to
// begin: a Put of an unrelated key, on a stripe nobody holds, hangs
// K × LockTimeout (default 2s: 32 s for K=16), the very hang
// TestHostile27FillHangsBehindStoppedSweeper was about.
func TestHostile28FillHangsBehindSweepOfManyStoppedStripes(t *testing.T) {
	dir := t.TempDir()
	const lt = 200 * time.Millisecond
	const k = 32
	s, err := New(Options{Dir: dir, MaxBytes: 64 << 10, SweepInterval: -1, LockTimeout: lt})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// k entries on k distinct stripes, expired by the time the process stops.
	held := map[int]bool{}
	var names []string
	for i := 0; len(names) < k; i++ {
		key := fmt.Sprint("old", i)
		_, _, st := s.path(kindEntry, key)
		if held[st] {
			continue
		}
		held[st] = true
		names = append(names, lockName(st))
		if err := s.Put(ctx, key, make([]byte, 500), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Sweep(ctx); err != nil { // pending back to 0
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // they expire: the next sweep removes them

	// Another process stops while holding those k stripes.
	kill := h27StoppedHolder(t, dir, names...)
	defer kill()
	// This process goes on filling keys on other stripes.
	t0 := time.Now()
	var worst time.Duration
	var worstKey string
	n := 0
	for i := 0; n < 80; i++ {
		key := fmt.Sprint("new", i)
		if _, _, st := s.path(kindEntry, key); held[st] {
			continue
		}
		n++
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- s.Put(ctx, key, make([]byte, 1500), time.Hour) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(2 * time.Minute):
			t.Fatal("Put hung for 2 minutes")
		}
		if err != nil {
			t.Fatalf("Put %s on a free stripe: %v", key, err)
		}
		if d := time.Since(start); d > lt/2 {
			t.Logf("Put %s: %v (at %v)", key, d.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
		}
		if d := time.Since(start); d > worst {
			worst, worstKey = d, key
		}
	}
	st := s.Stats()
	t.Logf("stats %+v", st)
	t.Logf("worst Put: %s took %v (LockTimeout %v, %d stripes held by the stopped process)", worstKey, worst.Round(time.Millisecond), lt, k)
	if worst > 4*lt+time.Second {
		t.Errorf("a Put of %s, on a stripe nobody holds, took %v with LockTimeout %v: it waited for this process's sweep, which waited LockTimeout for each of the %d stripes the stopped process holds, one after the other", worstKey, worst.Round(time.Millisecond), lt, k)
	}
}
