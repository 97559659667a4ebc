package querycache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Key says where a value is cached and what it depends on.
type Key struct {
	// Name is the store key (see package keys). Required.
	Name string
	// Versions are the version names the value depends on. The global epoch
	// is added by the cache.
	Versions []string
	// Tables are the tables the value reads, for per-table statistics.
	Tables []string
	// TTL is how long the entry lives; 0 means the cache's DefaultTTL. A
	// negative TTL is an error of GetOrSet and Set (it became the default
	// without a word); a Lookup's Miss stores nothing with one.
	TTL time.Duration
	// Label names the key in logs; empty means Name.
	Label string
}

// Fill is what a FillFunc computed.
type Fill struct {
	// Value is returned to the caller and, unless NoStore is set, cached.
	Value []byte
	// NoStore, when not empty, is the reason Value must not be cached; it is
	// counted as a refusal.
	NoStore string
}

// FillFunc computes a value after a miss, typically by querying the
// database.
type FillFunc func(ctx context.Context) (Fill, error)

// GetOrSet returns the value cached under k if every version it recorded is
// still current; otherwise it calls fill, stores the result against the
// versions read before fill ran, and returns it. Concurrent misses of one
// key with the same versions share one fill call; a failed fill is never
// shared as a result: callers that joined it run their own.
//
// Across processes sharing a store that grants fill leases (Leaser,
// Options.Lease), the caller that fills takes the key's lease first; a
// caller that finds it held by another process waits up to
// Options.LeaseWait for that process's value instead of querying. A hit
// on an entry close to its expiry may refresh it early (XFetch,
// Options.EarlyRefreshBeta): that caller fills and gets the fresh value
// (hit false), while the others keep being served the entry.
//
// If the store fails, GetOrSet logs and counts the error and returns what
// fill computes (fail open). hit reports whether the value came from the
// cache. The returned bytes may be shared with the store: callers must not
// modify them.
func (c *Cache) GetOrSet(ctx context.Context, k Key, fill FillFunc) (value []byte, hit bool, err error) {
	if fill == nil {
		fill = nilFill // a hit needs none; a miss returns errNilFill
	}
	if k.TTL < 0 {
		return nil, false, negativeTTL("querycache.GetOrSet", k.TTL)
	}
	if k.Name == "" {
		// No name, no entry: the store reads "" as "no entry wanted".
		c.stats.bypasses.add("no_key")
		f, err := fill(ctx)
		return f.Value, false, err
	}
	if v, _, ok := c.memHit(ctx, k, LookupOptions{}); ok {
		return v, true, nil
	}
	names := c.withEpoch(k.Versions)
	p := c.probe(ctx, k, names, LookupOptions{})
	if !p.usable {
		f, err := fill(ctx)
		return f.Value, false, err
	}
	if p.found {
		if p.early {
			if v, hit, ok := c.refreshNow(ctx, k, names, p, fill); ok {
				return v, hit, nil
			}
		}
		return p.payload, true, nil
	}

	// The flight key carries the tokens: a caller that read newer versions
	// (after a write committed) must not be handed a value computed before.
	flightKey := flightKey(k.Name, p.tokens)
	v, err, leader := c.flight.do(ctx, flightKey, func(ctx context.Context) (r any, ferr error) {
		defer recoverFill(&ferr)
		// Only the leader asks for the lease: the callers that joined it
		// wait here, in process, and one request per process reaches the
		// store.
		l := c.lease(ctx, k, names, p.tokens, p.now, nil)
		if l.found {
			return filled{value: l.value, cached: true}, nil
		}
		return c.runFill(ctx, k, names, l, fill)
	})
	if err == nil && !leader && v.(filled).private {
		// The leader's value was not to be stored (Fill.NoStore: read
		// inside a transaction, say): not ours to be handed either.
		err = errNotShared
	}
	if fp, ok := err.(*fillPanic); ok && leader {
		panic(fp.value) // ours alone: the callers that joined fill their own
	}
	if err != nil && !leader && ctx.Err() != nil {
		return nil, false, ctx.Err() // we stopped waiting: our caller has gone
	}
	if err != nil && !leader {
		// Another caller's fill failed (its context may have been
		// cancelled, or it panicked): compute our own rather than share
		// its failure.
		c.stats.fills.Add(1)
		f, err := fill(ctx)
		if err == nil {
			c.put(ctx, k, names, p.tokens, p.now, f, "")
		}
		return f.Value, false, err
	}
	if err != nil {
		return nil, false, err
	}
	if !leader {
		c.stats.shared.Add(1)
	}
	r := v.(filled)
	return r.value, r.cached, nil
}

