//go:build unix

package filestore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// stripe is one lock: a mutex for this process's goroutines, and flock(2)
// on a lock file for the other processes. The lock file stays open until
// Close; fd is -1 before its first use and -2 after Close. Whoever holds
// mu owns fd.
type stripe struct {
	mu sync.Mutex
	fd int
	// stuck is set while a wait for the lock file has lasted LockTimeout
	// (another process holds it, most likely stopped): the stripe's other
	// callers fail at once instead of each waiting LockTimeout behind it,
	// and each leaving a goroutine blocked on mu until the holder goes on
	// (TestHostile27TimedOutCallsLeakGoroutines: one per call).
	stuck atomic.Bool
	// heldAt is when mu was last taken (Unix nanoseconds): a call queued
	// behind this process's goroutines gives up only on a holder that
	// has held it for LockTimeout, not on a line that moves.
	heldAt atomic.Int64
	closed <-chan struct{} // the store's: the last holder after Close closes fd
}

func (st *stripe) init(closed <-chan struct{}) { st.fd, st.closed = -1, closed }

// lock takes stripe i, in this process and across processes, waiting at
// most wait for another process's lock file (forever: waitForever), and
// fails with a *LockTimeoutError after that (at once while the stripe is
// stuck), or with ctx's error when ctx ends first. Behind this process's
// own goroutines it waits past wait as long as the line moves: it gives
// up once the stripe is stuck, or its holder has held it for LockTimeout.
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
// every LockTimeout, until Close.
func (s *Store) lock(ctx context.Context, i int, wait time.Duration) (*stripe, error) {
	st := &s.stripes[i]
	if wait != waitForever && st.stuck.Load() {
		return nil, s.timedOut(i, wait)
	}
	var deadline time.Time
	if wait != waitForever {
		deadline = time.Now().Add(wait)
	}
	try := wait != waitForever && wait <= 0 // no wait at all: a sweep only tries
	if st.mu.TryLock() {
		st.heldAt.Store(time.Now().UnixNano())
	} else {
		if try {
			return nil, s.timedOut(i, wait)
		}
		// Another goroutine holds it, for a rename or waiting for
		// another process.
		err := s.waitFor(ctx, st, i, wait, deadline, false,
			func() error { st.mu.Lock(); st.heldAt.Store(time.Now().UnixNano()); return nil },
			func(error) { st.release() })
		if err != nil {
			return nil, err.(*givenUp).err // acquire (Lock) fails never
		}
	}
	if st.fd == -2 {
		st.mu.Unlock()
		return nil, ErrClosed
	}
	if st.fd == -1 {
		fd, err := unix.Open(s.lockPath(i), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err != nil {
			st.release()
			return nil, fmt.Errorf("filestore: open lock file: %w", err)
		}
		st.fd = fd
	}
	err := flock(st.fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK && try {
		st.release()
		return nil, s.timedOut(i, wait)
	}
	if err == unix.EWOULDBLOCK {
		// Another process holds it.
		fd := st.fd
		err = s.waitFor(ctx, st, i, wait, deadline, true,
			func() error { return flock(fd, unix.LOCK_EX) },
			func(err error) {
				if err == nil {
					_ = unix.Flock(fd, unix.LOCK_UN)
				}
				st.release()
			})
		if err == nil {
			return st, nil
		}
		if g, given := err.(*givenUp); given {
			return nil, g.err // mu is left to the abandoned wait
		}
	}
	if err != nil {
		st.release()
		return nil, fmt.Errorf("filestore: flock %s: %w", lockName(i), err)
	}
	return st, nil
}

// givenUp wraps the error of a wait its caller gave up (the abandoned
// call releases what it takes): lock tells it from acquire's own errors.
type givenUp struct{ err error }

func (g *givenUp) Error() string { return g.err.Error() }

// waitFor runs acquire, a blocking call, in a goroutine of its own and
// waits for it until deadline (wait waitForever: until Close, warning
// every LockTimeout) or until ctx ends. It returns acquire's error when
// acquire returned in time, and a *givenUp (of a *LockTimeoutError,
// ErrClosed or ctx's error) when the caller gave up; the goroutine then
// calls release with acquire's error once acquire returns (when a
// stopped holder is continued or dies). A wait of the lock file (file
// set) marks the stripe stuck once it has lasted LockTimeout.
//
// The blocking calls keep their wake-ups: the kernel wakes a blocked
// flock(2) when the holder lets go, and a sync.Mutex lets a goroutine
// that just read a value take the lock ahead of older waiters. A poll
// with LOCK_NB noticed a release late, and a channel handed the lock to
// the oldest waiter, whose compare-and-swap read was the stalest: either
// way TestKVIncrAtomic/file lost 64 compare-and-swap races in a row.
func (s *Store) waitFor(ctx context.Context, st *stripe, i int, wait time.Duration, deadline time.Time, file bool, acquire func() error, release func(error)) error {
	w := &blockedCall{done: make(chan struct{})}
	if file {
		// Stuck once the lock file has been waited for LockTimeout,
		// whether or not the caller still waits (one that gave up on its
		// context first left the wait, and mu, to the goroutine: the
		// stripe's later callers, waiting on mu, never got to mark it,
		// and each waited LockTimeout: TestHostile28ShortContextDefeatsStuck).
		// Counted from this wait's start, not the caller's: a wait on mu
		// before it is no sign of a stopped process
		// (TestHostile28StuckAfterAShortFileWait).
		mark := time.AfterFunc(s.opts.LockTimeout, func() {
			w.mu.Lock()
			if !w.returned {
				st.stuck.Store(true)
			}
			w.mu.Unlock()
		})
		w.mark = mark // stopped by the goroutine below
	}
	go func() {
		err := acquire()
		w.mu.Lock()
		w.returned = true
		if w.mark != nil {
			w.mark.Stop()
			st.stuck.Store(false)
		}
		if !w.abandoned {
			// Closed under the lock: the caller, deciding to give up
			// under it too, either sees done or leaves release to us.
			w.err = err
			close(w.done)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		release(err)
	}()
	step := s.opts.LockTimeout
	if wait != waitForever {
		step = min(time.Until(deadline), step)
	}
	t := time.NewTimer(step)
	defer t.Stop()
	for {
		var giveUp error
		select {
		case <-w.done:
		case <-s.closed:
			giveUp = ErrClosed
		case <-ctx.Done():
			giveUp = ctx.Err()
		case <-t.C:
			if wait == waitForever {
				s.warnWaiting(i)
				t.Reset(step)
				continue
			}
			if !file && !st.stuck.Load() && time.Since(time.Unix(0, st.heldAt.Load())) < s.opts.LockTimeout {
				// A line of this process's goroutines, each holding the
				// stripe for a rename (with Sync, two fsyncs), is no
				// stopped process: the wait goes on while the line moves,
				// and ends on a holder stuck on the lock file, or one
				// that has held the stripe for LockTimeout (a hung disk).
				// TestHostile27InProcessQueueIsNotAStoppedProcess failed
				// under load: 1 of 1024 Puts waited 2 s in line.
				t.Reset(stuckPoll(s.opts.LockTimeout))
				continue
			}
			if left := time.Until(deadline); left > 0 && file {
				t.Reset(left)
				continue
			}
			giveUp = s.timedOut(i, wait)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		select {
		case <-w.done:
			return w.err // returned meanwhile: taken after all
		default:
			w.abandoned = true
			return &givenUp{giveUp}
		}
	}
}

// stuckPoll is how often a call queued on a stripe's mutex past its wait
// looks whether the holder is stuck.
func stuckPoll(lockTimeout time.Duration) time.Duration {
	return min(lockTimeout/20, 50*time.Millisecond)
}

// blockedCall is the call of waitFor's goroutine and whether its caller
// gave up on it.
type blockedCall struct {
	mu        sync.Mutex
	returned  bool        // acquire returned
	mark      *time.Timer // marks the stripe stuck (a wait of the lock file)
	abandoned bool
	err       error
	done      chan struct{} // closed when err is set (never, if abandoned)
}

// flock is flock(2), again while it is interrupted by a signal.
func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}

// unlock releases a stripe taken by lock.
func (st *stripe) unlock() {
	_ = unix.Flock(st.fd, unix.LOCK_UN)
	st.release()
}

// release unlocks mu, first closing the lock file if the store is closed
// (closeLocks leaves the file of a stripe it could not take to its
// holder).
func (st *stripe) release() {
	select {
	case <-st.closed:
		if st.fd >= 0 {
			unix.Close(st.fd)
		}
		st.fd = -2
	default:
	}
	st.mu.Unlock()
}

// closeLocks closes every lock file; later locks fail with ErrClosed.
// It waits at most LockTimeout in all for the stripes' holders; the file
// of a stripe still held then (by a wait given up on a stopped process's
// lock, or a long sweep) is closed by its holder when it lets go
// (release). s.closed must be closed first.
func (s *Store) closeLocks() {
	deadline := time.Now().Add(s.opts.LockTimeout)
	for i := range s.stripes {
		st := &s.stripes[i]
		held := st.mu.TryLock()
		for !held && !st.stuck.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
			held = st.mu.TryLock()
		}
		if held {
			st.release() // closes the file
		}
	}
}
