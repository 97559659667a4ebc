package querycache

import (
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
	run := func() (kvValue, bool, error) {
		kv.c.stats.fills.Add(1)
		b, err := fill(ctx)
		return kvValue{kind: kind, value: b}, false, err
	}
	if kv.c.isClosed() {
		kv.c.stats.bypasses.add("closed")
		Untracked(ctx, "closed")
		return run()
	}
	name := kv.name(key, o)
	shown, err := kv.shownVersion(ctx, name)
	if err != nil {
		kv.failed(ctx, "get_or_set", err)
		Untracked(ctx, "store_error")
		return run()
	}
	shown.record(ctx) // served or filled here, the value may change after
	names := make([]string, 0, 1+len(o.deps))
	names = append(names, kv.c.ns.Epoch())
	names = append(names, o.deps...)
	if kv.c.pending.covers(names, names[0]) {
		kv.c.stats.bypasses.add("undelivered_invalidation")
		Untracked(ctx, "undelivered_invalidation")
		return run()
	}
	now := kv.c.now()
	raw, tokens, err := kv.st.Fetch(ctx, name, names)
	if err != nil {
		kv.failed(ctx, "get_or_set", err)
		Untracked(ctx, "store_error")
		return run()
	}
	// Served or filled, the value depends on these tokens (capture.go).
	record(ctx, names, tokens)
	if v, ok := kv.serve(raw, tokens, o.deps, now); ok && (valid == nil || valid(v)) {
		kv.c.stats.hits.Add(1)
		return v, true, nil
	}
	kv.c.stats.misses.Add(1)

	leader := false
	res, err, _ := kv.flight.Do(flightKey(name, tokens), func() (any, error) {
		leader = true
		// A flight of the same key and tokens may have stored between
		// our read and this one's start: read once more before filling.
		if raw, again, err := kv.st.Fetch(ctx, name, names); err == nil && slices.Equal(again, tokens) {
			if v, ok := kv.serve(raw, again, o.deps, kv.c.now()); ok && (valid == nil || valid(v)) {
				return kvFilled{v: v, cached: true}, nil
			}
		}
		return kv.fill(ctx, name, kind, names, o, tokens, now, fill)
	})
	if err != nil && !leader {
		// Another caller's fill failed (its context may have been
		// cancelled): compute our own rather than share its failure.
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
}

// serve decodes raw and reports whether it may be served against tokens,
// the current tokens of the epoch and deps.
func (kv *KV) serve(raw []byte, tokens []uint64, deps []string, now time.Time) (kvValue, bool) {
	if raw == nil {
		return kvValue{}, false
	}
	e, err := decodeEntry(raw)
	if err != nil {
		kv.c.stats.corrupt.Add(1)
		return kvValue{}, false
	}
	v, err := decodeKV(e.payload)
	if err != nil {
		kv.c.stats.corrupt.Add(1)
		return kvValue{}, false
	}
	if !slices.Equal(v.deps, deps) || !e.fresh(now, tokens) {
		return kvValue{}, false
	}
	return v, true
}

// fill runs the flight's fill: under the key's lease when the store grants
// them, waiting for another process's value when it holds the lease.
func (kv *KV) fill(ctx context.Context, name string, kind byte, names []string, o kvCall, tokens []uint64, read time.Time, fill func(ctx context.Context) ([]byte, error)) (kvFilled, error) {
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
			if v, ok := kv.waitLease(ctx, name, names, o.deps); ok {
				kv.c.stats.leaseWaitHits.Add(1)
				return kvFilled{v: v, cached: true}, nil
			}
			kv.c.stats.leaseTimeouts.Add(1)
		}
	}
	release := func() {
		if token != "" {
			_ = kv.lease.ReleaseLease(context.WithoutCancel(ctx), name, token)
		}
	}
	kv.c.stats.fills.Add(1)
	b, err := fill(ctx)
	if err != nil {
		release()
		return kvFilled{}, err
	}
	v := kvValue{kind: kind, deps: o.deps, value: b}
	if kv.check(b) != nil || kv.c.pending.covers(names, names[0]) {
		release()
		return kvFilled{v: v}, nil
	}
	raw := kv.encode(kind, b, o.deps, tokens, read, o.ttl)
	if token != "" {
		err = kv.lease.PutLeased(ctx, name, raw, o.ttl, names, token)
		if errors.Is(err, ErrLeaseLost) {
			kv.c.stats.refusals.add("lease_lost")
			err = nil
		}
	} else {
		err = kv.put(ctx, name, raw, o.ttl, names)
		if err == nil {
			kv.c.stats.stores.Add(1)
		}
	}
	if err != nil {
		kv.failed(ctx, "get_or_set", err)
	}
	return kvFilled{v: v}, nil
}

// waitLease polls for the value another process is filling under its
// lease, up to Options.LeaseWait.
func (kv *KV) waitLease(ctx context.Context, name string, names, deps []string) (kvValue, bool) {
	deadline := time.Now().Add(kv.c.stamp.leaseWait)
	wait := time.Millisecond
	for time.Now().Before(deadline) {
		t := time.NewTimer(min(wait, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return kvValue{}, false
		case <-t.C:
		}
		wait = min(2*wait, 20*time.Millisecond)
		raw, tokens, err := kv.st.Fetch(ctx, name, names)
		if err != nil {
			return kvValue{}, false
		}
		if v, ok := kv.serve(raw, tokens, deps, kv.c.now()); ok {
			return v, true
		}
	}
	return kvValue{}, false
}
