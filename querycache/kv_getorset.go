package querycache

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"
)

// GetOrSet returns the bytes stored under key if they may be served;
// otherwise it calls fill, stores what it returns and returns it. hit
// reports which. The versions of what the value depends on (its
// DependsOn options) are read before fill runs, so a value computed before
// a write committed is never served after it (DESIGN.md, C1).
//
// Stampedes: concurrent misses of one key in this process share one fill
// call; across processes, on a store that grants leases (Redis), one
// process fills while the others wait up to Options.LeaseWait for its
// value. A failed fill is returned to its caller and never stored; callers
// that joined it run their own. If the store fails, the error is logged and
// counted and GetOrSet returns what fill computes (fail open).
//
// A value stored under key with other dependencies than this call's is a
// miss here, and is replaced.
func (kv *KV) GetOrSet(ctx context.Context, key string, fill func(ctx context.Context) ([]byte, error), opts ...KVOption) (value []byte, hit bool, err error) {
	defer untrackFailure(ctx, &err)
	v, hit, err := kv.getOrSet(ctx, key, kindBytes, fill, opts, nil)
	if hit {
		v.value = slices.Clone(v.value)
	}
	return v.value, hit, err
}

// valid, when not nil, judges a stored value: one it refuses is a miss
// (Remember's value of another type), refilled against the versions read
// before the fill like any other.
func (kv *KV) getOrSet(ctx context.Context, key string, kind byte, fill func(ctx context.Context) ([]byte, error), opts []KVOption, valid func(kvValue) bool) (kvValue, bool, error) {
	o, err := kv.call(opts)
	if err != nil {
		return kvValue{}, false, err
	}
	if fill == nil {
		fill = nilBytesFill // a hit needs none; a miss returns errNilFill
	}
	// around computes the value around the cache (a bypass: no fill is
	// counted, as the engine's GetOrSet counts none then); run, after a
	// miss, counts the fill.
	around := func() (kvValue, bool, error) {
		b, err := fill(ctx)
		return kvValue{kind: kind, value: b}, false, err
	}
	run := func() (kvValue, bool, error) {
		kv.c.stats.fills.Add(1)
		return around()
	}
	if kv.c.isClosed() {
		kv.c.stats.bypasses.add("closed")
		Untracked(ctx, "closed")
		return around()
	}
	name := kv.name(key, o)
	shown, err := kv.shownVersion(ctx, name)
	if err != nil {
		kv.lookupFailed(ctx, "get_or_set", err)
		Untracked(ctx, "store_error")
		return around()
	}
	shown.record(ctx) // served or filled here, the value may change after
	names := make([]string, 0, 1+len(o.deps))
	names = append(names, kv.c.ns.Epoch())
	names = append(names, o.deps...)
	if kv.c.pending.covers(names, names[0]) {
		kv.c.stats.bypasses.add("undelivered_invalidation")
		Untracked(ctx, "undelivered_invalidation")
		return around()
	}
	now := kv.c.now()
	raw, tokens, err := kv.st.Fetch(ctx, name, names)
	if err != nil {
		kv.lookupFailed(ctx, "get_or_set", err)
		Untracked(ctx, "store_error")
		return around()
	}
	// Served or filled, the value depends on these tokens (capture.go).
	record(ctx, names, tokens)
	v, why := kv.serveWhy(name, raw, tokens, o.deps, now)
	if why == "" && valid != nil && !valid(v) {
		why = MissCorrupt // Remember's value of another type
	}
	if why == "" {
		kv.c.stats.hits.Add(1)
		return v, true, nil
	}
	kv.c.stats.misses.Add(1)
	kv.c.stats.missReasons.add(why) // as the engine's lookups count them
	if kv.view != kv.st {
		// The fill's queries see the versions as the two-level store
		// does (see KV): the value is stored against those.
		_, viewed, err := kv.view.Fetch(ctx, "", names)
		if err != nil {
			kv.failed(ctx, "get_or_set", err) // its miss is counted already
			Untracked(ctx, "store_error")
			return run()
		}
		tokens = viewed
		record(ctx, names, tokens)
	}

	// The value is stored against the tokens read now, except those a
	// capture read earlier (DependsOnCapture).
	stored := tokens
	if len(o.fixed) > 0 {
		stored = slices.Clone(tokens)
		for i, n := range names {
			if t, ok := o.fixed[n]; ok {
				stored[i] = t
			}
		}
	}

	// The flight is keyed by the value's own version too, which a Delete,
	// Set or Add of the key bumps: a call that began after one returned
	// joined a fill begun before it, and was handed a value computed from
	// the data before the application's write (a hostile run, issue 8's
	// fortieth session: TestKVGetOrSetAfterDeleteComputesAnew). Read here,
	// on a miss only, unless a capture read it already.
	own, err := kv.ownTokenAt(ctx, name, shown)
	if err != nil {
		kv.failed(ctx, "get_or_set", err) // its miss is counted already
		Untracked(ctx, "store_error")
		return run()
	}
	o.own, o.ownRead = own, true
	fk := flightKey(name, append(slices.Clip(tokens), own))
	res, err, leader := kv.flight.do(ctx, fk, func(ctx context.Context) (r any, ferr error) {
		defer recoverFill(&ferr)
		// A flight of the same key and tokens may have stored between
		// our read and this one's start: read once more before filling.
		before := raw
		if again, current, err := kv.st.Fetch(ctx, name, names); err == nil {
			before = again
			if slices.Equal(current, tokens) {
				if v, ok := kv.serve(name, again, current, o.deps, kv.c.now()); ok && (valid == nil || valid(v)) {
					return kvFilled{v: v, cached: true}, nil
				}
			}
		}
		return kv.fill(ctx, name, kind, names, o, stored, now, before, fill)
	})
	if p, ok := err.(*fillPanic); ok && leader {
		panic(p.value) // ours alone: the callers that joined fill their own
	}
	if err == nil && !leader && res.(kvFilled).private {
		// The leader's fill read inside a transaction that has written:
		// not stored, and not ours either. Handed to us, its rows (of a
		// transaction that may yet roll back) reached a caller outside it
		// (TestHostile49EngineRememberOutsideTxGetsRolledBackCount).
		err = errNotShared
	}
	if err != nil && !leader {
		if ctx.Err() != nil {
			return kvValue{}, false, ctx.Err() // we stopped waiting: our caller has gone
		}
		// Another caller's fill failed (its context may have been
		// cancelled, or it panicked): compute our own rather than share
		// its failure.
		return run()
	}
	if err != nil {
		return kvValue{}, false, err
	}
	r := res.(kvFilled)
	return r.v, r.cached, nil
}

