package querycache

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Probabilistic early refresh (XFetch: Vattani, Chierichetti and Lowenstein,
// "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015).
//
// When a hot entry expires, every process that reads it misses at once. To
// avoid that, a hit refreshes the entry a little before it expires, with a
// probability that rises as expiry nears: a hit at now refreshes when
//
//	now - delta * beta * ln(rand()) >= expires
//
// where delta is how long the entry took to fill (recorded in the entry,
// format 3) and rand() is uniform in (0, 1]. -ln(rand()) is exponentially
// distributed with mean 1, so an entry that took delta to compute is
// usually refreshed within a few delta of its expiry, and an entry that is
// cheap to compute (or a format 2 entry, delta 0) only expires. beta
// (Options.EarlyRefreshBeta) scales it. The paper shows this spreads the
// refreshes of concurrent readers so that, for a hot key, one of them
// refreshes before the expiry and the others keep hitting.
//
// Only one refresh of a key runs at a time: within a process a gate
// (stampede.refreshing) lets the first due hit refresh while the others
// serve the entry they found; across processes the refresher takes the
// fill lease, and a hit that cannot get it serves what it found (another
// process is refreshing). The refresher returns the fresh value.
//
// An early refresh is an ordinary fill: it records the versions read
// before it queries, so it is exactly as safe as a miss (C2). The entry
// it replaces was still fresh, so a refresh that fails or is not stored
// costs nothing but the query.

// refreshGateHold is how long a refresh holds the in-process gate of its
// key at most: a refresh whose Miss is never ended (a caller's bug) must
// not stop early refresh of that key forever.
const refreshGateHold = 30 * time.Second

// dueEarly reports whether a hit at now on e should refresh it early.
func (c *Cache) dueEarly(e entry, now time.Time) bool {
	gap, scale, may := c.mayBeDueEarly(e, now)
	if !may {
		return false
	}
	return -scale*math.Log(1-rand.Float64()) >= gap
}

// mayBeDueEarly reports whether dueEarly would draw a number for e: the
// entry is near enough to its expiry to be refreshed early. memHit leaves
// such hits to probe, which draws once (two draws would square the
// probability).
func (c *Cache) mayBeDueEarly(e entry, now time.Time) (gap, scale float64, may bool) {
	beta := c.stamp.beta
	if beta <= 0 || e.delta <= 0 {
		return 0, 0, false
	}
	gap = float64(e.expires - now.UnixNano())
	scale = float64(e.delta) * beta
	// -ln(u) for u = 1 - rand.Float64() in [2^-53, 1] is at most 36.8: a
	// hit this far from expiry never refreshes, and draws no number.
	return gap, scale, gap <= 40*scale
}

// maxRefreshGates is how many gates the refreshing map holds before
// enterRefresh sweeps the expired ones out. A gate held for another
// process's refresh (holdRefresh) is never left by its key, so without the
// sweep every key ever refreshed elsewhere would stay in the map.
const maxRefreshGates = 1024

// enterRefresh takes the in-process refresh gate of key until until; it
// fails while another holder's time has not passed.
func (s *stampede) enterRefresh(key string, until time.Time) bool {
	if s.gates.Load() > maxRefreshGates {
		s.sweepGates()
	}
	for {
		v, loaded := s.refreshing.LoadOrStore(key, until)
		if !loaded {
			s.gates.Add(1)
			return true
		}
		if time.Now().Before(v.(time.Time)) {
			return false
		}
		if s.refreshing.CompareAndSwap(key, v, until) {
			return true
		}
	}
}

// sweepGates deletes the gates whose time has passed.
func (s *stampede) sweepGates() {
	now := time.Now()
	s.refreshing.Range(func(k, v any) bool {
		if !now.Before(v.(time.Time)) && s.refreshing.CompareAndDelete(k, v) {
			s.gates.Add(-1)
		}
		return true
	})
}

// holdRefresh keeps the gate of key, which the caller holds, closed until
// until (another process refreshes it: hits here need not ask for its
// lease again meanwhile).
func (s *stampede) holdRefresh(key string, until time.Time) {
	if _, loaded := s.refreshing.Swap(key, until); !loaded {
		s.gates.Add(1)
	}
}

// leaveRefresh opens the gate of key.
func (s *stampede) leaveRefresh(key string) {
	if _, loaded := s.refreshing.LoadAndDelete(key); loaded {
		s.gates.Add(-1)
	}
}

// beginRefresh decides whether this hit (p, due for early refresh)
// refreshes its entry. ok false: serve the hit (a refresh of the key is
// running in this process or, holding the lease, in another). newer, when
// not nil, is a fresh entry another process stored between our probe and
// our lease: serve it, no refresh. Otherwise l holds the versions to fill
// against and the lease, and the caller holds the gate until it ends the
// refresh (leaveRefresh).
func (c *Cache) beginRefresh(ctx context.Context, k Key, names []string, p probed, valid func([]byte) bool) (l leased, newer []byte, ok bool) {
	if !c.stamp.enterRefresh(k.Name, time.Now().Add(refreshGateHold)) {
		return l, nil, false
	}
	l = leased{tokens: p.tokens, created: p.now}
	if c.stamp.leaser == nil {
		// Another refresh of this process (or of another one sharing the
		// store) may have stored between our probe and the gate: read
		// again, so that a hit that probed the old entry does not refresh
		// it a second time. (A refresh is rare: about once per entry
		// lifetime.)
		raw, cur, err := c.store.Fetch(ctx, k.Name, names)
		if err != nil {
			c.storeFailed(ctx, k.Tables, "querycache: store fetch failed before an early refresh; serving the hit", err, "key", c.label(k))
			c.stamp.leaveRefresh(k.Name)
			return l, nil, false
		}
		at := c.now()
		if newer := c.refreshedMeanwhile(k.Name, raw, p.created, at, cur, valid); newer != nil {
			c.stamp.leaveRefresh(k.Name)
			return l, newer, true
		}
		l.tokens, l.created = cur, at
		return l, nil, true
	}
	token, held, raw, err := c.takeLease(ctx, k)
	if err != nil {
		// The entry is still fresh: serve it, and let it expire if the
		// store keeps failing.
		c.leaseFailed(ctx, err, k)
		c.stamp.leaveRefresh(k.Name)
		return l, nil, false
	}
	if !held {
		c.stamp.holdRefresh(k.Name, time.Now().Add(c.stamp.leaseWait))
		return l, nil, false
	}
	c.leaseHeld(k.Name)
	// Between our probe and the lease another process may have refreshed
	// and released its lease: raw, read after the lease was taken, then
	// holds its entry, and the key is refreshed once, not once more by
	// every hit that probed the old entry.
	if newer := c.refreshedMeanwhile(k.Name, raw, p.created, c.now(), p.tokens, valid); newer != nil {
		c.releaseLease(ctx, k, token)
		c.stamp.leaveRefresh(k.Name)
		return l, newer, true
	}
	l.token = token
	return l, nil, true
}

// refreshedMeanwhile returns the payload of raw if it is an entry other
// than the one we found (created differs: someone refilled it) and fresh
// against tokens at now.
func (c *Cache) refreshedMeanwhile(key string, raw []byte, created int64, now time.Time, tokens []uint64, valid func([]byte) bool) []byte {
	if raw == nil {
		return nil
	}
	e, err := decodeEntryAt(key, raw)
	if err != nil || e.created == created || !e.fresh(now, tokens) || (valid != nil && !valid(e.payload)) {
		return nil
	}
	return e.payload
}

// refreshNow is GetOrSet's early refresh of a hit p. ok false means: serve
// the hit. Otherwise value is a fresh value (hit false: computed now) or
// the entry another process has just refreshed (hit true).
func (c *Cache) refreshNow(ctx context.Context, k Key, names []string, p probed, fill FillFunc) (value []byte, hit, ok bool) {
	l, newer, ok := c.beginRefresh(ctx, k, names, p, nil)
	if !ok {
		return nil, false, false
	}
	if newer != nil {
		return newer, true, true
	}
	defer c.stamp.leaveRefresh(k.Name)
	// Through the flight: a miss of the same key and versions (the entry
	// expired meanwhile for another caller) shares this fill.
	v, err, ran := c.flight.do(ctx, flightKey(k.Name, l.tokens), func(ctx context.Context) (r any, ferr error) {
		defer recoverFill(&ferr)
		c.stats.earlyRefreshes.Add(1)
		return c.runFill(ctx, k, names, l, fill)
	})
	if !ran {
		c.releaseLease(ctx, k, l.token)
	}
	if fp, ok := err.(*fillPanic); ok && ran {
		panic(fp.value) // our own fill's: the callers that joined serve the entry
	}
	if err != nil || !ran && v.(filled).private {
		// The entry we found is still fresh: serve it.
		return nil, false, false
	}
	r := v.(filled)
	return r.value, r.cached, true
}

// refreshLookup is Lookup's early refresh of a hit p: it returns a Miss
// the caller fills, or newer (another process's refreshed entry), or
// neither (serve the hit).
func (c *Cache) refreshLookup(ctx context.Context, k Key, names []string, p probed, opts LookupOptions) (newer []byte, m *Miss) {
	l, newer, ok := c.beginRefresh(ctx, k, names, p, opts.Valid)
	if !ok || newer != nil {
		return newer, nil
	}
	fk := flightKey(k.Name, l.tokens)
	var f *fill
	if opts.Lead {
		if f = c.fills.tryLead(fk); f == nil {
			// A miss of the same versions is being filled here already.
			c.releaseLease(ctx, k, l.token)
			c.stamp.leaveRefresh(k.Name)
			return nil, nil
		}
	}
	c.stats.earlyRefreshes.Add(1)
	c.stats.fills.Add(1)
	m = &Miss{c: c, ctx: ctx, k: k, names: names, tokens: l.tokens, created: l.created, token: l.token, refresh: true, flight: f, fkey: fk, reason: MissEarlyRefresh}
	m.watchUncommitted(opts)
	return nil, m
}
