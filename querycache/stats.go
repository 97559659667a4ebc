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
	Errors        uint64 // store errors (each a fallback to the database, an undelivered invalidation, or a failed read of watched versions)

	// LeaseAcquired counts fill leases this cache took in a shared store
	// (a miss, or an early refresh, that will query the database while
	// other processes wait for it).
	LeaseAcquired uint64
	// LeaseWaits counts misses that found another process's lease and
	// waited for its value instead of querying.
	LeaseWaits uint64
	// LeaseWaitHits counts the waits that ended with that value (also
	// counted in Shared): the database query they saved.
	LeaseWaitHits uint64
	// LeaseTimeouts counts the waits that gave up after LeaseWait and
	// queried the database themselves. A wait can also end by taking the
	// lease (the holder finished without storing, or died): counted in
	// LeaseAcquired.
	LeaseTimeouts uint64
	// EarlyRefreshes counts hits that refreshed their entry before it
	// expired (XFetch): each is also a hit and a fill.
	EarlyRefreshes uint64

	// Bypasses counts lookups that skipped the cache, by reason
	// ("transaction", "store_error", "undelivered_invalidation", ...).
	// At most MaxStatsReasons reasons are kept; later ones (and reasons
	// longer than 64 bytes) are counted under OtherStats.
	Bypasses map[string]uint64
	// MissReasons counts the misses (Misses) by why they missed: "absent",
	// "stale", "expired", "corrupt" (see Miss.Reason). Early refreshes are
	// counted in EarlyRefreshes, not here.
	MissReasons map[string]uint64
	// Refusals counts results that were not cached, by reason
	// ("locking", "nondeterministic", "undetermined_tables", "too_large", ...),
	// bounded like Bypasses.
	Refusals map[string]uint64
	// Tables counts per table read or written. At most MaxStatsTables
	// tables are kept, the first ones seen; later tables (and names longer
	// than 128 bytes) are counted together under OtherStats, so that a
	// stream of distinct names (raw SQL, a table per tenant) cannot grow
	// memory without bound.
	Tables map[string]TableStats
	// Pending is the number of versions whose invalidation has not reached
	// the store yet; lookups that depend on them bypass the cache.
	Pending int

	// Evictions counts the entries the store evicted to stay within its
	// size bound, and VersionEvictions the versions (an evicted version
	// invalidates the entries that recorded it). Only stores that count
	// them report them: MemoryStore (MemoryStore.Evictions) and the
	// two-level stores, for their memory level (TieredStats); a Redis or
	// PostgreSQL store alone reports 0 (Redis's own evictions are in its
	// INFO stats).
	Evictions, VersionEvictions uint64
}

// evictionCounter is a Store that counts its evictions (MemoryStore).
type evictionCounter interface {
	Evictions() (entries, versions uint64)
}

// TableStats are the counters of one table.
type TableStats struct {
	// Hits and Misses count the lookups that read the table; Invalidations
	// the changes that wrote it.
	Hits, Misses, Invalidations uint64
	// MissReasons counts the table's misses by why, as Stats.MissReasons
	// does.
	MissReasons TableMissReasons
	// Errors counts the store errors of lookups and fills that read the
	// table and of invalidations that wrote it (each a fallback to the
	// database, or an undelivered invalidation).
	Errors uint64
	// Evictions counts the entries reading the table that the store evicted
	// to stay within its size bound (stores that count evictions: the
	// MemoryStore, for entries this cache filled).
	Evictions uint64
}

// TableMissReasons counts one table's misses by why (see Miss.Reason).
type TableMissReasons struct {
	// The misses by reason: MissAbsent, MissStale, MissExpired and
	// MissCorrupt.
	Absent, Stale, Expired, Corrupt uint64
}

// Map returns the counts by reason name (MissAbsent, MissStale...),
// leaving out reasons with no miss.
func (r TableMissReasons) Map() map[string]uint64 {
	m := map[string]uint64{}
	for name, n := range map[string]uint64{MissAbsent: r.Absent, MissStale: r.Stale, MissExpired: r.Expired, MissCorrupt: r.Corrupt} {
		if n > 0 {
			m[name] = n
		}
	}
	return m
}

// Bounds on the names Stats keeps counters for.
const (
	// MaxStatsTables is how many tables Stats.Tables counts one by one.
	MaxStatsTables = 1024
	// MaxStatsReasons is how many reasons Stats.Bypasses and
	// Stats.Refusals count one by one.
	MaxStatsReasons = 64
	// OtherStats is the name the counts beyond those bounds are kept under.
	OtherStats = "(other)"

	maxStatsTableName = 128
	maxStatsReason    = 64
)

