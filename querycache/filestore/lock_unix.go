//go:build unix

package filestore

import (
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// stripe is one lock: a mutex for this process's goroutines, and flock(2)
// on a lock file for the other processes. The lock file stays open until
// Close; fd is -1 before its first use and -2 after Close.
type stripe struct {
	mu sync.Mutex
	fd int
}

// lockName is the file of stripe i in Dir/locks.
func lockName(i int) string {
	switch {
	case i == sweepStripe:
		return "sweep"
	case i >= nStripes:
		return fmt.Sprintf("v-%02x", i-nStripes)
	default:
		return fmt.Sprintf("e-%02x", i)
	}
}

// lock takes stripe i, in this process and across processes.
func (s *Store) lock(i int) (*stripe, error) {
	st := &s.stripes[i]
	st.mu.Lock()
	if st.fd == -2 {
		st.mu.Unlock()
		return nil, ErrClosed
	}
	if st.fd == -1 {
		fd, err := unix.Open(filepath.Join(s.dir, "locks", lockName(i)), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			st.mu.Unlock()
			return nil, fmt.Errorf("filestore: open lock file: %w", err)
		}
		st.fd = fd
	}
	for {
		err := unix.Flock(st.fd, unix.LOCK_EX)
		if err == nil {
			return st, nil
		}
		if err != unix.EINTR {
			st.mu.Unlock()
			return nil, fmt.Errorf("filestore: flock %s: %w", lockName(i), err)
		}
	}
}

// unlock releases a stripe taken by lock.
func (st *stripe) unlock() {
	_ = unix.Flock(st.fd, unix.LOCK_UN)
	st.mu.Unlock()
}

// closeLocks closes every lock file; later locks fail with ErrClosed.
func (s *Store) closeLocks() {
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		if st.fd >= 0 {
			unix.Close(st.fd)
		}
		st.fd = -2
		st.mu.Unlock()
	}
}