// filled is what a GetOrSet flight hands its callers: a value computed by
// the leader's fill, or (cached) one another process stored while the
// leader waited for its lease.
type filled struct {
	value  []byte
	cached bool
	// private: the fill said NoStore; only its own caller gets it
	// (TestHostile49EngineCacheGetOrSetSharesNoStoreFill).
	private bool
}

// runFill calls fill and stores its result against l's versions, with
// l's lease when it holds one. A failed (or panicking) fill releases the
// lease, so that other processes stop waiting for it.
func (c *Cache) runFill(ctx context.Context, k Key, names []string, l leased, fill FillFunc) (r filled, err error) {
	done := false
	defer func() {
		if !done {
			c.releaseLease(ctx, k, l.token)
		}
	}()
	c.stats.fills.Add(1)
	f, err := fill(ctx)
	if err != nil {
		return r, err
	}
	done = true
	c.put(ctx, k, names, l.tokens, l.created, f, l.token)
	return filled{value: f.Value, private: f.NoStore != ""}, nil
}

// probed is what probe found.
type probed struct {
	// usable is false when the cache must not be used for the key at all
	// (an undelivered invalidation covers it, or the store failed): the
	// caller goes to the database and stores nothing.
	usable bool
	// bypass says why the cache was not used when usable is false (the
	// reason counted in Stats.Bypasses), for the caller's own report.
	bypass string
	// found reports a fresh entry, whose payload is returned.
	found bool
	// miss says why a usable probe found no fresh entry (Miss.Reason).
	miss    string
	payload []byte
	// early reports that a found entry is due for early refresh
	// (xfetch.go); created is its creation time, to recognise it.
	early   bool
	created int64
	// tokens are the versions read now, before the caller queries the
	// database, at now.
	tokens []uint64
	now    time.Time
}

// probe reads k's entry and the versions in names in one store call, and
// counts what it found. opts.Valid, when not nil, rejects a payload its
// owner cannot read (counted as corrupt, a miss); opts.CallerLogs drops
// the hit/miss Debug line.
func (c *Cache) probe(ctx context.Context, k Key, names []string, opts LookupOptions) (p probed) {
	if c.isClosed() {
		c.closedLookup() // a closed cache never serves (misconfig.go)
		p.bypass = "closed"
		Untracked(ctx, p.bypass)
		return p
	}
	if c.pending.covers(names, c.ns.Epoch()) {
		p.bypass = "undelivered_invalidation"
		if c.pending.holding(names, c.ns.Epoch()) {
			p.bypass = "suspended"
		}
		c.stats.bypasses.add(p.bypass)
		Untracked(ctx, p.bypass)
		return p
	}
	raw, tokens, err := c.store.Fetch(ctx, k.Name, names)
	if err != nil {
		p.bypass = c.storeFailed(ctx, k.Tables, "querycache: store fetch failed; querying the database", err, "key", c.label(k))
		c.stats.bypasses.add(p.bypass)
		Untracked(ctx, p.bypass)
		return p
	}
	// What is served or filled now depends on these tokens (capture.go).
	record(ctx, names, tokens)
	p.usable, p.tokens, p.now = true, tokens, c.now()
	p.miss = MissAbsent
	if raw != nil {
		e, derr := decodeEntryFrom(k.Name, raw, c.mem != nil) // bytes only this process wrote
		switch {
		case derr != nil:
			p.miss = MissCorrupt
			c.stats.corrupt.Add(1)
			c.warn(ctx, "querycache: corrupt entry; treating it as a miss", derr, "key", c.label(k))
		case !e.fresh(p.now, tokens):
			p.miss = e.staleness(p.now)
		case opts.Valid != nil && !opts.Valid(e.payload):
			p.miss = MissCorrupt
			c.stats.corrupt.Add(1)
			c.warn(ctx, "querycache: a value its owner cannot read; treating it as a miss", errCorruptEntry, "key", c.label(k))
		default:
			if !c.countHit(ctx, k, opts, nil) { // Close ran during the fetch: a closed cache never serves
				c.closedLookup()
				p.usable, p.bypass = false, "closed"
				return p
			}
			p.found, p.payload = true, e.payload
			p.early, p.created = c.dueEarly(e, p.now), e.created
			return p
		}
	}
	c.countTableMisses(k.Tables, p.miss)
	c.stats.misses.Add(1)
	c.stats.missReasons.add(p.miss)
	if !opts.CallerLogs && c.debugOn(ctx) {
		c.debug(ctx, "querycache miss", "key", c.label(k), "reason", p.miss)
	}
	return p
}

