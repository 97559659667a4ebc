//go:build unix

package filestore

import (
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// stripe is one lock: a semaphore for this process's goroutines (a
// channel, so that a wait can be given up), and flock(2) on a lock file
// for the other processes. The lock file stays open until Close; fd is -1
// before its first use and -2 after Close. sem guards fd.
type stripe struct {
	sem chan struct{}
	fd  int
}

func (st *stripe) init() {
	st.sem = make(chan struct{}, 1)
	st.fd = -1
}

// lock takes stripe i, in this process and across processes, waiting at
// most wait for it (forever: waitForever), and fails with a
// *LockTimeoutError after that.
//
// The wait is bounded because a process stopped (SIGSTOP, a debugger, a
// frozen container) while it held a stripe's lock file holds it until it
// is continued: a blocking flock(2), which cannot be given up, hung every
// other process's reads, fills and writes of the stripe's files, and the
// goroutines of this process queued behind the waiting one, for as long
// as the holder stayed stopped (TestLockHeldByStoppedProcess). A holder
// that dies releases its locks: only a living, stopped one needs this.
//
// Bump alone waits forever (lockForBump says why), logging a warning
// every LockTimeout.
func (s *Store) lock(i int, wait time.Duration) (*stripe, error) {
	st := &s.stripes[i]
	var deadline time.Time
	select {
	case st.sem <- struct{}{}:
	default:
		// Another goroutine holds it (for a rename, or waiting for
		// another process).
		deadline = time.Now().Add(wait)
		if !s.acquire(st, i, wait) {
			if s.isClosed() {
				return nil, ErrClosed
			}
			return nil, s.timedOut(i, wait)
		}
	}
	if st.fd == -2 {
		<-st.sem
		return nil, ErrClosed
	}
	if st.fd == -1 {
		fd, err := unix.Open(filepath.Join(s.dir, "locks", lockName(i)), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			<-st.sem
			return nil, fmt.Errorf("filestore: open lock file: %w", err)
		}
		st.fd = fd
	}
	// flock is polled without blocking: another process's critical
	// sections are a rename or a removal (with Sync, an fsync), so the
	// pause starts short and grows to a millisecond, the longest a
	// release goes unnoticed.
	pause := 20 * time.Microsecond
	warned := time.Time{}
	for {
		err := unix.Flock(st.fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return st, nil
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EWOULDBLOCK {
			<-st.sem
			return nil, fmt.Errorf("filestore: flock %s: %w", lockName(i), err)
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline, warned = now.Add(wait), now
		}
		if wait == waitForever {
			if s.isClosed() {
				<-st.sem
				return nil, ErrClosed
			}
			if now.Sub(warned) >= s.opts.LockTimeout {
				warned = now
				s.warnWaiting(i)
			}
		} else if now.After(deadline) {
			<-st.sem
			return nil, s.timedOut(i, wait)
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// acquire takes the semaphore of st, stripe i, within wait (forever:
// waitForever, with the warnings of lock, until Close), and reports
// whether it did.
func (s *Store) acquire(st *stripe, i int, wait time.Duration) bool {
	step := wait
	if wait == waitForever {
		step = s.opts.LockTimeout
	}
	t := time.NewTimer(step)
	defer t.Stop()
	for {
		select {
		case st.sem <- struct{}{}:
			return true
		case <-s.closed:
			return false
		case <-t.C:
			if wait != waitForever {
				return false
			}
			s.warnWaiting(i)
			t.Reset(step)
		}
	}
}

// unlock releases a stripe taken by lock.
func (st *stripe) unlock() {
	_ = unix.Flock(st.fd, unix.LOCK_UN)
	<-st.sem
}

// closeLocks closes every lock file; later locks fail with ErrClosed.
// It waits for the stripes' holders, Bumps waiting forever included.
func (s *Store) closeLocks() {
	for i := range s.stripes {
		st := &s.stripes[i]
		st.sem <- struct{}{}
		if st.fd >= 0 {
			unix.Close(st.fd)
		}
		st.fd = -2
		<-st.sem
	}
}
