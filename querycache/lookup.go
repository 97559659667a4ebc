package querycache

import (
	"context"
	"sync"
	"time"
)

// LookupOptions says how Lookup treats a miss and a found value.
type LookupOptions struct {
	// Lead makes the miss lead a fill that concurrent lookups of the same
	// key and versions wait for (singleflight). Set it only when the caller
	// ends the miss without waiting for code that could itself look the key
	// up: a caller that streams rows to user code must not lead, or a user
	// who runs the same query while iterating would wait for itself.
	Lead bool
	// Valid, when not nil, checks a found value (its format, say). A value
	// it rejects is counted as corrupt and treated as a miss, so that the
	// fill replaces it.
	Valid func(value []byte) bool
	// ValidOnce says Valid depends on the value's bytes alone and is the
	// same for every lookup of the key: a memory store's entry found valid
	// once is not checked again (reading its bytes costs a hit a cache
	// miss; an entry's bytes never change).
	ValidOnce bool
	// CallerLogs says the caller logs the lookup's outcome itself (the GORM
	// plugin writes one Debug line per statement, with its SQL and reason):
	// the cache writes no "querycache hit" / "querycache miss" line for it.
	CallerLogs bool
	// SeesUncommitted says the caller's query may read rows of a
	// transaction that has not ended (SQLite's read_uncommitted, in
	// shared-cache mode): Miss.Store then stores nothing while a
	// transaction held by HoldWrites has written one of the key's
	// Tables, nor when one that had rolled back while the query ran
	// (counted as the refusal "transaction"). The order of events it
	// prevents: a transaction updates row 1; a lookup on another
	// connection of the same shared cache reads the update and stores it
	// against the versions of before; the transaction rolls back,
	// replacing no version; every later lookup is served the update that
	// never happened.
	SeesUncommitted bool
}

// Lookup is the two-step form of GetOrSet, for callers that cannot compute
// a value inside a function: one that streams rows to its caller as the
// database sends them and stops recording when they grow too large.
//
// When a fresh value is cached under k (every version it recorded is still
// current), or a concurrent fill led by another lookup has just stored one,
// Lookup returns it with ok true. Otherwise it returns a Miss holding the
// versions read now, before the caller queries the database: the caller
// ends it with Miss.Store (the value is stored against those versions, so a
// result read before a write committed is never served after it) or
// Miss.Abandon. The returned bytes may be shared with the store: callers
// must not modify them.
//
// Before returning a Miss, a lookup takes the key's fill lease when the
// store grants them (see GetOrSet): a Miss holding it stores with it, and
// Abandon releases it; a lookup that finds the lease held by another
// process waits up to Options.LeaseWait for its value, and returns it
// with ok true. A hit due for early refresh (see GetOrSet) may return a
// Miss instead, so that its caller refreshes the entry.
//
// A lookup that waits for a fill whose leader stores nothing (the result
// was too large, the query failed, the rows were not read to the end) gets
// a Miss of its own. Store errors are logged and counted, and give a Miss
// that stores nothing (fail open).
func (c *Cache) Lookup(ctx context.Context, k Key, opts LookupOptions) (value []byte, ok bool, m *Miss) {
	value, _, ok, m = c.LookupAttached(ctx, k, opts)
	return value, ok, m
}

// LookupAttached is Lookup that also returns, on a hit, the Attachment of
// the entry it read, when the store keeps one (a MemoryStore's entries
// stored by a fill): what the caller attached there was derived from
// exactly the value returned. It is nil otherwise.
func (c *Cache) LookupAttached(ctx context.Context, k Key, opts LookupOptions) (value []byte, at *Attachment, ok bool, m *Miss) {
	if v, at, ok := c.memHit(ctx, k, opts); ok {
		return v, at, true, nil
	}
	value, ok, m = c.lookup(ctx, k, opts)
	return value, nil, ok, m
}

