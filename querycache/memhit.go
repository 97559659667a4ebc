package querycache

import (
	"context"
	"time"
)

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
func (c *Cache) memHit(ctx context.Context, k Key, opts LookupOptions) ([]byte, bool) {
	const maxVersions = 8
	if c.mem == nil || k.Name == "" || len(k.Versions) >= maxVersions || c.isClosed() || c.pending.any() {
		return nil, false
	}
	var buf [maxVersions]uint64
	tokens := buf[:len(k.Versions)+1]
	raw := c.mem.fetchInto(k.Name, c.ns.Epoch(), k.Versions, tokens)
	if raw == nil {
		return nil, false
	}
	e, err := decodeEntryFrom(raw, true)
	if err != nil {
		return nil, false
	}
	now := c.now()
	if !e.fresh(now, tokens) || (opts.Valid != nil && !opts.Valid(e.payload)) || mayDue(c, e, now) {
		return nil, false
	}
	// Counted before the closed check, taken back after it, as in probe.
	c.stats.hits.Add(1)
	if c.isClosed() {
		c.stats.hits.Add(^uint64(0))
		return nil, false
	}
	c.countTables(k.Tables, true)
	if !opts.CallerLogs && c.debugOn(ctx) {
		c.debug(ctx, "querycache hit", "key", k.label())
	}
	return e.payload, true
}

// mayDue reports whether e is within its early-refresh window.
func mayDue(c *Cache, e entry, now time.Time) bool {
	_, _, may := c.mayBeDueEarly(e, now)
	return may
}
