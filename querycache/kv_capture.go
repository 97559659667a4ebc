package querycache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrUntracked is returned by a call given DependsOnCapture of a capture
// that saw reads made without the cache (Capture.Untracked): no version
// stands for what they showed, so the value cannot be stored safely.
var ErrUntracked = errors.New("querycache: the value was computed from reads the cache did not track")

// DependsOnCapture declares that the value was computed by work that ran
// with cap's context (WithCapture): it depends on every version cap
// recorded, at the token cap recorded, so a write that committed while the
// work ran leaves the value stale at once.
func DependsOnCapture(cap *Capture) KVOption {
	return func(o *kvCall) {
		if cap == nil {
			return
		}
		if n, why := cap.Untracked(); n > 0 {
			if o.err == nil {
				o.err = fmt.Errorf("%w (%d reads: %s)", ErrUntracked, n, strings.Join(why, ", "))
			}
			return
		}
		names, tokens := cap.Versions()
		if o.fixed == nil {
			o.fixed = make(map[string]uint64, len(names))
		}
		epoch := o.ns.Epoch()
		for i, n := range names {
			if _, ok := o.fixed[n]; !ok {
				o.fixed[n] = tokens[i]
			}
			if n != epoch {
				o.deps = append(o.deps, n)
			}
		}
	}
}

// GetOrSetCaptured is GetOrSet for a value whose dependencies are not
// declared but captured: fill runs with a context that records what it
// reads from the cache (WithCapture: the GORM plugin's cached queries,
// low-level values, nested captured values), and the value is stored
// against exactly that, with the DependsOn options added. It is what the
// page and fragment caches are built on.
//
// A fill that read anything without the cache (Capture.Untracked: a query
// not marked cacheable, say) is returned but not stored, and counted as
// the refusal "untracked": no version would stand for what it showed.
//
// The captures of the caller's context record what the value depends on,
// on a hit as on a fill, so captured values nest.
func (kv *KV) GetOrSetCaptured(ctx context.Context, key string, fill func(ctx context.Context) ([]byte, error), opts ...KVOption) (value []byte, hit bool, err error) {
	defer untrackFailure(ctx, &err)
	o, err := kv.call(opts)
	if err != nil {
		return nil, false, err
	}
	if fill == nil {
		fill = nilBytesFill // a hit needs none; a miss returns errNilFill
	}
	if kv.c.isClosed() {
		kv.c.stats.bypasses.add("closed")
		Untracked(ctx, "closed")
		b, err := fill(ctx) // a bypass: no fill counted, as the engine's
		return b, false, err
	}
	name := kv.name(key, o)
	r, err := kv.read(ctx, name, nil) // records what a hit depends on
	before := r.raw
	switch {
	case err != nil:
		kv.lookupFailed(ctx, "get_or_set", err)
	case r.alive:
		kv.c.stats.hits.Add(1)
		return slices.Clone(r.v.value), true, nil
	default:
		kv.c.stats.misses.Add(1)
		kv.c.stats.missReasons.add(r.why)
	}
	// Whatever shows what is filled here depends on the value's own
	// version as read before the fill (a Set or Delete of it after must
	// invalidate a page that nests it), as GetOrSet's callers do.
	r.shown.record(ctx)

	// Keyed by the value's own version too, as GetOrSet's flight: a call
	// begun after a Delete or Set of the key returned joined a render
	// begun before it, and stillCurrent below looks only at what the
	// render read (a hostile run, issue 8's fortieth session).
	own, err := kv.ownTokenAt(ctx, name, r.shown)
	if err != nil {
		kv.failed(ctx, "get_or_set", err) // its miss is counted already
		Untracked(ctx, "store_error")
		kv.c.stats.fills.Add(1)
		b, err := fill(ctx)
		return b, false, err
	}
	o.own, o.ownRead = own, true
	fk := "\x00captured\x00" + name + "\x00" + strconv.FormatUint(own, 16)
	res, ferr, leader := kv.flight.doReleasable(ctx, fk, func(ctx context.Context, release func()) (r any, err error) {
		defer recoverFill(&err)
		return kv.fillCaptured(ctx, name, o, before, fill, release)
	})
	if p, ok := ferr.(*fillPanic); ok && leader {
		panic(p.value) // ours alone: the callers that joined render their own
	}
	if ferr == nil && !leader && !res.(capturedFill).shareable {
		// The leader's render read something without the cache, or its
		// request was cancelled (a handler that shows "temporarily
		// unavailable" when its query fails): it was not stored, and it
		// is not ours to show either.
		ferr = errNotShared
	}
	if ferr != nil && !leader && ctx.Err() != nil {
		return nil, false, ctx.Err() // we stopped waiting: our caller has gone
	}
	if ferr != nil && !leader {
		kv.c.stats.fills.Add(1)
		b, err := fill(ctx) // our own: another caller's failure is not ours
		return b, false, err
	}
	if ferr != nil {
		return nil, false, ferr
	}
	f := res.(capturedFill)
	if !leader && !kv.stillCurrent(ctx, f) {
		// We joined a fill that read before a write we may have started
		// after (the flight is keyed by name only: what the value depends
		// on is known once it is filled). Render our own (C1).
		f, ferr = kv.fillCaptured(ctx, name, o, before, fill, nil)
		if ferr != nil {
			return nil, false, ferr
		}
		return slices.Clone(f.value), false, nil
	}
	if !leader {
		// The leader's fill recorded into the leader's captures only.
		record(ctx, f.names, f.tokens)
		for _, why := range f.untracked {
			Untracked(ctx, why)
		}
	}
	return slices.Clone(f.value), false, nil
}

