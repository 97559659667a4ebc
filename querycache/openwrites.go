package querycache

import (
	"sync"
	"sync/atomic"
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
	// rolled counts the holders released after a rollback
	// (ReleaseRolledBack); recent keeps the newest of them, by that count.
	// A fill can begin and end around a whole transaction: a "what if"
	// preview that inserts, counts through the transaction and rolls
	// back. When the fill ends, no holder is open; the rollback replaced
	// no version; the value, stored against the versions read before the
	// fill, would be served with the count of a row that never existed
	// (TestHostile45RememberWhatIfTxRolledBackInsideFill). So a fill also
	// asks whether a transaction that wrote its tables rolled back while
	// it ran (coversSince).
	rolled atomic.Uint64
	recent [rolledKept]rolledHolder
}

// rolledKept is how many rolled-back holders openWrites remembers: a fill
// during which more rolled back stores nothing.
const rolledKept = 64

type rolledHolder struct {
	seq uint64
	h   WriteHolder
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
// openWrites). h.Wrote must still answer for what it wrote.
func (c *Cache) ReleaseRolledBack(h WriteHolder) {
	w := &c.open
	w.mu.Lock()
	if w.remove(h) {
		w.n.Add(-1)
		seq := w.rolled.Load() + 1
		w.recent[seq%rolledKept] = rolledHolder{seq: seq, h: h}
		w.rolled.Store(seq)
	}
	w.mu.Unlock()
}

// mark is where a fill starts: the count of rolled-back holders.
func (w *openWrites) mark() uint64 { return w.rolled.Load() }

// coversSince reports whether a transaction open now, or one rolled back
// since mark, has written any of tables.
func (w *openWrites) coversSince(tables []string, mark uint64) bool {
	if w.covers(tables) {
		return true
	}
	now := w.rolled.Load()
	if now == mark || len(tables) == 0 {
		return false
	}
	if now-mark > rolledKept {
		return true // forgotten: assume they did
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for s := mark + 1; s <= now; s++ {
		r := w.recent[s%rolledKept]
		if r.seq != s || r.h.Wrote(tables) {
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
