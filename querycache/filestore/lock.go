package filestore

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// defaultLockTimeout is Options.LockTimeout's default: far beyond any
// critical section (a rename; with Sync, two fsyncs on a loaded disk),
// short enough that a stopped holder costs a request a bounded delay.
const defaultLockTimeout = 2 * time.Second

// waitForever is the wait of a lock that is never given up (Bump's).
const waitForever time.Duration = -1

// LockTimeoutError is returned by a call that waited Options.LockTimeout
// for a stripe's lock file that another process held all along: most
// likely a process stopped (SIGSTOP, a debugger, a frozen container)
// while it held the lock. The call did nothing; the cache treats it as
// any store error (a read is a miss, a fill is skipped, an invalidation is
// retried and its versions bypassed until it is delivered).
type LockTimeoutError struct {
	Lock   string        // the lock file
	Waited time.Duration // how long the call waited
}

func (e *LockTimeoutError) Error() string {
	if e.Waited <= 0 {
		return fmt.Sprintf("filestore: lock %s is busy, held by another process for long: a process stopped while holding it? (continue or kill it; a process that dies releases its locks)", e.Lock)
	}
	return fmt.Sprintf("filestore: lock %s held by another process for over %v: a process stopped while holding it? (continue or kill it; a process that dies releases its locks)", e.Lock, e.Waited)
}

// isLockTimeout reports whether err is a *LockTimeoutError.
func isLockTimeout(err error) bool {
	var lte *LockTimeoutError
	return errors.As(err, &lte)
}

// timedOut is the error of a wait of stripe i given up after wait.
func (s *Store) timedOut(i int, wait time.Duration) error {
	return &LockTimeoutError{Lock: s.lockPath(i), Waited: wait}
}

// warnWaiting logs that a Bump has waited another LockTimeout for stripe
// i: the write that called it does not return meanwhile.
func (s *Store) warnWaiting(i int) {
	if s.opts.Logger != nil {
		s.opts.Logger.Warn("querycache filestore: an invalidation waits for a lock another process has held for long: a process stopped while holding it? The write does not return until it is released (continue or kill that process)",
			"lock", s.lockPath(i), "each", s.opts.LockTimeout)
	}
}

// lockForBump is the wait of Bump's locks: forever. A Bump that gave up
// could neither replace the version's file nor remove it (a holder
// stopped in the middle of extending the version renames the old token
// back when it resumes), so another process would go on serving what the
// write changed while the write returned as if invalidated (C1). The
// write waits instead, with a warning every LockTimeout; Close ends the
// wait with ErrClosed.
const lockForBump = waitForever

// lockPath is the lock file of stripe i.
func (s *Store) lockPath(i int) string { return filepath.Join(s.dir, "locks", lockName(i)) }

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