type capturedFill struct {
	shareable bool // no untracked read, the leader's context not cancelled
	value     []byte
	names     []string // the epoch first
	tokens    []uint64
	untracked []string
}

// fillCaptured renders and stores, like KV.fill: only if the key still
// holds before (what it held when the caller read it).
func (kv *KV) fillCaptured(ctx context.Context, name string, o kvCall, before []byte, fill func(ctx context.Context) ([]byte, error), release func()) (capturedFill, error) {
	cctx, cp, done := scopedCapture(ctx)
	defer done()
	if release != nil {
		cctx = context.WithValue(cctx, releaseKey{}, &fillRelease{cap: cp, release: release})
	}
	// The declared dependencies are read before the fill, like GetOrSet's.
	epoch := kv.c.ns.Epoch()
	declared := append([]string{epoch}, o.deps...)
	if _, tokens, err := kv.view.Fetch(ctx, "", declared); err == nil {
		record(cctx, declared, tokens)
	} else {
		kv.failed(ctx, "get_or_set", err)
		Untracked(cctx, "store_error")
	}
	kv.c.stats.fills.Add(1)
	mark := kv.c.open.mark(o.tables)
	b, err := fill(cctx)
	if err != nil {
		return capturedFill{}, err
	}
	names, tokens := cp.Versions()
	n, why := cp.Untracked()
	f := capturedFill{value: b, untracked: why, shareable: n == 0 && ctx.Err() == nil}
	if n > 0 && len(why) == 0 {
		f.untracked = []string{"untracked"}
	}
	// The epoch first, then the dependencies sorted: the layout of a
	// value's entry (kvValue).
	byName := make(map[string]uint64, len(names))
	for i, nm := range names {
		byName[nm] = tokens[i]
	}
	et, ok := byName[epoch]
	if !ok {
		return f, nil // nothing read the epoch: the store failed
	}
	deps := make([]string, 0, len(names))
	for _, nm := range names {
		if nm != epoch {
			deps = append(deps, nm)
		}
	}
	slices.Sort(deps)
	f.names = append([]string{epoch}, deps...)
	f.tokens = make([]uint64, len(f.names))
	f.tokens[0] = et
	for i, d := range deps {
		f.tokens[i+1] = byName[d]
	}
	switch {
	case n > 0:
		kv.c.stats.refusals.add("untracked")
	case ctx.Err() != nil:
		// The caller's request ended while it rendered: what it made may
		// be a fallback ("the rest timed out"), not the page
		// (TestHostile27CancelledRenderNotStored).
		kv.c.stats.refusals.add("cancelled")
	case len(deps) > maxKVDeps:
		kv.c.stats.refusals.add("too_many_versions")
	case kv.check(b) != nil:
		kv.c.stats.refusals.add("too_large")
	case !kv.ownCurrent(ctx, name, o):
		kv.c.stats.refusals.add("overtaken") // set or deleted meanwhile
	case kv.c.open.coversSince(o.tables, mark):
		kv.c.stats.refusals.add("transaction")
	case kv.c.pending.covers(f.names, epoch):
		// A refusal as its siblings: the lookup used the cache, only the
		// value is not kept (as Cache.put counts it).
		kv.c.stats.refusals.add("undelivered_invalidation")
	default:
		raw := kv.encode(name, kindBytes, b, deps, f.tokens, kv.c.now(), o.ttl)
		var err error
		stored := false
		if kv.sw != nil {
			if stored, err = kv.swapFilled(ctx, name, before, raw, o.ttl, f.names); err == nil && !stored {
				kv.c.stats.refusals.add("overtaken")
			}
		} else {
			err = kv.put(ctx, name, raw, o.ttl, f.names)
			stored = err == nil
		}
		if stored {
			kv.c.stats.stores.Add(1)
			err = kv.changed(ctx, name)
		}
		if err != nil {
			kv.failed(ctx, "get_or_set", err)
		}
	}
	return f, nil
}