// countHit counts a hit of k about to be served, and reports false (having
// counted nothing) when the cache was closed meanwhile: the hit is counted
// before the closed check and taken back after it, so a hit either counts
// before Close sets the flag, or is not served.
//
// tables, when not nil, are the counters of k.Tables (memHit has them).
func (c *Cache) countHit(ctx context.Context, k Key, opts LookupOptions, tables []*tableCounters) bool {
	c.stats.hits.Add(1)
	if c.isClosed() {
		c.stats.hits.Add(^uint64(0))
		return false
	}
	if tables != nil {
		for _, t := range tables {
			t.hits.Add(1)
		}
	} else {
		c.countTableHits(k.Tables)
	}
	if !opts.CallerLogs && c.debugOn(ctx) { // the arguments allocate: not when Debug is off
		c.debug(ctx, "querycache hit", "key", c.label(k))
	}
	return true
}

// put stores f under k against tokens, the values of names read at
// created, before f was computed; the time since created is recorded as
// the fill's duration (for early refresh). token, when not empty, is the
// fill lease held for k: the entry is stored with PutLeased (or, if
// nothing is stored, the lease released).
func (c *Cache) put(ctx context.Context, k Key, names []string, tokens []uint64, created time.Time, f Fill, token string) (stored bool) {
	refuse := func(reason string) {
		c.releaseLease(ctx, k, token)
		if reason != "" {
			c.stats.refusals.add(reason)
		}
	}
	if f.NoStore != "" {
		refuse(f.NoStore)
		return false
	}
	if k.TTL < 0 {
		refuse("negative_ttl") // a Lookup's Miss: GetOrSet and Set refuse it earlier
		return false
	}
	if c.isClosed() {
		refuse("closed") // filled while Close ran: its store is closed
		return false
	}
	if c.maxSize > 0 && len(f.Value) > c.maxSize {
		refuse("too_large")
		return false
	}
	if len(tokens) > maxEntryDeps {
		// The envelope could not be decoded: it would be a miss forever.
		refuse("too_many_versions")
		return false
	}
	if c.pending.covers(names, c.ns.Epoch()) {
		// An invalidation failed while we filled; our tokens may be stale.
		// A refusal: the lookup did use the cache (its miss is counted),
		// only its value is not kept.
		refuse("undelivered_invalidation")
		return false
	}
	ttl := k.TTL
	if ttl <= 0 {
		ttl = c.ttl
	}
	// As the KV API's: a TTL of centuries ("forever") put the expiry past
	// 2262, where UnixNano is undefined, and the entry never hit.
	ttl = min(ttl, maxKVTTL)
	raw := encodeEntry(entry{
		key:     k.Name,
		expires: created.Add(ttl).UnixNano(),
		created: created.UnixNano(),
		delta:   int64(c.now().Sub(created)),
		tokens:  tokens,
		payload: f.Value,
	})
	var err error
	switch vp, ok := c.store.(versionedPutter); {
	case token != "":
		err = c.stamp.leaser.PutLeased(ctx, k.Name, raw, ttl, names, token)
		c.stamp.drop(k.Name)
		if errors.Is(err, ErrLeaseLost) {
			// A newer fill superseded ours (we stalled past the lease):
			// keep its result.
			c.stats.refusals.add("lease_lost")
			return false
		}
		if err != nil && ctx.Err() != nil {
			// Our caller gave up before the store answered: release the
			// lease anyway (a no-op if the script ran), so that other
			// processes need not wait for it to expire.
			_ = c.stamp.leaser.ReleaseLease(context.WithoutCancel(ctx), k.Name, token)
		}
	case c.mem != nil:
		err = c.mem.putFor(k.Name, raw, ttl, names, tokens, &c.stats, c.tableCounters(k.Tables))
	case ok:
		err = vp.PutFor(ctx, k.Name, raw, ttl, names)
	default:
		err = c.store.Put(ctx, k.Name, raw, ttl)
	}
	if err != nil {
		c.storeFailed(ctx, k.Tables, "querycache: store put failed", err, "key", c.label(k))
		return false
	}
	c.stats.stores.Add(1)
	return true
}

