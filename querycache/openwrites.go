package querycache

import (
	"hash/crc32"
	"sync"
	"sync/atomic"

	"querycache.dev/keys"
)

// WriteHolder is a transaction that has written and not ended (the GORM
// plugin's), as Cache.HoldWrites knows it.
type WriteHolder interface {
	// Wrote reports whether the transaction has written any of tables
	// (names as keys.Table gives them), or something it cannot
	// attribute to a table.
	Wrote(tables []string) bool
}

// openWrites are the transactions of this process that have written and
// not ended (HoldWrites).
//
// Why: a low-level value computed inside such a transaction (GetOrSet's
// fill reading through it) may count rows that are never committed. The
// invalidation of the transaction's writes is applied at commit, and
// dropped at rollback: the value, stored against the versions current
// before, would then be served to everyone although it shows writes that
// never happened (C3). The order of events it prevents: tx inserts a row;
// GetOrSet's fill counts through tx (n+1) and stores against users' token
// t; tx rolls back (nothing replaced); every reader gets n+1 until the
// next write to users. While a transaction has written a table, values
// depending on it are not stored.
type openWrites struct {
	n  atomic.Int64 // holders: the fast path reads only this
	mu sync.Mutex
	// The holders: a list while they are few, searched by comparing
	// interface words (a map hashed the interface's dynamic type and
	// pointer on every transaction's first write and again at its end,
	// ~800 instructions of a write in a transaction); a map beyond
	// smallHolders, so that thousands of open transactions do not make
	// each hold a long scan.
	list []WriteHolder
	big  map[WriteHolder]struct{}
	// rolledAll and rolledTab count the holders released after a
	// rollback (ReleaseRolledBack): rolledTab by a hash of each table one
	// wrote, rolledAll those whose tables are not known (or that wrote
	// something no table names). A fill can begin and end around a whole
	// transaction: a "what if" preview that inserts, counts through the
	// transaction and rolls back. When the fill ends, no holder is open;
	// the rollback replaced no version; the value, stored against the
	// versions read before the fill, would be served with the count of a
	// row that never existed (TestHostile45RememberWhatIfTxRolledBackInsideFill).
	// So a fill also asks whether a transaction that wrote its tables
	// rolled back while it ran (coversSince). Counters per table, not a
	// list of the holders: any number of rollbacks of other tables while a
	// fill runs leave it alone (TestHostile46RolledBackRingOverflowDisablesUnrelatedFills);
	// two tables that share a bucket only refuse a store needlessly.
	rolledAll atomic.Uint64
	rolledTab [rolledBuckets]atomic.Uint64
}

// rolledBuckets is how many table counters openWrites keeps.
const rolledBuckets = 256

// TablesWriter is a WriteHolder that can list what it wrote: the tables
// (names as keys.Table gives them, or that it normalises to them), and
// all when it wrote something no table names. ReleaseRolledBack counts a
// holder that is not one as having written everything.
type TablesWriter interface {
	WrittenTables() (tables []string, all bool)
}

// rolledBucket is the counter of table t.
func rolledBucket(t string) int {
	if n, err := keys.Table(t); err == nil {
		t = n
	}
	return int(crc32.ChecksumIEEE([]byte(t)) % rolledBuckets)
}

// fillMark is where a fill starts: the rollback counters of its tables.
type fillMark struct {
	all  uint64
	tabs []uint64
}

// smallHolders is how many holders openWrites keeps in a list.
const smallHolders = 32

// HoldWrites records that h, a transaction, has written and not ended.
// Until ReleaseWrites(h), the low-level API stores no value that depends
// on a table h.Wrote reports: GetOrSet and Remember return their fill's
// value without storing it, Set and Add return ErrUncommitted. The GORM
// plugin calls it at a transaction's first write, and ReleaseWrites once
// the transaction has committed and its invalidation is applied, or has
// rolled back. Holding h twice is holding it once.
func (c *Cache) HoldWrites(h WriteHolder) {
	if h == nil {
		return // held, a nil holder made every later store with dependencies panic
	}
	w := &c.open
	w.mu.Lock()
	if w.add(h) {
		w.n.Add(1)
	}
	w.mu.Unlock()
}