// stillCurrent reports whether every version a captured fill read still has
// the token it read. A fill that stored nothing for lack of them is not.
func (kv *KV) stillCurrent(ctx context.Context, f capturedFill) bool {
	if len(f.names) == 0 {
		return false
	}
	_, tokens, err := kv.st.Fetch(ctx, "", f.names)
	return err == nil && slices.Equal(tokens, f.tokens)
}

// ReleaseWaiters tells the GetOrSetCaptured call whose fill runs with
// ctx (the context the fill was given, not one derived from it with
// another capture) that what the fill makes is not for the callers
// waiting for it: they stop waiting and each fill their own, as when a
// fill is not shareable, and callers arriving later do not join it. The
// fill goes on for its own caller; whether its value is stored is decided
// as always, when it returns. The page cache calls it when a render
// starts going to its client as it is written (a Flush, a body too large
// to store, a hijack): a second client of a live stream waited for the
// first one's stream to end (TestHostile49StreamJoinersWaitForLeadersEnd).
// With any other context it does nothing.
func ReleaseWaiters(ctx context.Context) {
	if ctx == nil {
		return
	}
	if r, ok := ctx.Value(releaseKey{}).(*fillRelease); ok && captureFrom(ctx) == r.cap {
		r.release()
	}
}

type releaseKey struct{}

// fillRelease is what ReleaseWaiters finds in a captured fill's context:
// the fill's own capture (a context derived with another capture is
// another computation's) and its flight's release.
type fillRelease struct {
	cap     *Capture
	release func()
}

// errNotShared makes the callers that joined a flight compute their own.
var errNotShared = errors.New("querycache: the shared fill is not for its followers")

// untrackFailure marks the captures ctx carries untracked when a
// GetOrSet-like call fails: its caller shows something else in its place
// (an error message, a fallback), which no version describes. A page that
// nests a fragment whose loader failed was stored, the fragment's error in
// it, and served after the failure had ended
// (TestHostile27FailedFragmentPageStored).
func untrackFailure(ctx context.Context, err *error) {
	if *err != nil {
		Untracked(ctx, "fill_error")
	}
}