type kvFilled struct {
	v      kvValue
	cached bool // another process stored it while we waited for its lease
	// private: read inside a transaction that has written (C3): only the
	// leader, whose transaction it is, gets it.
	private bool
}

// serve decodes raw and reports whether it may be served against tokens,
// the current tokens of the epoch and deps.
func (kv *KV) serve(name string, raw []byte, tokens []uint64, deps []string, now time.Time) (kvValue, bool) {
	v, why := kv.serveWhy(name, raw, tokens, deps, now)
	return v, why == ""
}

// serveWhy is serve, saying why the value may not be served: one of the
// engine's miss reasons (Miss.Reason), "" when it may.
func (kv *KV) serveWhy(name string, raw []byte, tokens []uint64, deps []string, now time.Time) (kvValue, string) {
	if raw == nil {
		return kvValue{}, MissAbsent
	}
	e, v, ok := kv.decode(name, raw)
	if !ok {
		return kvValue{}, MissCorrupt
	}
	if !slices.Equal(v.deps, deps) {
		return kvValue{}, MissStale // recorded other versions than the caller depends on
	}
	if !e.fresh(now, tokens) {
		return kvValue{}, e.staleness(now)
	}
	return v, ""
}

// fill runs the flight's fill: under the key's lease when the store grants
// them, waiting for another process's value when it holds the lease.
//
// before is what the key held when the flight started (nil: nothing):
// the value is stored only if the key still holds it, so a Set or a
// Delete that returned while fill ran is not undone by a value computed
// before it (a compare-and-swap, where the store has one).
func (kv *KV) fill(ctx context.Context, name string, kind byte, names []string, o kvCall, tokens []uint64, read time.Time, before []byte, fill func(ctx context.Context) ([]byte, error)) (kvFilled, error) {
	var token string
	if kv.lease != nil {
		t, held, err := kv.lease.Lease(ctx, name, kv.c.stamp.leaseTTL)
		switch {
		case err != nil:
			kv.failed(ctx, "lease", err)
		case held:
			token = t
			kv.c.stats.leaseAcquired.Add(1)
		default:
			kv.c.stats.leaseWaits.Add(1)
			v, ok, timedOut := kv.waitLease(ctx, name, names, o.deps, before)
			if ok {
				kv.c.stats.leaseWaitHits.Add(1)
				return kvFilled{v: v, cached: true}, nil
			}
			if timedOut {
				kv.c.stats.leaseTimeouts.Add(1)
			}
		}
	}
	release := func() {
		if token != "" {
			_ = kv.lease.ReleaseLease(context.WithoutCancel(ctx), name, token)
		}
	}
	defer func() {
		if v := recover(); v != nil {
			// As a failed fill: other processes stop waiting for a value
			// that will not come (TestHostile49EngineKVPanickingFillKeepsLease).
			release()
			panic(v)
		}
	}()
	kv.c.stats.fills.Add(1)
	// The fill runs under a capture of its own, only to learn whether it
	// read inside a transaction (C3: such a value is never stored).
	fctx, fcap, done := scopedCapture(ctx)
	defer done() // also when fill panics
	mark := kv.c.open.mark(o.tables)
	b, err := fill(fctx)
	if err != nil {
		release()
		return kvFilled{}, err
	}
	v := kvValue{kind: kind, deps: o.deps, value: b}
	if ctx.Err() != nil {
		// The caller's context ended while fill ran: what it returned may
		// be a fallback for the query that was cancelled ("n/a"), not the
		// value. Not stored, and not handed to the callers that joined,
		// as GetOrSetCaptured does (TestKVCancelledFillNotStored).
		release()
		kv.c.stats.refusals.add("cancelled")
		return kvFilled{v: v, private: true}, nil
	}
	if fcap.Uncommitted() || kv.c.open.coversSince(o.tables, mark) {
		release()
		kv.c.stats.refusals.add("transaction")
		return kvFilled{v: v, private: true}, nil
	}
	if kv.check(b) != nil {
		release()
		kv.c.stats.refusals.add("too_large") // as GetOrSetCaptured counts it
		return kvFilled{v: v}, nil
	}
	if !kv.ownCurrent(ctx, name, o) {
		release()
		kv.c.stats.refusals.add("overtaken") // set or deleted meanwhile
		return kvFilled{v: v}, nil
	}
	if kv.c.pending.covers(names, names[0]) {
		release()
		kv.c.stats.refusals.add("undelivered_invalidation")
		return kvFilled{v: v}, nil
	}
	if kv.view != kv.st && !kv.readCurrent(ctx, fcap) {
		release()
		kv.c.stats.refusals.add("first_level_behind")
		return kvFilled{v: v}, nil
	}
	raw := kv.encode(name, kind, b, o.deps, tokens, read, o.ttl)
	stored := false
	switch {
	case kv.sw != nil:
		stored, err = kv.swapFilled(ctx, name, before, raw, o.ttl, names)
		release()
		if err == nil && !stored {
			kv.c.stats.refusals.add("overtaken") // set, deleted or filled meanwhile
		}
	case token != "":
		err = kv.lease.PutLeased(ctx, name, raw, o.ttl, names, token)
		stored = err == nil
		if errors.Is(err, ErrLeaseLost) {
			kv.c.stats.refusals.add("lease_lost")
			err = nil
		}
	default:
		err = kv.put(ctx, name, raw, o.ttl, names)
		stored = err == nil
	}
	if stored {
		kv.c.stats.stores.Add(1)
		// Whatever showed the value it replaces must not outlive it.
		err = kv.changed(ctx, name)
	}
	if err != nil {
		kv.failed(ctx, "get_or_set", err)
	}
	return kvFilled{v: v}, nil
}

