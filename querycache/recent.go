package querycache

import (
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// RecentInvalidationsKept is how many invalidations RecentInvalidations
// remembers: the newest ones, in a fixed-size ring.
const RecentInvalidationsKept = 128

// maxCause bounds a change's Cause once merged with others (a transaction
// of many different writes): beyond it the causes are cut with "; ...".
const maxCause = 200

// InvalidationRecord is one change the cache applied (Invalidate,
// InvalidateTables, InvalidateObject, InvalidateAll), as
// RecentInvalidations reports it. It never holds primary keys or other
// values: only table names, how many rows, and the cause the writer gave.
type InvalidationRecord struct {
	// Time is when the cache applied the change (after the store took
	// it, or failed to).
	Time time.Time
	// Cause is Change.Cause: what made the writer invalidate ("gorm
	// update", "raw SQL: UPDATE", "listener: outside write", "manual
	// InvalidateTables", ...). Empty when the writer said nothing.
	Cause string
	// Tables are the tables the change touches (normalised), rows' tables
	// included.
	Tables []string
	// Rows is how many rows the change named by primary key (0 when it
	// replaced whole tables).
	Rows int
	// All is set when the change replaced the global epoch: every entry.
	All bool
	// Versions is how many version names the change replaced.
	Versions int
	// Pending is set while some of the change's versions have not reached
	// the store (the store failed when it was applied, and the retry has
	// not delivered them yet): lookups depending on them bypass the cache.
	Pending bool
	// Retried is set when the change was not delivered at once: it is
	// delivered (Pending false) or still pending (Pending true).
	Retried bool
	// Error is why the first delivery failed, when it did.
	Error string
}

// recentRing keeps the newest invalidations. Recording one takes the
// mutex and writes one compact slot: no allocation (the tables slice is
// the one apply has already built), and on the write path no more memory
// than it must touch (a slot of the whole record spanned three cache
// lines, cold after the database's statement; this one spans one or two).
type recentRing struct {
	mu   sync.Mutex
	next uint64 // total recorded; the slot of the next one is next % len
	// base is when the ring started, by the cache's clock. A slot keeps
	// its record's time as an offset from it, read from the monotonic
	// clock alone under the default clock (time.Now reads the wall clock
	// too): a record's Time is base plus that offset, so a wall clock
	// set back or forward later does not move the records.
	base time.Time
	// clock is the cache's clock when it is not the default (Options.Now,
	// tests' fake clocks): offsets are read from it instead.
	clock func() time.Time
	slots [RecentInvalidationsKept]recentSlot
}

type recentSlot struct {
	at       time.Duration // since base
	cause    string
	tables   []string
	rows     int
	versions int32 // saturated: a record says "at least" past 2^31-1
	all      bool
	// failed is the rest of a record whose change was not delivered at
	// once (rare): its error, and the version names to tell at read time
	// whether they are still pending.
	failed *recentFailure
}

type recentFailure struct {
	err   string
	names []string
}

// start sets the ring's base and clock (nil: the default clock).
func (r *recentRing) start(clock func() time.Time) {
	r.clock = clock
	if clock == nil {
		r.base = time.Now()
	} else {
		r.base = clock()
	}
}

func (r *recentRing) add(rec InvalidationRecord, names []string) {
	var fail *recentFailure
	if rec.Retried {
		fail = &recentFailure{err: rec.Error, names: names}
	}
	r.put(rec.Cause, rec.Tables, rec.Rows, rec.Versions, rec.All, fail)
}

// put is add of the record's parts: a change delivered at once, the
// commonest, passes no InvalidationRecord (fifteen words, copied on every
// write).
func (r *recentRing) put(cause string, tables []string, rows, versions int, all bool, fail *recentFailure) {
	r.mu.Lock()
	// The time is read under the lock: the ring is in time order.
	var at time.Duration
	if r.clock == nil {
		at = time.Since(r.base) // the monotonic clock alone
	} else {
		at = r.clock().Sub(r.base)
	}
	s := &r.slots[r.next%RecentInvalidationsKept]
	*s = recentSlot{at: at, cause: cause, tables: tables, rows: rows,
		versions: int32(min(versions, math.MaxInt32)), all: all, failed: fail}
	r.next++
	r.mu.Unlock()
}

// total is how many records the ring took: every change the cache applied
// while open (Stats.Invalidations).
func (r *recentRing) total() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// record is the InvalidationRecord of slot s.
func (r *recentRing) record(s *recentSlot) InvalidationRecord {
	rec := InvalidationRecord{Time: r.base.Add(s.at), Cause: s.cause, Tables: s.tables, Rows: s.rows, All: s.all, Versions: int(s.versions)}
	if s.failed != nil {
		rec.Pending, rec.Retried, rec.Error = true, true, s.failed.err
	}
	return rec
}

// RecentInvalidations returns the newest changes the cache applied, up to
// RecentInvalidationsKept, newest first, with the cause each writer gave
// and whether it still waits for delivery to the store. It is for
// diagnostics (the debug page): it copies the ring under a lock.
func (c *Cache) RecentInvalidations() []InvalidationRecord {
	c.recent.mu.Lock()
	n := c.recent.next
	k := n
	if k > RecentInvalidationsKept {
		k = RecentInvalidationsKept
	}
	out := make([]InvalidationRecord, 0, k)
	var names [][]string
	for i := uint64(0); i < k; i++ {
		s := &c.recent.slots[(n-1-i)%RecentInvalidationsKept]
		rec := c.recent.record(s)
		// A copy: the ring's list of one table is shared with the
		// version memo and with other records (versionmemo.go).
		rec.Tables = append([]string(nil), rec.Tables...)
		out = append(out, rec)
		if s.failed != nil {
			if names == nil {
				names = make([][]string, k)
			}
			names[i] = s.failed.names
		}
	}
	c.recent.mu.Unlock()
	// Still pending? Asked outside the ring's lock: the pending set has
	// its own.
	for i := range out {
		if names != nil && names[i] != nil {
			out[i].Pending = c.pending.coversPending(names[i], c.ns.Epoch())
		}
	}
	return out
}

// PendingInvalidations returns the version names whose invalidation has not
// reached the store yet, sorted (Stats.Pending counts them): every lookup
// depending on one bypasses the cache until the background retry delivers
// it. Versions held by Suspend (a watcher of outside writes that cannot
// see them) are not listed. An object version's name ends with the row's
// primary key (keys.Namespace.ObjectVersion): do not show these names to
// whoever may not see the keys.
func (c *Cache) PendingInvalidations() []string {
	if c.pending.n.Load() == 0 {
		return nil
	}
	c.pending.mu.Lock()
	out := make([]string, 0, len(c.pending.names))
	for n := range c.pending.names {
		out = append(out, n)
	}
	c.pending.mu.Unlock()
	sort.Strings(out)
	return out
}

// HeldInvalidations returns how many version names are held by Suspend
// (a watcher of outside writes that cannot see them: lookups depending on
// them bypass the cache until it sees the database again).
func (c *Cache) HeldInvalidations() int {
	if c.pending.n.Load() == 0 {
		return 0
	}
	c.pending.mu.Lock()
	defer c.pending.mu.Unlock()
	return len(c.pending.held)
}

// coversPending reports whether any of names, or the epoch, is pending
// delivery (not counting versions only held).
func (p *pendingSet) coversPending(names []string, epoch string) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.names[epoch]; ok {
		return true
	}
	for _, n := range names {
		if _, ok := p.names[n]; ok {
			return true
		}
	}
	return false
}

// mergeCause joins two changes' causes, without repeating one, bounded by
// maxCause. Same or empty causes cost nothing.
func mergeCause(a, b string) string {
	switch {
	case b == "" || a == b:
		return a
	case a == "":
		return b
	case strings.HasSuffix(a, "; ..."):
		return a
	}
	// Already listed (a transaction of many updates)?
	for rest := a; rest != ""; {
		part, tail, _ := strings.Cut(rest, "; ")
		if part == b {
			return a
		}
		rest = tail
	}
	if len(a)+2+len(b) > maxCause {
		return a + "; ..."
	}
	return a + "; " + b
}

// truncateCause bounds a text kept in the ring.
func truncateCause(s string) string {
	if len(s) <= maxCause {
		return s
	}
	return strings.ToValidUTF8(s[:maxCause], "") + "..."
}
