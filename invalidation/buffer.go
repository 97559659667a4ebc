package invalidation

import (
	"slices"
	"sync"
	"sync/atomic"

	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// Buffer collects the changes of one transaction. Rolling back to a
// savepoint keeps what was collected before it: applying a change that did
// not happen only costs a miss, while forgetting one would serve stale data.
//
// The zero Buffer is empty and ready to use: a transaction can hold one by
// value (one allocation fewer per transaction).
type Buffer struct {
	mu     sync.Mutex
	change querycache.Change
	// written are the normalised tables written, distinct: a list while
	// they are few (a transaction writes a table or two; a map cost two
	// allocations per transaction), a map beyond smallWritten.
	written    []string
	writtenMap map[string]struct{}
	// firstWritten holds the first tables written, in the Buffer itself:
	// a transaction that writes one or two tables allocates no list.
	firstWritten [2]string
	done         bool
	// all mirrors change.All and catalog whether the catalog is among
	// the tables written: WroteCatalog reads them without the lock or a
	// list (it runs on every write in a transaction).
	all, catalog atomic.Bool
	// rolledAll: the change rolled back was All; Wrote and WroteCatalog
	// still say so after Rollback.
	rolledAll atomic.Bool
}

// smallWritten is how many written tables a Buffer searches in a list.
const smallWritten = 16

// NewBuffer returns an empty Buffer.
func NewBuffer() *Buffer { return &Buffer{} }

// Add records ch, to be applied at commit, and reports whether it did: a
// buffer that has ended (Commit or Rollback ran) takes nothing, and the
// caller applies ch itself. The order of events this prevents: a statement
// of the transaction runs on one goroutine while another commits; the
// commit takes the buffer (Commit) and applies it; the statement's change
// then arrives and was added to a buffer nothing would apply again: a
// committed write never invalidated (TestHostile46WriteRecordedDuringCommitApplyLost).
//
// The first change is kept as it is, its lists shared with the caller (a
// transaction that writes one row copies nothing): Add never appends into
// them or changes them, and the caller must not change them afterwards
// either.
func (b *Buffer) Add(ch querycache.Change) bool {
	if ch.Empty() {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return false
	}
	if b.change.Empty() && b.change.Cause == "" {
		// What Merge makes of an empty change, without the copies. The
		// lists are clipped: a later Merge appending to them copies them,
		// never writing into the caller's arrays.
		b.change = querycache.Change{All: ch.All, Cause: ch.Cause, Rows: clipped(ch.Rows), Tables: clipped(ch.Tables)}
	} else {
		b.change.Merge(ch)
	}
	b.all.Store(b.change.All)
	for _, t := range ch.Tables {
		b.note(sqlinspect.NormalizeTable(t))
	}
	last := ""
	for i, r := range ch.Rows {
		if i == 0 || r.Table != last { // rows of a batch share their table
			b.note(sqlinspect.NormalizeTable(r.Table))
		}
		last = r.Table
	}
	return true
}

// clipped is s without room to append into (nil when empty, as Merge
// leaves an empty list).
func clipped[E any](s []E) []E {
	if len(s) == 0 {
		return nil
	}
	return s[:len(s):len(s)]
}

// note adds a normalised table to the written ones.
func (b *Buffer) note(t string) {
	if t == keys.CatalogTable {
		b.catalog.Store(true)
	}
	if b.writtenMap != nil {
		b.writtenMap[t] = struct{}{}
		return
	}
	if slices.Contains(b.written, t) {
		return
	}
	if b.written == nil {
		b.written = b.firstWritten[:0]
	}
	if len(b.written) < smallWritten {
		b.written = append(b.written, t)
		return
	}
	b.writtenMap = make(map[string]struct{}, 2*smallWritten)
	for _, w := range b.written {
		b.writtenMap[w] = struct{}{}
	}
	b.writtenMap[t] = struct{}{}
	b.written = nil
}

// has reports whether the normalised table t was written.
func (b *Buffer) has(t string) bool {
	if b.writtenMap != nil {
		_, ok := b.writtenMap[t]
		return ok
	}
	return slices.Contains(b.written, t)
}

// Wrote reports whether the transaction has written any of tables, or
// something it could not attribute to a table.
func (b *Buffer) Wrote(tables []string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.change.All || b.rolledAll.Load() {
		return true
	}
	for _, t := range tables {
		n := t
		if t != keys.CatalogTable { // its own normalisation, which parsing it costs
			n = sqlinspect.NormalizeTable(t)
		}
		if b.has(n) {
			return true
		}
	}
	return false
}

// WrittenTables lists the tables written (normalised), and all when
// something was written that no table names; it still answers after
// Rollback (querycache.TablesWriter).
func (b *Buffer) WrittenTables() (tables []string, all bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.writtenMap != nil {
		tables = make([]string, 0, len(b.writtenMap))
		for t := range b.writtenMap {
			tables = append(tables, t)
		}
	} else {
		tables = slices.Clone(b.written)
	}
	return tables, b.change.All || b.rolledAll.Load()
}

// WroteCatalog is Wrote([]string{keys.CatalogTable}) without its lock or
// list: whether the transaction has changed the schema, or written
// something it could not attribute to a table.
func (b *Buffer) WroteCatalog() bool {
	return b.all.Load() || b.catalog.Load() || b.rolledAll.Load()
}

// Commit returns everything collected, once; later calls return nothing.
func (b *Buffer) Commit() querycache.Change {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return querycache.Change{}
	}
	b.done = true
	ch := b.change
	b.change = querycache.Change{}
	b.all.Store(false)
	return ch
}

// Rollback drops everything collected. Wrote still answers for what was
// written (a fill that ran while the transaction was open asks it after
// the rollback: querycache.Cache.ReleaseRolledBack).
func (b *Buffer) Rollback() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.change.All {
		b.rolledAll.Store(true)
	}
	b.done = true
	b.change = querycache.Change{}
	b.all.Store(false)
}
