//go:build linux

package filestore

import (
	"testing"
	"time"
)

// TestHostile27NewBesideStoppedSweeper: New takes the lock of sweeps (to
// check that flock works, and to check the boot ID). It waited a minute
// for a stopped process's sweep lock and then failed, leaving that lock
// file's descriptor open for good in a Store nobody could reach: the
// abandoned wait closed it only after Close, which a failed New never
// called. Now New goes on without the lock after LockTimeout, and once the
// store is closed and the holder is gone no lock file stays open.
func TestHostile27NewBesideStoppedSweeper(t *testing.T) {
	dir := t.TempDir()
	s0, err := New(Options{Dir: dir, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	s0.Close()
	kill := h27StoppedHolder(t, dir, "sweep")
	before := h27LockFDs(dir)
	start := time.Now()
	s, err := New(Options{Dir: dir, SweepInterval: -1, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("New with the sweep lock held by a stopped process: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("New took %v beside a stopped sweeper with LockTimeout 50ms", d)
	}
	if _, err := s.Sweep(t.Context()); err != nil {
		t.Errorf("a Sweep beside a stopped sweeper: %v", err)
	}
	s.Close()
	kill()
	deadline := time.Now().Add(10 * time.Second)
	for h27LockFDs(dir) != before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the abandoned wait takes and releases the lock
	}
	if n := h27LockFDs(dir) - before; n != 0 {
		t.Errorf("%d lock file(s) left open after Close and the holder's death", n)
	}
}
