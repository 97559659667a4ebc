package querycache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStoreUnavailable is returned by a store whose circuit breaker is open:
// the store failed several calls in a row and is bypassed, without a
// network call, until a probe finds it answering again. The engine counts
// it as a bypass ("store_unavailable") and does not log it per call.
var ErrStoreUnavailable = errors.New("querycache: store unavailable (circuit breaker open)")

// breaker keeps a dead store from adding a timeout to every query. After
// threshold consecutive failures it opens: calls fail at once with
// ErrStoreUnavailable, and a single prober (guarded.startProbe, started
// by the failure that opened it) tries the store until it answers, then
// closes it.
type breaker struct {
	threshold int32
	open      atomic.Bool
	failures  atomic.Int32

	mu       sync.Mutex
	openedAt time.Time
	opened   atomic.Int64 // times it opened, for statistics and tests

	probing atomic.Bool // a prober is running (guarded.startProbe)

	// probeSem lets one probe run at a time, the prober's or an
	// invalidation's (heal): a probe replaces the epoch and runs the
	// recovery functions, which two at once would do twice.
	probeSem  chan struct{}
	probeOnce sync.Once
}

func (b *breaker) sem() chan struct{} {
	b.probeOnce.Do(func() { b.probeSem = make(chan struct{}, 1) })
	return b.probeSem
}

// heal gives an invalidation that finds the breaker open a probe of its
// own, run now, waiting at most until a deadline; it reports whether the
// breaker is closed afterwards. A lookup may skip a
// store the breaker thinks down (that costs a miss), an invalidation may
// not wait for the prober's next tick: the ordering it prevents, with two
// processes,
//
//  1. Redis comes back; reader R's breaker closes at its probe and R
//     fills row 1's entry from the database
//  2. writer W, whose breaker is still open (its probe is up to
//     BreakerProbe away), updates row 1: the invalidation fails at once
//     and is kept pending in W
//  3. R reads row 1 from its entry, stale, until W's probe delivers
//
// With heal, W's invalidation in 2 probes Redis itself, finds it back and
// is delivered before the write returns.
//
// How long: wait (HealWait) once the outage is old, but while
// the breaker opened less than young (the store's InvalidateTimeout) ago,
// until young has passed since it opened, as an invalidation waits for an
// answer with the breaker closed. A stall (a fork, a slow command, a
// paused VM) opens the breaker of a busy process in a few timeouts and
// not that of an idle one; the ordering a young outage's short wait let
// through (TestHostile35PausedRedisWriteServedStaleByIdleProcess):
//
//  1. Redis stalls; W's lookups time out and open W's breaker; R is idle,
//     its breaker stays closed (nothing of its own failed)
//  2. W updates row 1: one probe of HealWait fails, the invalidation is
//     kept pending and the write returns
//  3. Redis resumes; R reads row 1 from its entry (same server, same
//     tokens), stale, until W's prober delivers (up to BreakerProbe)
//
// Waiting out the young outage, W's write returns once its invalidation
// is delivered, or after young: by then every process that polls the
// store (the plugin's catalog watch) has had its own calls fail too, and
// a process whose breaker opened replaces the epoch before it uses the
// store again. It waits in one probe, which blocks only while the store
// holds the request unanswered (a stall); a store that refuses it (no
// server: one that comes back is another server, whose first connection
// replaces the epoch) fails the probe at once, and the write goes on.
// Concurrent invalidations share the probes, in turn.
//
// The retry loop's delivery (ctx marked retryDelivery) does not heal: the
// probe's recovery takes the delivery lock that loop holds.
func (b *breaker) heal(ctx context.Context, wait, young time.Duration, probe func(timeout time.Duration) bool) bool {
	if !b.open.Load() {
		return true
	}
	if wait <= 0 || ctx.Value(retryDelivery{}) != nil {
		return false
	}
	deadline := time.Now().Add(wait)
	b.mu.Lock()
	if end := b.openedAt.Add(young); end.After(deadline) {
		deadline = end
	}
	b.mu.Unlock()
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	left := time.Until(deadline)
	if left <= 0 {
		return false
	}
	t := time.NewTimer(left)
	select {
	case b.sem() <- struct{}{}:
		t.Stop()
	case <-t.C:
		return !b.open.Load()
	}
	defer func() { <-b.sem() }()
	if !b.open.Load() {
		return true // the probe we waited for closed it
	}
	left = time.Until(deadline)
	if left <= 0 {
		return false
	}
	return probe(left)
}

// probeTurn runs the prober's probe in its turn (heal may be probing):
// a breaker closed meanwhile counts as a successful probe.
func (b *breaker) probeTurn(probe func() bool) bool {
	b.sem() <- struct{}{}
	defer func() { <-b.sem() }()
	if !b.open.Load() {
		return true
	}
	return probe()
}

// allow reports whether a call may go to the store.
func (b *breaker) allow() bool { return !b.open.Load() }

// success records a call that reached the store and got an answer.
func (b *breaker) success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
}

// failure records a failed call; it returns true when this failure opened
// the breaker (exactly one caller sees true per opening, and it starts the
// prober).
func (b *breaker) failure() bool {
	if b.failures.Add(1) < b.threshold {
		return false
	}
	if b.open.CompareAndSwap(false, true) {
		b.mu.Lock()
		b.openedAt = time.Now()
		b.mu.Unlock()
		b.opened.Add(1)
		return true
	}
	return false
}

// close closes the breaker after a successful probe and returns how long
// it was open.
func (b *breaker) close() time.Duration {
	b.failures.Store(0)
	b.mu.Lock()
	d := time.Since(b.openedAt)
	b.mu.Unlock()
	b.open.Store(false)
	return d
}
