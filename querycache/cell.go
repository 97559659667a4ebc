package querycache

import (
	"sync/atomic"
	"unsafe"
)

// A MemoryStore keeps each version's token in a cell, so that a bump
// writes one word in place: an otter Set per version per write allocated a
// node and went through otter's write buffer.
//
// Lookups read a version's token by name, through the table: that read is
// also what tells otter's eviction (W-TinyLFU) that the version is in use.
// Reading the tokens through cells kept with the entries instead was
// faster, but the versions of entries that were only hit looked cold to
// the eviction policy, and evicting a version kills every entry that
// recorded it: a hot set that fitted the store lost up to 13% of its hits
// under a scan (TestHostileCellsHotSetKeepsHitting). Entries would need to
// pin their versions for that (not built).
//
// A cell leaving the table is killed (token 0, which no entry records; see
// countEviction) and a bump never revives a dead cell, so a token is only
// ever read from the cell the table holds under its name.
type verCell struct {
	token atomic.Uint64
}

// cellSize is what a cell costs on the heap (weigh).
const cellSize = int(unsafe.Sizeof(verCell{}))

func newCell() *verCell {
	c := &verCell{}
	c.token.Store(NewToken())
	return c
}

// load returns the cell's token, 0 when it is dead.
func (c *verCell) load() uint64 { return c.token.Load() }

// bump gives a live cell a new token; a dead cell stays dead.
func (c *verCell) bump() {
	t := NewToken()
	for {
		old := c.token.Load()
		if old == 0 || c.token.CompareAndSwap(old, t) {
			return
		}
	}
}

// kill marks the cell dead: it left the table.
func (c *verCell) kill() { c.token.Store(0) }

// memDeps is what a MemoryStore keeps with an entry a Cache stored (putFor):
// its Attachment, and the counters of the tables it read in the cache that
// filled it (its eviction, and that cache's hits of it, are counted there
// without looking the counters up by name).
type memDeps struct {
	attach Attachment
	stats  *counters
	tables []*tableCounters
	weight uint64 // heap bytes, counted by weigh
}

// An Attachment holds what a caller derived from one stored value (the GORM
// plugin keeps the rows it scanned from it), for as long as the store keeps
// that value: a value stored again comes with a new, empty Attachment, so
// whatever is attached was derived from exactly the bytes the hit returns.
// Only a MemoryStore gives attachments (Cache.LookupAttached), since a
// shared store's value is read anew on every hit. It is safe for concurrent
// use; every value stored in one must have the same concrete type.
type Attachment struct {
	v atomic.Value
}

// Load returns the attached value, or nil.
func (a *Attachment) Load() any { return a.v.Load() }

// Store attaches v (not nil).
func (a *Attachment) Store(v any) { a.v.Store(v) }

// CompareAndSwap attaches new if old is attached, and reports whether it
// did.
func (a *Attachment) CompareAndSwap(old, new any) bool { return a.v.CompareAndSwap(old, new) }