// Get returns the value cached under k if it is fresh. The bytes may be
// shared with the store: callers must not modify them.
func (c *Cache) Get(ctx context.Context, k Key) (value []byte, ok bool, err error) {
	if c.isClosed() {
		return nil, false, ErrClosed
	}
	if k.Name == "" {
		return nil, false, nil
	}
	names := c.withEpoch(k.Versions)
	if c.pending.covers(names, c.ns.Epoch()) {
		return nil, false, nil
	}
	raw, tokens, err := c.store.Fetch(ctx, k.Name, names)
	if err != nil || raw == nil {
		return nil, false, err
	}
	e, err := decodeEntryAt(k.Name, raw)
	if err != nil {
		c.stats.corrupt.Add(1)
		return nil, false, nil
	}
	if !e.fresh(c.now(), tokens) {
		return nil, false, nil
	}
	record(ctx, names, tokens)
	return e.payload, true, nil
}

// Peek is a lookup that never fills, for a caller that may read the cache
// but must not fill it (the GORM plugin inside a transaction,
// ReadsInTransactions): a fresh value is returned and counted as a hit
// the way Lookup counts one (Stats.Hits, the tables' hits, the hit Debug
// line unless opts.CallerLogs), where Get counts nothing, so that the
// hits served in transactions reach Stats, the scrape and the debug page
// (TestHostile50ObsTxHitsNotCounted). A value opts.Valid rejects is
// counted as corrupt and not returned. Nothing else is counted: no
// fill follows, and the caller counts its miss as what it reports (the
// plugin's "transaction_miss" bypass). Errors are Get's; a cache closed
// meanwhile returns ErrClosed.
func (c *Cache) Peek(ctx context.Context, k Key, opts LookupOptions) (value []byte, ok bool, err error) {
	if v, _, ok := c.memHit(ctx, k, opts); ok { // counted there
		return v, true, nil
	}
	v, ok, err := c.Get(ctx, k)
	if err != nil || !ok {
		return nil, false, err
	}
	if opts.Valid != nil && !opts.Valid(v) {
		c.stats.corrupt.Add(1)
		return nil, false, nil
	}
	if !c.countHit(ctx, k, opts, nil) { // Close ran meanwhile: not served
		return nil, false, ErrClosed
	}
	return v, true, nil
}