// readCurrent reports, on a two-level store, whether every version the
// fill's reads recorded (fcap: its cached queries, the values it read) was
// read with the token the shared level holds now. A fill refused here read
// something from this process's first level that another process's write
// has already replaced (its broadcast has not arrived): it is returned,
// not stored. The ordering this prevents, in the default mode:
//
//  1. process A writes row r: r's versions are replaced in Redis, the
//     broadcast is on its way to us
//  2. GetOrSet reads the declared versions through the two-level store
//     (view.Fetch, above): a name our first level does not hold is read
//     from Redis, with its new token
//  3. the fill's query is served from our first level under other names,
//     whose old tokens it still holds: the row before the write
//  4. the old result is stored against the new tokens of step 2, and every
//     process serves it until the next write to r, long after the
//     broadcast has arrived
//
// The declaration and the query name different versions whenever the
// query is keyed otherwise than declared: a lookup by primary key
// (obj:, bulk:) under DependsOn(table) (tbl:), or a query keyed by the
// table (a table whose rows the plugin cannot key, a declared table, a
// WHERE on other columns) under DependsOnObject. A write after this check
// replaces the declared versions after the ones the value is stored
// against, as without a first level. One versions-only round trip, for
// fills that read through the cache; a fill that read a version with two
// tokens, or more versions than a capture records, is not stored. Value
// versions are skipped: they are read from the shared level, and a
// nested GetOrSet replaces its own after storing.
func (kv *KV) readCurrent(ctx context.Context, fcap *Capture) bool {
	all, seen, twice, complete := fcap.everyRead()
	if !complete {
		return false
	}
	for _, n := range twice {
		if !kv.c.ns.IsValueVersion(n) {
			return false // two states of one version: one is not current
		}
	}
	var names []string
	var tokens []uint64
	for i, n := range all {
		if !kv.c.ns.IsValueVersion(n) {
			names, tokens = append(names, n), append(tokens, seen[i])
		}
	}
	if len(names) == 0 {
		return true
	}
	_, current, err := kv.st.Fetch(ctx, "", names)
	if err != nil {
		kv.failed(ctx, "get_or_set", err)
		return false
	}
	return slices.Equal(current, tokens)
}

