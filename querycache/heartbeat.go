package querycache

import (
	"context"
	"time"
)

// The heartbeat of a shared store: a process that makes no call of its
// own still finds out that the store stalled.
//
// A write whose invalidation the store did not take within
// InvalidateTimeout returns with it pending (retried until delivered). A
// process that saw the store fail meanwhile opened its breaker, and
// replaces the epoch before it uses the store again; one that made no
// call during the stall did not, and served what the write changed from
// the moment the store resumed until the writer's retry delivered. The
// GORM plugin's catalog watch polled the store every 100 ms, which made
// every process with the plugin fail a call; with the watch off, slower,
// or with the low-level API alone, the order of events was (a hostile
// run, issue 8's forty-first session):
//
//  1. Redis stalls; writer W's update times out, its invalidation is
//     kept pending, and after InvalidateTimeout the write returns
//  2. reader R, idle during the stall, calls nothing: its breaker stays
//     closed
//  3. Redis resumes; R reads the row from its entry (same tokens): the
//     value from before W's write, which had returned seconds ago,
//     until W's retry delivers
//
// So the store reads the server every Heartbeat (100 ms by default)
// itself, through the breaker, when it has made no call since its last
// turn (a busy store's own calls, or the plugin's catalog watch, fail in
// a stall already): a stall longer than BreakerFailures
// timeouts opens the breaker of every process, idle or not, within
// InvalidateTimeout (a failed heartbeat is retried at once, not a period
// later).

// heartbeatDefault is RedisOptions.Heartbeat's and
// PostgresOptions.Heartbeat's default.
const heartbeatDefault = 100 * time.Millisecond

// startHeartbeat starts the store's heartbeat, once: every period, while
// the breaker is closed and ready says the server can be asked (nil:
// always), ping (bounded by timeout) through call, whose failures count
// towards opening the breaker. A period of -1 (or any negative one) is
// none. Its goroutine is not one Close waits for: a ping stuck in a
// connection's set-up, which go-redis does not bound by the call's
// context, held Close for the length of a stall (a hostile run); it ends
// at its next turn after Close.
func (g *guarded) startHeartbeat(period, timeout time.Duration, ready func() bool, ping func(ctx context.Context) error) {
	if period <= 0 || ping == nil {
		return
	}
	g.beatOnce.Do(func() {
		go func() {
			t := time.NewTicker(period)
			defer t.Stop()
			seen := g.calls.Load()
			for {
				select {
				case <-g.closed:
					return
				case <-t.C:
				}
				// A store that made calls since the last turn (its
				// lookups, the GORM plugin's catalog watch) has had them
				// fail in a stall: no beat, no traffic of its own.
				if n := g.calls.Load(); n != seen {
					seen = n
					continue
				}
				// While it fails, again at once: the breaker opens after
				// its failures in a row, each a timeout long.
				for g.brk.allow() && !g.isClosed() && (ready == nil || ready()) {
					if g.call(g.life, timeout, ping) == nil {
						break
					}
				}
				seen = g.calls.Load()
			}
		}()
	})
}

// isClosed reports whether the store's Close has begun.
func (g *guarded) isClosed() bool {
	select {
	case <-g.closed:
		return true
	default:
		return false
	}
}

// beatTimeout bounds a heartbeat's ping: the store's Timeout, or, when it
// has none (-1), what lets failures pings in a row fit in invalidate
// after a period: an idle process's breaker then opens before a write
// that waited InvalidateTimeout returns with its invalidation pending.
// (With a Timeout that does not fit, the busy processes' breakers do not
// open in time either: Heartbeat + BreakerFailures × Timeout ≤
// InvalidateTimeout is the rule, which the defaults keep.)
func beatTimeout(timeout, invalidate, period time.Duration, failures int) time.Duration {
	if timeout > 0 {
		return timeout
	}
	return max((invalidate-period)/time.Duration(max(failures, 1)), time.Millisecond)
}