type counters struct {
	hits, misses, fills, stores, shared, invalidations, corrupt, errors     atomic.Uint64
	leaseAcquired, leaseWaits, leaseWaitHits, leaseTimeouts, earlyRefreshes atomic.Uint64
	bypasses, refusals, missReasons                                         reasonCounts
	tables                                                                  boundedMap[tableCounters]
}

type tableCounters struct {
	hits, misses, invalidations, errors, evictions atomic.Uint64
	absent, stale, expired, corrupt                atomic.Uint64
}

// missReason returns the table's counter of misses for reason.
func (t *tableCounters) missReason(reason string) *atomic.Uint64 {
	switch reason {
	case MissAbsent:
		return &t.absent
	case MissStale:
		return &t.stale
	case MissExpired:
		return &t.expired
	case MissCorrupt:
		return &t.corrupt
	}
	return nil
}

func (t *tableCounters) snapshot() TableStats {
	return TableStats{
		Hits: t.hits.Load(), Misses: t.misses.Load(), Invalidations: t.invalidations.Load(),
		Errors: t.errors.Load(), Evictions: t.evictions.Load(),
		MissReasons: TableMissReasons{Absent: t.absent.Load(), Stale: t.stale.Load(), Expired: t.expired.Load(), Corrupt: t.corrupt.Load()},
	}
}

func (c *counters) table(name string) *tableCounters {
	return c.tables.get(name, MaxStatsTables, maxStatsTableName)
}

// boundedMap is a concurrent map of counters that holds at most max names
// (plus OtherStats, which collects the rest). Reads of a known name take
// no lock.
type boundedMap[T any] struct {
	m    sync.Map // string -> *T
	full atomic.Bool
	mu   sync.Mutex
	n    int
}

func (b *boundedMap[T]) get(name string, max, maxLen int) *T {
	if v, ok := b.m.Load(name); ok {
		return v.(*T)
	}
	if len(name) > maxLen || b.full.Load() {
		return b.other()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.m.Load(name); ok {
		return v.(*T)
	}
	if b.n >= max {
		b.full.Store(true)
		return b.other()
	}
	v := new(T)
	b.m.Store(name, v)
	b.n++
	return v
}

func (b *boundedMap[T]) other() *T {
	if v, ok := b.m.Load(OtherStats); ok {
		return v.(*T)
	}
	v, _ := b.m.LoadOrStore(OtherStats, new(T))
	return v.(*T)
}

func (b *boundedMap[T]) each(f func(name string, v *T)) {
	b.m.Range(func(k, v any) bool {
		f(k.(string), v.(*T))
		return true
	})
}

// reasonCounts counts by reason, bounded like the tables.
type reasonCounts struct{ m boundedMap[atomic.Uint64] }

func (r *reasonCounts) add(reason string) {
	r.m.get(reason, MaxStatsReasons, maxStatsReason).Add(1)
}

func (r *reasonCounts) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	r.m.each(func(name string, v *atomic.Uint64) { out[name] = v.Load() })
	return out
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Hits:           c.stats.hits.Load(),
		Misses:         c.stats.misses.Load(),
		Fills:          c.stats.fills.Load(),
		Stores:         c.stats.stores.Load(),
		Shared:         c.stats.shared.Load(),
		Invalidations:  c.stats.invalidations.Load() + c.recent.total(), // the ring counts the changes applied while open
		Corrupt:        c.stats.corrupt.Load(),
		Errors:         c.stats.errors.Load(),
		LeaseAcquired:  c.stats.leaseAcquired.Load(),
		LeaseWaits:     c.stats.leaseWaits.Load(),
		LeaseWaitHits:  c.stats.leaseWaitHits.Load(),
		LeaseTimeouts:  c.stats.leaseTimeouts.Load(),
		EarlyRefreshes: c.stats.earlyRefreshes.Load(),
		Bypasses:       c.stats.bypasses.snapshot(),
		MissReasons:    c.stats.missReasons.snapshot(),
		Refusals:       c.stats.refusals.snapshot(),
		Tables:         map[string]TableStats{},
		Pending:        c.pending.len(),
	}
	c.stats.tables.each(func(name string, t *tableCounters) {
		s.Tables[name] = t.snapshot()
	})
	if ec, ok := c.store.(evictionCounter); ok {
		s.Evictions, s.VersionEvictions = ec.Evictions()
	}
	return s
}

// CountBypass records that a lookup skipped the cache for reason. Plugins
// call it for bypasses they decide (inside a transaction, say).
func (c *Cache) CountBypass(reason string) { c.stats.bypasses.add(reason) }

// CountRefusal records that a result was not cached for reason. Plugins
// call it for statements they refuse (locking reads, say).
func (c *Cache) CountRefusal(reason string) { c.stats.refusals.add(reason) }
