package querycache

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// fillGroup runs one fill per key at a time, like singleflight.Group,
// except that a caller who joined another's fill stops waiting when its
// own context ends. With singleflight, a page whose render hung held every
// request for that page until it finished, those whose clients had left
// too (a goroutine and its connection's buffers each). Cache.GetOrSet and
// the low-level API (KV) fill through one.
//
// The order of events it allows: the leader runs fn on its own goroutine;
// a follower whose context ends returns ctx.Err() at once, and fn goes on
// for the others. fn must not panic (recoverFill turns a panic into an
// error); if it does anyway, the followers get errFillAborted.
type fillGroup struct {
	mu sync.Mutex
	m  map[string]*fillCall
}

type fillCall struct {
	done chan struct{}
	once sync.Once // finish
	val  any
	err  error
	dups int // callers that joined (under the group's mutex; read by tests)
}

// finished reports whether the call has handed out its result (or
// released its followers).
func (c *fillCall) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// finish hands v and err to the callers that joined, once: when fn
// returns, or earlier when its leader releases them.
func (c *fillCall) finish(v any, err error) {
	c.once.Do(func() {
		c.val, c.err = v, err
		close(c.done)
	})
}

// do runs fn for key if no call of key is in flight, or waits for the one
// that is. leader reports whether fn ran in this call. fn gets ctx marked
// with the flight: a call of the same key made from inside fn (a fill
// that asks the cache for its own key) gets ErrFillCycle at once instead
// of waiting for itself for ever.
func (g *fillGroup) do(ctx context.Context, key string, fn func(ctx context.Context) (any, error)) (v any, err error, leader bool) {
	return g.doReleasable(ctx, key, func(ctx context.Context, _ func()) (any, error) { return fn(ctx) })
}

// doReleasable is do, fn being given release: a call of it ends the wait
// of the callers that joined (they get errNotShared) and lets later
// callers of key start a call of their own, while fn goes on for its
// leader alone. A streamed page's render calls it (ReleaseWaiters).
func (g *fillGroup) doReleasable(ctx context.Context, key string, fn func(ctx context.Context, release func()) (any, error)) (v any, err error, leader bool) {
	for m, _ := ctx.Value(flightMarkKey{}).(*flightMark); m != nil; m = m.parent {
		if m.g == g && m.key == key && !m.c.finished() {
			// Only while that fill runs: a context derived from a fill's
			// outlives it (a job the fill started), and a call made with
			// it later is an ordinary one
			// (TestHostile50FillCycleBackgroundJobAfterFillFails).
			return nil, ErrFillCycle, true
		}
	}
	g.mu.Lock()
	if c, ok := g.m[key]; ok {
		c.dups++
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.val, c.err, false
		case <-ctx.Done():
			return nil, ctx.Err(), false
		}
	}
	if g.m == nil {
		g.m = map[string]*fillCall{}
	}
	c := &fillCall{done: make(chan struct{})}
	g.m[key] = c
	g.mu.Unlock()
	forget := func() {
		g.mu.Lock()
		if g.m[key] == c { // not a later call's, after a release
			delete(g.m, key)
		}
		g.mu.Unlock()
	}
	v, err = nil, errFillAborted // what the followers get if fn panics
	defer func() {
		forget()
		c.finish(v, err)
	}()
	parent, _ := ctx.Value(flightMarkKey{}).(*flightMark)
	v, err = fn(context.WithValue(ctx, flightMarkKey{}, &flightMark{g: g, key: key, c: c, parent: parent}), func() {
		forget()
		c.finish(nil, errNotShared)
	})
	return v, err, true
}

// flightMark marks a fill's context with the flights it runs in.
type flightMark struct {
	g      *fillGroup
	key    string
	c      *fillCall
	parent *flightMark
}

type flightMarkKey struct{}

// ErrFillCycle is returned by GetOrSet (and Remember) called, while the
// fill of the same key runs, with that fill's context (or one derived
// from it): the call would wait for the fill it is part of, for ever. Without a cache the same code would recurse without end;
// compute that value without the cache there.
var ErrFillCycle = errors.New("querycache: a fill asked the cache for its own key, which would wait for itself; compute the value without the cache inside its own fill")

// errFillAborted is what followers get when the leader's fill panicked
// past recoverFill.
var errFillAborted = errors.New("querycache: the fill this call waited for was aborted")

// fillPanic is a panic of a shared fill, caught so that only its own
// caller panics: singleflight handed it to every caller that joined.
type fillPanic struct{ value any }

func (p *fillPanic) Error() string {
	return fmt.Sprintf("querycache: a shared fill panicked: %v", p.value)
}

// recoverFill turns a panic of a flight's function into a *fillPanic
// error; the flight's leader panics again with the original value (so
// http.ErrAbortHandler stays itself), the others fill on their own.
func recoverFill(err *error) {
	if v := recover(); v != nil {
		*err = &fillPanic{value: v}
	}
}