func (c *Cache) lookup(ctx context.Context, k Key, opts LookupOptions) (value []byte, ok bool, m *Miss) {
	names := c.withEpoch(k.Versions)
	if k.Name == "" {
		// No name, no entry, as in GetOrSet.
		c.stats.bypasses.add("no_key")
		return nil, false, &Miss{c: c, ctx: ctx, k: k, names: names, noStore: true, bypass: "no_key"}
	}
	p := c.probe(ctx, k, names, opts)
	if !p.usable {
		return nil, false, &Miss{c: c, ctx: ctx, k: k, names: names, noStore: true, bypass: p.bypass}
	}
	if p.found {
		if p.early {
			if newer, m := c.refreshLookup(ctx, k, names, p, opts); m != nil {
				return nil, false, m
			} else if newer != nil {
				return newer, true, nil
			}
		}
		return p.payload, true, nil
	}

	// The flight key carries the tokens, as GetOrSet's does: a lookup that
	// read newer versions must not be handed a value read before them.
	fk := flightKey(k.Name, p.tokens)
	f, leader := c.fills.join(fk, opts.Lead)
	if f != nil && !leader {
		select {
		case <-f.done:
			if f.ok {
				c.stats.shared.Add(1)
				return f.value, true, nil
			}
		case <-ctx.Done():
		}
		f = nil // the leader stored nothing: query ourselves, alone
	}
	// This caller will query: across processes, the lease decides whether
	// it does, or waits for another process's value. The lookups that
	// joined f wait meanwhile; a value found ends their wait at once.
	l := c.lease(ctx, k, names, p.tokens, p.now, opts.Valid)
	if l.found {
		c.fills.finish(fk, f, l.value, true)
		return l.value, true, nil
	}
	c.stats.fills.Add(1)
	m = &Miss{c: c, ctx: ctx, k: k, names: names, tokens: l.tokens, created: l.created, token: l.token, flight: f, fkey: fk, reason: p.miss}
	m.watchUncommitted(opts)
	return nil, false, m
}

// watchUncommitted takes, for a lookup whose query may read uncommitted
// rows (LookupOptions.SeesUncommitted), the mark of the transactions
// that wrote its tables, before the query runs.
func (m *Miss) watchUncommitted(opts LookupOptions) {
	if opts.SeesUncommitted {
		m.dirty, m.mark = true, m.c.open.mark(m.k.Tables)
	}
}

// MaxEntryBytes returns the largest value the cache stores, or -1 when
// there is no limit. Callers recording a result stop (and release what
// they recorded) as soon as it grows past this size.
func (c *Cache) MaxEntryBytes() int { return c.maxSize }

// A Miss is a Lookup that found no fresh value. It must be ended exactly
// once, by Store or Abandon; further calls do nothing. It is not safe for
// concurrent use.
type Miss struct {
	c       *Cache
	ctx     context.Context
	k       Key
	names   []string
	tokens  []uint64
	created time.Time
	noStore bool   // the store failed or an invalidation is pending: store nothing
	stored  bool   // Store kept the value (Stored)
	bypass  string // why, when the store was not consulted (Bypass)
	reason  string // why a real miss missed (Reason)
	flight  *fill
	fkey    string
	token   string // the fill lease held for k, if any (lease.go)
	refresh bool   // an early refresh: it holds the key's refresh gate
	ended   bool
	// dirty: the query may read uncommitted rows, and mark is where the
	// transactions that wrote its tables stood before it ran
	// (LookupOptions.SeesUncommitted).
	dirty bool
	mark  fillMark
}

// Bypass reports why the lookup did not use the cache at all ("closed",
// "suspended", "undelivered_invalidation", "store_error",
// "store_unavailable", "no_key"), or "" for a real miss: the caller's query
// then runs on the database and its result is not stored.
func (m *Miss) Bypass() string {
	if m == nil {
		return ""
	}
	return m.bypass
}

// Why a lookup that consulted the store found no fresh value (Miss.Reason).
const (
	// MissAbsent: no entry under the key (never stored, evicted, or
	// expired and already removed by the store).
	MissAbsent = "absent"
	// MissStale: an entry whose recorded versions are no longer current:
	// something it depends on was written (or the epoch was replaced).
	MissStale = "stale"
	// MissExpired: an entry whose TTL ran out.
	MissExpired = "expired"
	// MissCorrupt: an entry that could not be decoded, or whose payload its
	// owner rejected (LookupOptions.Valid); counted in Stats.Corrupt.
	MissCorrupt = "corrupt"
	// MissEarlyRefresh: a fresh entry this caller refreshes before it
	// expires (XFetch), while others go on being served it.
	MissEarlyRefresh = "early_refresh"
)