// Set stores value under k against the versions current now. Prefer
// GetOrSet: a value computed before a write committed and stored by Set
// after it would be served (Set cannot know when value was read).
func (c *Cache) Set(ctx context.Context, k Key, value []byte) error {
	if k.Name == "" {
		return errors.New("querycache.Set: Key.Name is empty")
	}
	if k.TTL < 0 {
		return negativeTTL("querycache.Set", k.TTL)
	}
	if c.isClosed() {
		return ErrClosed
	}
	names := c.withEpoch(k.Versions)
	_, tokens, err := c.store.Fetch(ctx, "", names)
	if err != nil {
		return err
	}
	c.put(ctx, k, names, tokens, c.now(), Fill{Value: value}, "")
	return nil
}

func (c *Cache) withEpoch(versions []string) []string {
	names := make([]string, 0, len(versions)+1)
	names = append(names, c.ns.Epoch())
	return append(names, versions...)
}

func flightKey(name string, tokens []uint64) string {
	b := make([]byte, 0, len(name)+1+8*len(tokens))
	b = append(b, name...)
	b = append(b, 0)
	for _, t := range tokens {
		b = binary.BigEndian.AppendUint64(b, t)
	}
	return string(b)
}

// countTableHits counts a hit of each table.
func (c *Cache) countTableHits(tables []string) {
	for _, t := range tables {
		c.stats.table(t).hits.Add(1)
	}
}

// countTableMisses counts a miss of each table, with its reason.
func (c *Cache) countTableMisses(tables []string, reason string) {
	for _, t := range tables {
		tc := c.stats.table(t)
		tc.misses.Add(1)
		if r := tc.missReason(reason); r != nil {
			r.Add(1)
		}
	}
}

// countTableErrors counts a store error against each table.
func (c *Cache) countTableErrors(tables []string) {
	for _, t := range tables {
		c.stats.table(t).errors.Add(1)
	}
}

// tableCounters returns the counters of tables, for a MemoryStore entry to
// count its eviction against.
func (c *Cache) tableCounters(tables []string) []*tableCounters {
	if len(tables) == 0 {
		return nil
	}
	out := make([]*tableCounters, len(tables))
	for i, t := range tables {
		out[i] = c.stats.table(t)
	}
	return out
}

// negativeTTL is fn's error for a Key with a negative TTL.
func negativeTTL(fn string, ttl time.Duration) error {
	return fmt.Errorf("%s: Key.TTL is %v; use a positive duration, or 0 for the cache's DefaultTTL", fn, ttl)
}

// errNilFill is GetOrSet's error for a nil fill function, which panicked
// in the caller's request.
var errNilFill = errors.New("querycache: the fill function is nil; pass the function that computes the value")

// nilFill stands for a nil fill function: it fails the miss that would
// have called it.
func nilFill(context.Context) (Fill, error) { return Fill{}, errNilFill }

// nilBytesFill is nilFill for the KV API.
func nilBytesFill(context.Context) ([]byte, error) { return nil, errNilFill }

// versionedPutter is a store that keeps the versions an entry records
// alive at least as long as the entry (RedisStore).
type versionedPutter interface {
	PutFor(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string) error
}

// storeFailed counts and logs a failed store call, and returns the reason
// a lookup that failed so bypasses the cache; the caller counts that
// bypass, only where the lookup is one: a failed put, or a failed fetch
// after a hit or a miss, leaves its lookup what it was (counting a bypass
// there made Stats count one statement twice, against the event the
// plugin reports: TestCollectorFailedStoreIsAMissWithoutBytes). A store bypassed by its
// circuit breaker is not logged: the store logs the opening once.
func (c *Cache) storeFailed(ctx context.Context, tables []string, msg string, err error, args ...any) (reason string) {
	if errors.Is(err, ErrStoreUnavailable) {
		return "store_unavailable"
	}
	if errors.Is(err, ErrTooLargeForStore) {
		c.tooLargeForStore(ctx, err, args...) // a refusal, not a store error (misconfig.go)
		return "too_large_for_store"
	}
	c.stats.errors.Add(1)
	c.countTableErrors(tables)
	c.warn(ctx, msg, err, args...)
	return "store_error"
}
