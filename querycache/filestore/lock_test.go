//go:build linux

package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"querycache.dev/querycache"
)

// syncBuffer is a bytes.Buffer for a logger written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestLockHeldByStoppedProcess: another process stopped (SIGSTOP) while it
// holds the store's lock files. Before, every call that takes a lock
// blocked in flock(2) for as long as that process stayed stopped: a read of
// a version not yet created, a fill, a compare-and-swap all hung, and with
// them the requests that made them. Now they fail with a *LockTimeoutError
// after LockTimeout (the cache falls back to the database). A Bump, which
// cannot invalidate around the holder, waits, warning in the log, and
// completes once the holder dies: the write it serves never returns as if
// invalidated while another process could still serve what it changed.
func TestLockHeldByStoppedProcess(t *testing.T) {
	dir := t.TempDir()
	var logs syncBuffer
	const lockTimeout = 300 * time.Millisecond
	s, err := New(Options{Dir: dir, SweepInterval: -1, LockTimeout: lockTimeout,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// A version created and an entry filled before the holder stops.
	if err := s.PutFor(ctx, "page", []byte("old"), time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	_, before, err := s.Fetch(ctx, "page", []string{"users"})
	if err != nil {
		t.Fatal(err)
	}

	all := make([]string, 0, 2*nStripes+1)
	for i := range 2*nStripes + 1 {
		all = append(all, lockName(i))
	}
	kill := h27StoppedHolder(t, dir, all...)

	// Each call that takes a lock, bounded.
	timedOut := func(what string, call func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			var lte *LockTimeoutError
			if !errors.As(err, &lte) {
				t.Errorf("%s with the lock held by a stopped process: %v, want a *LockTimeoutError", what, err)
			} else if !strings.Contains(err.Error(), "stopped") {
				t.Errorf("%s: the error does not say what to do: %v", what, err)
			}
		case <-time.After(lockTimeout + 20*time.Second):
			t.Fatalf("%s hung with the lock held by a stopped process", what)
		}
	}
	timedOut("Fetch of a version not yet created", func() error {
		_, _, err := s.Fetch(ctx, "page", []string{"orders"})
		return err
	})
	timedOut("Put", func() error { return s.Put(ctx, "page", []byte("new"), time.Hour) })
	timedOut("CompareAndSwap", func() error {
		_, err := s.CompareAndSwap(ctx, "page", []byte("old"), []byte("new"), time.Hour, nil)
		return err
	})
	// Goroutines of this process queued behind a waiting one give up too.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timedOut("a queued Put", func() error { return s.Put(ctx, "page", []byte("new"), time.Hour) })
		}()
	}
	wg.Wait()
	// What needs no lock still works: the entry and its existing version.
	if v, toks, err := s.Fetch(ctx, "page", []string{"users"}); err != nil || string(v) != "old" || toks[0] != before[0] {
		t.Errorf("a hit with the locks held: %q %v %v", v, toks, err)
	}

	// Through the cache: a fill is skipped (an error, counted), a read
	// of a key filled before still hits, nothing hangs.
	c, err := querycache.New(querycache.Options{Store: s, Prefix: "lk:"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kvDone := make(chan error, 1)
	go func() {
		err := c.KV().Set(ctx, "k", []byte("v"))
		_, _, _ = c.KV().Get(ctx, "k")
		kvDone <- err
	}()
	select {
	case err := <-kvDone:
		if err == nil {
			t.Error("KV().Set with every lock held by a stopped process returned nil")
		}
	case <-time.After(lockTimeout*10 + 20*time.Second):
		t.Fatal("the cache hung with the lock held by a stopped process")
	}

	// Bump waits for the holder, warns, and completes once it dies.
	bumped := make(chan error, 1)
	go func() { bumped <- s.Bump(ctx, []string{"users"}) }()
	select {
	case err := <-bumped:
		t.Fatalf("Bump returned (%v) with the version's lock held by a stopped process: another process would serve what the write changed", err)
	case <-time.After(3 * lockTimeout):
	}
	if !strings.Contains(logs.String(), "an invalidation waits for a lock") {
		t.Errorf("no warning while Bump waits; log:\n%s", logs.String())
	}
	kill()
	select {
	case err := <-bumped:
		if err != nil {
			t.Fatalf("Bump after the holder died: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Bump still waits 20s after the holder died")
	}
	if _, toks, err := s.Fetch(ctx, "page", []string{"users"}); err != nil || toks[0] == before[0] {
		t.Errorf("after the Bump: token %v (before %v), %v", toks, before, err)
	}
	// The stripes recover once the waits given up on return (their
	// goroutines let go of the lock files and clear stuck), shortly after
	// the holder's death: not necessarily by the next call.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Put(ctx, "page", []byte("new"), time.Hour)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Put 20s after the holder died: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseEndsAWaitingBump: a Bump waiting for a stopped holder ends with
// ErrClosed when the store is closed, and Close does not hang.
func TestCloseEndsAWaitingBump(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Options{Dir: dir, SweepInterval: -1, LockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// This test holds the version's lock file through a descriptor of
	// its own: flock(2) locks belong to the open file, so the store's
	// own descriptor waits as another process's would.
	_, _, stripe := s.path(kindVersion, "users")
	holdLockFile(t, dir, stripe)
	bumped := make(chan error, 1)
	go func() { bumped <- s.Bump(context.Background(), []string{"users"}) }()
	time.Sleep(300 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-bumped:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("the waiting Bump after Close: %v, want ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a waiting Bump did not end at Close")
	}
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close hung behind a waiting Bump")
	}
}

// TestSweepSkipsAStripeHeldByAStoppedProcess: a sweep that cannot take one
// stripe's lock (another process stopped holding it) removes the expired
// files of every other stripe, instead of hanging (as it did) or stopping
// at it.
func TestSweepSkipsAStripeHeldByAStoppedProcess(t *testing.T) {
	dir := t.TempDir()
	s := h27Store(t, dir, 100*time.Millisecond)
	ctx := context.Background()
	const n = 20
	for i := range n {
		if err := s.Put(ctx, fmt.Sprint("k", i), []byte("v"), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond) // all expired
	_, held, stripe := s.path(kindEntry, "k0")
	holdLockFile(t, dir, stripe)
	done := make(chan struct{})
	var (
		st  SweepStats
		err error
	)
	go func() { st, err = s.Sweep(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the sweep hung on a stripe held by a stopped process")
	}
	var lte *LockTimeoutError
	if err != nil && !errors.As(err, &lte) {
		t.Errorf("Sweep: %v, want nil (the stripe is not known to be stuck) or its *LockTimeoutError", err)
	}
	sameStripe := 0
	for i := range n {
		if _, _, st := s.path(kindEntry, fmt.Sprint("k", i)); st == stripe {
			sameStripe++
		}
	}
	if st.Expired != n-sameStripe {
		t.Errorf("the sweep removed %d expired files, want %d (all but the held stripe's %d)", st.Expired, n-sameStripe, sameStripe)
	}
	if _, err := os.Stat(held); err != nil {
		t.Errorf("the held stripe's file was removed: %v", err)
	}
}

// TestLockWaitEndsWithContext: a call waiting for a lock another process
// holds gives up when its context ends, before LockTimeout.
func TestLockWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	s := h27Store(t, dir, time.Minute)
	_, _, stripe := s.path(kindEntry, "k")
	fd := holdLockFile(t, dir, stripe)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, "k", []byte("v"), time.Hour) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Put whose context ended while it waited for a lock: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Put waited on after its context ended")
	}
	// Once the holder lets go, the stripe works again.
	if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Put(context.Background(), "k", []byte("v"), time.Hour)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Put after the holder let go: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdLockFile takes the flock(2) of the lock file of stripe i of dir
// through a descriptor of its own, until the test ends: flock locks
// belong to the open file, so the store's own descriptor waits as another
// process's would. It returns the descriptor.
func holdLockFile(t *testing.T, dir string, i int) int {
	t.Helper()
	fd, err := unix.Open(filepath.Join(dir, "locks", lockName(i)), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return fd
}
