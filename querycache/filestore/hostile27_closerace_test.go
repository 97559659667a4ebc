//go:build linux

package filestore

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// h27LockFDs counts this process's descriptors open on dir/locks/*.
func h27LockFDs(dir string) int {
	des, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, de := range des {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", de.Name()))
		if err == nil && strings.HasPrefix(l, filepath.Join(dir, "locks")+"/") {
			n++
		}
	}
	return n
}

// TestHostile27CloseRacesWaits: Close racing with waits (Put, Bump,
// CompareAndSwap) for a lock held through another open file description,
// released at a random moment before or after Close and LockTimeout. After
// everything settles, no lock file of the store may stay open, nothing may
// hang, and -race must stay quiet.
func TestHostile27CloseRacesWaits(t *testing.T) {
	for iter := 0; iter < 40; iter++ {
		dir := t.TempDir()
		const lt = 30 * time.Millisecond
		s, err := New(Options{Dir: dir, SweepInterval: -1, LockTimeout: lt})
		if err != nil {
			t.Fatal(err)
		}
		_, _, es := s.path(kindEntry, "k")
		_, _, vs := s.path(kindVersion, "v")
		var fds []int
		for _, st := range []int{es, vs} {
			fd, err := unix.Open(filepath.Join(dir, "locks", lockName(st)), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch g % 3 {
				case 0:
					_ = s.Put(ctx, "k", []byte("v"), time.Hour)
				case 1:
					_ = s.Bump(ctx, []string{"v"})
				case 2:
					_, _ = s.CompareAndSwap(ctx, "k", nil, []byte("x"), time.Hour, []string{"v"})
				}
			}()
		}
		r := rand.Intn(4)
		time.Sleep(time.Duration(rand.Intn(60)) * time.Millisecond)
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		if r%2 == 0 {
			time.Sleep(time.Duration(rand.Intn(80)) * time.Millisecond)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); <-closed; close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("iteration %d: calls or Close hung", iter)
		}
		// The last holder of each stripe closes its file as it lets go,
		// on a goroutine of its own: a fixed 50 ms was too short for
		// them under CI's load (1 file still open, once).
		deadline := time.Now().Add(5 * time.Second)
		n := h27LockFDs(dir)
		for n != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			n = h27LockFDs(dir)
		}
		if n != 0 {
			t.Fatalf("iteration %d: %d lock files of the closed store still open 5 s after Close returned", iter, n)
		}
	}
}