// swapFilled stores a fill's value if the key still holds before, what
// it held when the fill began. Before may be an entry already expired by
// its own clock that the store has dropped since (a store's expiry starts
// when it stored, a little later): that is no write to lose, so the swap
// is tried once more from absent. Without this second try the refill of
// an expired value could fail to store, and its value version stay, with
// a page that showed the old value still served (the CI failure of
// TestHostileKVCapturedPageMissesRefill under load).
func (kv *KV) swapFilled(ctx context.Context, name string, before, raw []byte, ttl time.Duration, names []string) (bool, error) {
	stored, err := kv.sw.CompareAndSwap(ctx, name, before, raw, ttl, names)
	if err == nil && !stored && kv.expired(name, before) {
		stored, err = kv.sw.CompareAndSwap(ctx, name, nil, raw, ttl, names)
	}
	return stored, err
}

// expired reports whether raw holds an entry the store may drop by itself
// at any moment: expired, or bytes that do not decode. A tombstone left by
// Delete is one too; dropping it only ends its watch.
func (kv *KV) expired(name string, raw []byte) bool {
	if len(raw) == 0 {
		return false // the swap was from absent already
	}
	e, err := decodeEntryAt(name, raw)
	return err != nil || kv.c.now().UnixNano() >= e.expires
}

// waitLease polls for the value another process is filling under its
// lease, up to Options.LeaseWait.
//
// before is what the key held when the wait began: a poll that finds
// something else there that it cannot serve (the holder filled from
// versions older than ours) ends the wait at once.
func (kv *KV) waitLease(ctx context.Context, name string, names, deps []string, before []byte) (v kvValue, ok, timedOut bool) {
	deadline := time.Now().Add(kv.c.stamp.leaseWait)
	wait := time.Millisecond
	for time.Now().Before(deadline) {
		t := time.NewTimer(min(wait, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return kvValue{}, false, false
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
		raw, tokens, err := kv.st.Fetch(ctx, name, names)
		if err != nil {
			return kvValue{}, false, false
		}
		if v, ok := kv.serve(name, raw, tokens, deps, kv.c.now()); ok {
			return v, true, false
		}
		if raw != nil && !bytes.Equal(raw, before) {
			return kvValue{}, false, false
		}
	}
	return kvValue{}, false, true
}
