package invalidation

import (
	"sync"

	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// Buffer collects the changes of one transaction. Rolling back to a
// savepoint keeps what was collected before it: applying a change that did
// not happen only costs a miss, while forgetting one would serve stale data.
type Buffer struct {
	mu      sync.Mutex
	change  querycache.Change
	written map[string]struct{}
	done    bool
}

// NewBuffer returns an empty Buffer.
func NewBuffer() *Buffer { return &Buffer{written: map[string]struct{}{}} }

// Add records ch, to be applied at commit.
func (b *Buffer) Add(ch querycache.Change) {
	if ch.Empty() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.change.Merge(ch)
	for _, t := range ch.Tables {
		b.written[sqlinspect.NormalizeTable(t)] = struct{}{}
	}
	for _, r := range ch.Rows {
		b.written[sqlinspect.NormalizeTable(r.Table)] = struct{}{}
	}
}

// Wrote reports whether the transaction has written any of tables, or
// something it could not attribute to a table.
func (b *Buffer) Wrote(tables []string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.change.All {
		return true
	}
	for _, t := range tables {
		if _, ok := b.written[sqlinspect.NormalizeTable(t)]; ok {
			return true
		}
	}
	return false
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
	return ch
}

// Rollback drops everything collected.
func (b *Buffer) Rollback() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	b.change = querycache.Change{}
}