// ReleaseWrites ends what HoldWrites(h) started. Releasing h when it is
// not held does nothing.
func (c *Cache) ReleaseWrites(h WriteHolder) {
	w := &c.open
	w.mu.Lock()
	if w.remove(h) {
		w.n.Add(-1)
	}
	w.mu.Unlock()
}

// ReleaseRolledBack is ReleaseWrites for a transaction that rolled back:
// what it wrote never reaches the versions, so a value computed while it
// was open, from its rows, must not be stored once it has gone (see
// openWrites).
func (c *Cache) ReleaseRolledBack(h WriteHolder) {
	w := &c.open
	w.mu.Lock()
	removed := w.remove(h)
	if removed {
		w.n.Add(-1)
	}
	w.mu.Unlock()
	if !removed {
		return
	}
	tw, ok := h.(TablesWriter)
	if !ok {
		w.rolledAll.Add(1)
		return
	}
	tables, all := tw.WrittenTables()
	if all {
		w.rolledAll.Add(1)
	}
	for _, t := range tables {
		w.rolledTab[rolledBucket(t)].Add(1)
	}
}

// mark is where a fill of a value depending on tables starts.
func (w *openWrites) mark(tables []string) fillMark {
	m := fillMark{all: w.rolledAll.Load()}
	if len(tables) > 0 {
		m.tabs = make([]uint64, len(tables))
		for i, t := range tables {
			m.tabs[i] = w.rolledTab[rolledBucket(t)].Load()
		}
	}
	return m
}

// coversSince reports whether a transaction open now, or one rolled back
// since m, has written any of tables (those m was taken for).
func (w *openWrites) coversSince(tables []string, m fillMark) bool {
	if w.covers(tables) {
		return true
	}
	if len(tables) == 0 {
		return false
	}
	if w.rolledAll.Load() != m.all {
		return true
	}
	for i, t := range tables {
		if w.rolledTab[rolledBucket(t)].Load() != m.tabs[i] {
			return true
		}
	}
	return false
}

// add adds h, under mu, and reports whether it was not held.
func (w *openWrites) add(h WriteHolder) bool {
	if w.big != nil {
		if _, ok := w.big[h]; ok {
			return false
		}
		w.big[h] = struct{}{}
		return true
	}
	for _, x := range w.list {
		if x == h {
			return false
		}
	}
	if len(w.list) < smallHolders {
		w.list = append(w.list, h)
		return true
	}
	w.big = make(map[WriteHolder]struct{}, 2*smallHolders)
	for _, x := range w.list {
		w.big[x] = struct{}{}
	}
	w.big[h] = struct{}{}
	w.list = nil
	return true
}

// remove removes h, under mu, and reports whether it was held. The map,
// once made, stays: a process that had that many open transactions at
// once is likely to again.
func (w *openWrites) remove(h WriteHolder) bool {
	if w.big != nil {
		if _, ok := w.big[h]; !ok {
			return false
		}
		delete(w.big, h)
		return true
	}
	for i, x := range w.list {
		if x == h {
			last := len(w.list) - 1
			w.list[i] = w.list[last]
			w.list[last] = nil // the holder is not kept alive by the list
			w.list = w.list[:last]
			return true
		}
	}
	return false
}

// covers reports whether an open transaction has written any of tables.
func (w *openWrites) covers(tables []string) bool {
	if w.n.Load() == 0 || len(tables) == 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range w.list {
		if h.Wrote(tables) {
			return true
		}
	}
	for h := range w.big {
		if h.Wrote(tables) {
			return true
		}
	}
	return false
}