// Reason reports why the lookup missed: the Bypass reason when the store
// was not consulted, otherwise one of MissAbsent, MissStale, MissExpired,
// MissCorrupt or MissEarlyRefresh.
func (m *Miss) Reason() string {
	if m == nil {
		return ""
	}
	if m.bypass != "" {
		return m.bypass
	}
	return m.reason
}

// Store stores value against the versions read by Lookup, before the
// database was queried, and hands it to the lookups waiting for this fill.
// A value larger than MaxEntryBytes is not stored (and counted).
func (m *Miss) Store(value []byte) {
	if m == nil || m.ended {
		return
	}
	if m.dirty && !m.noStore && m.c.open.coversSince(m.k.Tables, m.mark) {
		// It may show rows of a transaction still open, or rolled back:
		// neither stored nor handed to the lookups that joined.
		m.Abandon("transaction")
		return
	}
	m.ended = true
	c := m.c
	shared := false
	if m.refresh {
		defer c.stamp.leaveRefresh(m.k.Name)
	}
	if !m.noStore {
		m.stored = c.put(m.ctx, m.k, m.names, m.tokens, m.created, Fill{Value: value}, m.token)
		// Waiting lookups read the same tokens; they may share the value
		// unless an invalidation failed meanwhile (then nobody may).
		shared = (c.maxSize <= 0 || len(value) <= c.maxSize) && !c.pending.covers(m.names, c.ns.Epoch())
	}
	c.fills.finish(m.fkey, m.flight, value, shared)
}

// Stored reports whether Store kept the value in the store: false before
// Store, after Abandon, and when the value was refused (too large, an
// invalidation pending, the cache closed) or the store failed.
func (m *Miss) Stored() bool { return m != nil && m.stored }

// Abandon ends the miss without storing anything; a non-empty reason is
// counted as a refusal ("too_large", "unsupported_type", ...). Lookups
// waiting for this fill query the database themselves. The fill lease,
// if the miss holds one, is released (only if it is still this miss's:
// one that expired and was taken over is left to its new holder), so
// that other processes waiting for it fill at their next poll.
func (m *Miss) Abandon(reason string) {
	if m == nil || m.ended {
		return
	}
	m.ended = true
	if reason != "" {
		m.c.stats.refusals.add(reason)
	}
	// Release the lease first: other processes then fill at their next
	// poll instead of waiting for it to expire. (The lookups waiting here
	// query on their own, as before.)
	m.c.releaseLease(m.ctx, m.k, m.token)
	if m.refresh {
		m.c.stamp.leaveRefresh(m.k.Name)
	}
	m.c.fills.finish(m.fkey, m.flight, nil, false)
}

// fills are the fills in progress led by a Lookup, by flight key.
type fills struct {
	mu sync.Mutex
	m  map[string]*fill
}

type fill struct {
	done    chan struct{}
	value   []byte
	ok      bool
	waiters int // lookups that joined, under fills.mu (for tests)
}

// join returns the fill in progress under key, or, when there is none and
// lead is set, a new one that the caller leads.
func (g *fills) join(key string, lead bool) (f *fill, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[key]; f != nil {
		f.waiters++
		return f, false
	}
	if !lead {
		return nil, false
	}
	if g.m == nil {
		g.m = map[string]*fill{}
	}
	f = &fill{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

// tryLead returns a new fill under key that the caller leads, or nil when
// one is already in progress.
func (g *fills) tryLead(key string) *fill {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[key] != nil {
		return nil
	}
	if g.m == nil {
		g.m = map[string]*fill{}
	}
	f := &fill{done: make(chan struct{})}
	g.m[key] = f
	return f
}

// waiting returns how many lookups wait for a fill in progress.
func (g *fills) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, f := range g.m {
		n += f.waiters
	}
	return n
}

// finish ends a led fill (f may be nil) and wakes its waiters.
func (g *fills) finish(key string, f *fill, value []byte, ok bool) {
	if f == nil {
		return
	}
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	g.mu.Unlock()
	f.value, f.ok = value, ok
	close(f.done)
}
