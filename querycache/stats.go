package querycache

import (
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a Cache's counters since it was created.
type Stats struct {
	Hits          uint64 // results served from the cache
	Misses        uint64 // lookups that found no fresh entry
	Fills         uint64 // values computed (database queries run) after a miss
	Stores        uint64 // entries written to the store
	Shared        uint64 // misses that waited for another caller's fill instead of querying
	Invalidations uint64 // changes applied (one per non-empty Invalidate call, delivered or pending)
	Corrupt       uint64 // entries that could not be decoded (served as misses)
	Errors        uint64 // store errors (each one a fallback to the database)
	// Bypasses counts lookups that skipped the cache, by reason
	// ("transaction", "store_error", "undelivered_invalidation", ...).
	Bypasses map[string]uint64
	// Refusals counts results that were not cached, by reason
	// ("locking", "nondeterministic", "undetermined_tables", "too_large", ...).
	Refusals map[string]uint64
	// Tables counts per table read or written.
	Tables map[string]TableStats
	// Pending is the number of versions whose invalidation has not reached
	// the store yet; lookups that depend on them bypass the cache.
	Pending int
}

// TableStats are the counters of one table.
type TableStats struct {
	Hits, Misses, Invalidations uint64
}

type counters struct {
	hits, misses, fills, stores, shared, invalidations, corrupt, errors atomic.Uint64
	bypasses, refusals                                                  reasonCounts
	tables                                                              sync.Map // string -> *tableCounters
}

type tableCounters struct {
	hits, misses, invalidations atomic.Uint64
}

func (c *counters) table(name string) *tableCounters {
	if t, ok := c.tables.Load(name); ok {
		return t.(*tableCounters)
	}
	t, _ := c.tables.LoadOrStore(name, new(tableCounters))
	return t.(*tableCounters)
}

// reasonCounts is a small concurrent map of counters keyed by reason.
type reasonCounts struct{ m sync.Map }

func (r *reasonCounts) add(reason string) {
	if v, ok := r.m.Load(reason); ok {
		v.(*atomic.Uint64).Add(1)
		return
	}
	v, _ := r.m.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

func (r *reasonCounts) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	r.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Hits:          c.stats.hits.Load(),
		Misses:        c.stats.misses.Load(),
		Fills:         c.stats.fills.Load(),
		Stores:        c.stats.stores.Load(),
		Shared:        c.stats.shared.Load(),
		Invalidations: c.stats.invalidations.Load(),
		Corrupt:       c.stats.corrupt.Load(),
		Errors:        c.stats.errors.Load(),
		Bypasses:      c.stats.bypasses.snapshot(),
		Refusals:      c.stats.refusals.snapshot(),
		Tables:        map[string]TableStats{},
		Pending:       c.pending.len(),
	}
	c.stats.tables.Range(func(k, v any) bool {
		t := v.(*tableCounters)
		s.Tables[k.(string)] = TableStats{Hits: t.hits.Load(), Misses: t.misses.Load(), Invalidations: t.invalidations.Load()}
		return true
	})
	return s
}

// CountBypass records that a lookup skipped the cache for reason. Plugins
// call it for bypasses they decide (inside a transaction, say).
func (c *Cache) CountBypass(reason string) { c.stats.bypasses.add(reason) }

// CountRefusal records that a result was not cached for reason. Plugins
// call it for statements they refuse (locking reads, say).
func (c *Cache) CountRefusal(reason string) { c.stats.refusals.add(reason) }
