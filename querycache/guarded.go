package querycache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// guarded is what the shared stores (RedisStore, PostgresStore) keep around
// their round trips: the circuit breaker and its prober, the functions run
// each time the breaker closes again, and the store's life (Close ends the
// prober and the store's own goroutines). A store embeds it, made by
// newGuarded, and calls setup once its options are known.
type guarded struct {
	brk        breaker
	recoverMu  sync.Mutex
	recoverFns []recoverFn
	closed     chan struct{}
	life       context.Context // ends when Close begins: the context of the store's own calls
	endLife    context.CancelFunc
	closeOnce  sync.Once
	lifeMu     sync.Mutex // orders a goroutine's wg.Add before Close's Wait
	wg         sync.WaitGroup
	beatOnce   sync.Once     // startHeartbeat (heartbeat.go)
	calls      atomic.Uint64 // calls made (call), for the heartbeat to skip a busy store's turn

	server   string        // what the warnings call the store: "Redis", "PostgreSQL store"
	logger   *slog.Logger  // nil logs nothing
	every    time.Duration // between the prober's probes
	probe    func() bool   // a probe: true when the store answers (then it called recovered)
	answered func(error) bool
}

func newGuarded() guarded {
	life, end := context.WithCancel(context.Background())
	return guarded{closed: make(chan struct{}), life: life, endLife: end}
}

// setup gives the guard the store's options: failures in a row that open
// the breaker, the probe and its interval, and which errors are answers
// rather than failures (redis.Nil; nil: none).
func (g *guarded) setup(server string, logger *slog.Logger, failures int, every time.Duration, probe func() bool, answered func(error) bool) {
	g.server, g.logger, g.every, g.probe, g.answered = server, logger, every, probe, answered
	g.brk.threshold = int32(failures)
}

// onRecover registers fn to run, on the prober's goroutine, each time the
// breaker closes again. A nil fn is ignored: called when the store came
// back, it ended the process (TestOnRecoverNilAndPanicking).
func (g *guarded) onRecover(fn func()) { g.onRecoverFor(nil, fn) }

// recoverFn is a recovery function and the Cache that registered it (nil
// for one registered by OnRecover).
type recoverFn struct {
	owner any
	fn    func()
}

// onRecoverFor is onRecover for a Cache, which takes its function back
// when it closes (dropRecover): a closed Cache stayed reachable from a
// long-lived store through it, and every recovery ran one function per
// cache ever made (TestHostileL1ClosedCachesRetainedByStore).
func (g *guarded) onRecoverFor(owner any, fn func()) {
	if fn == nil {
		return
	}
	g.recoverMu.Lock()
	g.recoverFns = append(g.recoverFns, recoverFn{owner, fn})
	g.recoverMu.Unlock()
}

// dropRecover removes the recovery functions owner registered.
func (g *guarded) dropRecover(owner any) {
	g.recoverMu.Lock()
	g.recoverFns = slices.DeleteFunc(g.recoverFns, func(r recoverFn) bool { return r.owner == owner })
	g.recoverMu.Unlock()
}

// call runs fn with timeout (none when 0) and feeds the breaker: refused
// at once with ErrStoreUnavailable while it is open, a success or an
// answer resets its count, and the failure that opens it logs and starts
// the prober. A call the caller cancelled says nothing about the store
// and is not counted.
func (g *guarded) call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	if !g.brk.allow() {
		return ErrStoreUnavailable
	}
	g.calls.Add(1)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := fn(ctx)
	if err == nil || g.answered != nil && g.answered(err) {
		g.brk.success()
		return nil
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		return err
	}
	if g.brk.failure() {
		g.logWarn("querycache: "+g.server+" failing; bypassing the cache until it answers", "err", err)
		g.startProbe()
	}
	return err
}

