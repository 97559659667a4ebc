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
	n       atomic.Int64 // holders: the fast path reads only this
	mu      sync.Mutex
	holders map[WriteHolder]struct{}
}

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
	defer w.mu.Unlock()
	if w.holders == nil {
		w.holders = map[WriteHolder]struct{}{}
	}
	if _, ok := w.holders[h]; !ok {
		w.holders[h] = struct{}{}
		w.n.Add(1)
	}
}

// ReleaseWrites ends what HoldWrites(h) started. Releasing h when it is
// not held does nothing.
func (c *Cache) ReleaseWrites(h WriteHolder) {
	w := &c.open
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.holders[h]; ok {
		delete(w.holders, h)
		w.n.Add(-1)
	}
}

// covers reports whether an open transaction has written any of tables.
func (w *openWrites) covers(tables []string) bool {
	if w.n.Load() == 0 || len(tables) == 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for h := range w.holders {
		if h.Wrote(tables) {
			return true
		}
	}
	return false
}
