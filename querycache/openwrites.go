package querycache

import (
	"sync"
	"sync/atomic"
)

// openWrites counts, per version name, the transactions of this process
// that have written what the version stands for and not ended yet.
//
// Why: a low-level value computed inside such a transaction (GetOrSet's
// fill reading through it) may count rows that are never committed. The
// invalidation of the transaction's writes is applied at commit, and
// dropped at rollback: the value, stored against the versions current
// before, would then be served to everyone although it shows writes that
// never happened (C3). The order of events it prevents: tx inserts a row;
// GetOrSet's fill counts through tx (n+1) and stores against users' token
// t; tx rolls back (nothing replaced); every reader gets n+1 until the
// next write to users. While a transaction holds a version, values
// depending on it are not stored.
type openWrites struct {
	n     atomic.Int64 // transactions holding names: the fast path reads only this
	mu    sync.Mutex
	names map[string]int
}

// OpenWrite records that a transaction has written what ch describes and
// has not ended. Until release is called (once the transaction has
// committed and its invalidation is applied, or has rolled back), the
// low-level API stores no value that depends on a version ch would
// replace: GetOrSet and Remember return their fill's value without
// storing it, Set and Add return ErrUncommitted. The GORM plugin calls it
// for every write inside a transaction. Table names are normalised as
// Invalidate's; a change that cannot be normalised holds the epoch, which
// every value depends on.
func (c *Cache) OpenWrite(ch Change) (release func()) {
	var names []string
	if norm, err := ch.normalized(); err != nil {
		names = []string{c.ns.Epoch()}
	} else {
		names = norm.VersionNames(c.ns)
	}
	if len(names) == 0 {
		return func() {}
	}
	w := &c.open
	w.mu.Lock()
	if w.names == nil {
		w.names = map[string]int{}
	}
	for _, n := range names {
		w.names[n]++
	}
	w.mu.Unlock()
	w.n.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			for _, n := range names {
				if w.names[n]--; w.names[n] <= 0 {
					delete(w.names, n)
				}
			}
			w.mu.Unlock()
			w.n.Add(-1)
		})
	}
}

// covers reports whether an open transaction holds any of names.
func (w *openWrites) covers(names []string) bool {
	if w.n.Load() == 0 {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range names {
		if w.names[n] > 0 {
			return true
		}
	}
	return false
}