// recovered closes the breaker after a successful probe, then runs the
// recovery functions (which deliver what was kept while the store was
// away) and logs how long the store was bypassed.
func (g *guarded) recovered() {
	d := g.brk.close()
	g.recoverMu.Lock()
	fns := slices.Clone(g.recoverFns)
	g.recoverMu.Unlock()
	for _, r := range fns {
		runRecovery(r.fn, g.logger)
	}
	g.logWarn("querycache: "+g.server+" answers again; cache back in use", "bypassed_for", d)
}

// runRecovery runs an OnRecover function, logging a panic rather than
// ending the process: it runs on a goroutine of the store's, where no
// caller can recover it.
func runRecovery(fn func(), logger *slog.Logger) {
	defer func() {
		if r := recover(); r != nil && logger != nil {
			logger.Error("querycache: an OnRecover function panicked", "panic", fmt.Sprint(r))
		}
	}()
	fn()
}

func (g *guarded) logWarn(msg string, args ...any) {
	if g.logger != nil {
		g.logger.Warn(msg, args...)
	}
}

// goLive runs fn on a goroutine of the store's life, which Close waits
// for; false, without running it, once Close has begun. The goroutine is
// added to wg under lifeMu, never after Close has begun waiting: a call
// failing while Close runs would otherwise Add to a WaitGroup being
// waited on at zero (a misuse the race detector reports, and the runtime
// may panic on).
func (g *guarded) goLive(fn func()) bool {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	select {
	case <-g.closed:
		return false
	default:
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// startProbe runs the probe every interval on a goroutine of its own until
// it returns true or the store is closed; at most one runs at a time.
//
// A successful probe closes the breaker and then runs the recovery
// functions, still as the prober. The breaker can open again in between
// (a call on a connection the outage broke fails threshold times): the
// failure that reopens it calls startProbe, which finds a prober running
// and returns. So the prober, once it has stepped down, looks at the
// breaker again and carries on if it is open; without that look the
// breaker stayed open with nobody probing, and the cache was bypassed
// until the process restarted.
func (g *guarded) startProbe() {
	b := &g.brk
	if !b.probing.CompareAndSwap(false, true) {
		return
	}
	started := g.goLive(func() {
		t := time.NewTicker(g.every)
		defer t.Stop()
		for {
			select {
			case <-g.closed:
				b.probing.Store(false)
				return
			case <-t.C:
			}
			if !b.probeTurn(g.probe) {
				continue
			}
			// Step down, then look: a failure that opened the breaker
			// before the Store saw probing true and left it to us; one
			// after it starts a prober of its own (and our CAS fails).
			b.probing.Store(false)
			if !b.open.Load() || !b.probing.CompareAndSwap(false, true) {
				return
			}
		}
	})
	if !started {
		b.probing.Store(false)
	}
}

// close ends the store's life: the prober and the store's goroutines are
// told (their calls' context, life, ends), and waited for, at most
// closeWait. Later calls return at once.
//
// The wait is bounded because go-redis does not end a call in flight when
// its context is cancelled, only at its deadline: a probe that started
// while the server was stopped held Close for the probe's timeout
// (InvalidateTimeout, 30 s if so configured), a shutdown held by the
// outage it should leave behind (TestCloseDuringProbeOfStoppedRedis). A
// goroutine still running then ends on its own at its call's deadline.
func (g *guarded) close() {
	g.closeOnce.Do(func() {
		g.lifeMu.Lock()
		close(g.closed)
		g.lifeMu.Unlock()
		g.endLife()
		waited := make(chan struct{})
		go func() {
			g.wg.Wait()
			close(waited)
		}()
		t := time.NewTimer(closeWait)
		defer t.Stop()
		select {
		case <-waited:
		case <-t.C:
		}
	})
}

// closedStore reports whether the store's Close has begun (checkStore).
func (g *guarded) closedStore() bool { return g.isClosed() }

// closeWait bounds how long Close waits for a store's goroutines (and the
// two-level store's subscription) to stop.
const closeWait = time.Second
