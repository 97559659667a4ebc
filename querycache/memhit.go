package querycache

import "context"

// memHit serves a plain hit of a MemoryStore without the allocations of the
// general path (the names with the epoch, the tokens the store returns):
// on a hit those are read and dropped. The versions are read through the
// cells the entry holds (versions.go), for a lookup of the same version
// names (their digest) as its fill: one hash-table read per hit, the
// entry's. It reports false, having counted nothing, for anything but a
// fresh, valid entry due for no early refresh: the caller then takes the
// general path (probe), which reads the store again, versions by name, and
// counts what it finds. A second read of process memory is cheap beside
// the database query a miss leads to.
//
// An entry that may be due for an early refresh is left to probe without
// drawing: probe's single draw keeps XFetch's probability (two draws would
// square it).
//
// It decides exactly as probe does: the same closed and pending checks,
// the same versions (the epoch first, then k.Versions: a name's cell is the
// one a bump by name reaches, versions.go), the same freshness.
//
// The entry's Attachment is returned with it.
func (c *Cache) memHit(ctx context.Context, k Key, opts LookupOptions) ([]byte, *Attachment, bool) {
	if c.mem == nil || k.Name == "" || c.isClosed() || c.pending.any() {
		return nil, nil, false
	}
	raw, d := c.mem.entry(k.Name)
	if raw == nil || d == nil || len(d.held) != len(k.Versions)+1 {
		return nil, nil, false
	}
	// The names' digest includes the epoch's name, which is this Cache's:
	// an entry another Cache on the store filled is always digested.
	own := d.stats == &c.stats
	if len(k.Versions) == 0 || !own || d.named.Load() != &k.Versions[0] {
		if d.names != c.mem.versions.namesDigest(c.ns.Epoch(), k.Versions) {
			return nil, nil, false
		}
		if len(k.Versions) > 0 && own {
			d.named.Store(&k.Versions[0])
		}
	}
	// The entry as decoded when it was stored, and its recorded tokens
	// beside their cells: its bytes are not read (only the payload's
	// slice is returned).
	now := c.now()
	if now.UnixNano() >= d.expires {
		return nil, nil, false
	}
	for _, h := range d.held {
		if h.cell.token.Load() != h.token { // 0 once swept: no entry records it
			return nil, nil, false
		}
	}
	e := entry{expires: d.expires, created: d.created, delta: d.delta}
	if _, _, due := c.mayBeDueEarly(e, now); due {
		return nil, nil, false
	}
	if opts.Valid != nil && !(opts.ValidOnce && d.valid.Load()) {
		if !opts.Valid(d.payload) {
			return nil, nil, false
		}
		if opts.ValidOnce {
			d.valid.Store(true)
		}
	}
	var tables []*tableCounters
	if own && sameTables(d.tables, k.Tables) {
		tables = d.tables // the counters of k's tables, found when it was filled
	}
	if !c.countHit(ctx, k, opts, tables) { // closed meanwhile: probe reports it
		return nil, nil, false
	}
	if captures.Load() != 0 {
		c.recordHeld(ctx, k, d)
	}
	return d.payload, &d.attach, true
}

// sameTables reports whether the entry's counters stand for the lookup's
// tables. It compares their number only: a lookup that found the entry
// under its key and versions is the statement that filled it (the key is
// its fingerprint), which reads the same tables; one that named other
// tables, as many, would have its hit counted against the fill's (the
// counts only, never what is served).
func sameTables(counters []*tableCounters, tables []string) bool {
	return len(counters) == len(tables) && len(tables) > 0
}

// recordHeld records a memHit's versions in the context's captures
// (capture.go): the epoch and k.Versions, with the tokens the entry holds.
func (c *Cache) recordHeld(ctx context.Context, k Key, d *memDeps) {
	if captureFrom(ctx) == nil {
		return
	}
	tokens := make([]uint64, len(d.held))
	for i, h := range d.held {
		tokens[i] = h.token
	}
	record(ctx, c.withEpoch(k.Versions), tokens)
}
