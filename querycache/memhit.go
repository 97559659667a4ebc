package querycache

import "context"

// memHit serves a plain hit of a MemoryStore without the allocations of the
// general path (the names with the epoch, the tokens the store returns):
// on a hit those are read and dropped. It reports false, having counted
// nothing, for anything but a fresh, valid entry due for no early refresh:
// the caller then takes the general path (probe), which reads the store
// again and counts what it finds. A second read of process memory is cheap
// beside the database query a miss leads to.
//
// An entry that may be due for an early refresh is left to probe without
// drawing: probe's single draw keeps XFetch's probability (two draws would
// square it).
//
// It decides exactly as probe does: the same closed and pending checks,
// the same versions (the epoch first, then k.Versions), the same freshness.
//
// The entry's Attachment is returned with it when the store has one (an
// entry stored by a Cache, putFor).
func (c *Cache) memHit(ctx context.Context, k Key, opts LookupOptions) ([]byte, *Attachment, bool) {
	const maxVersions = 8
	if c.mem == nil || k.Name == "" || len(k.Versions) >= maxVersions || c.isClosed() || c.pending.any() {
		return nil, nil, false
	}
	var buf [maxVersions]uint64
	tokens := buf[:len(k.Versions)+1]
	raw, d := c.mem.fetchInto(k.Name, c.ns.Epoch(), k.Versions, tokens)
	if raw == nil {
		return nil, nil, false
	}
	e, err := decodeEntryFrom(raw, true)
	if err != nil {
		return nil, nil, false
	}
	now := c.now()
	if _, _, due := c.mayBeDueEarly(e, now); due || !e.fresh(now, tokens) || (opts.Valid != nil && !opts.Valid(e.payload)) {
		return nil, nil, false
	}
	var at *Attachment
	var tables []*tableCounters
	if d != nil {
		at = &d.attach
		if d.stats == &c.stats && sameTables(d.tables, k.Tables) {
			tables = d.tables // the counters of k's tables, found when it was filled
		}
	}
	if !c.countHit(ctx, k, opts, tables) { // closed meanwhile: probe reports it
		return nil, nil, false
	}
	return e.payload, at, true
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
