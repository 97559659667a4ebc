package querycache

import (
	"maps"
	"sync"
	"sync/atomic"

	"querycache.dev/keys"
)

// versionMemo remembers the version names of the tables writes name
// (keys.TableVersions) and a one-table list for their records, so that an
// invalidation builds only its rows' names. It is bounded in tables and in
// name length; a table beyond the bounds gets its names built on each use.
//
// It is a map replaced whole on each new table (copy on write): a write
// looks its table up with one plain map read, where a sync.Map hashed an
// interface and walked its trie (about 5% of a write's own work, cold).
// Tables are few and bounded, so the copies are too.
type versionMemo struct {
	m  atomic.Pointer[map[string]*tableVersions] // normalised table -> names; never modified once stored
	mu sync.Mutex                                // serialises the copies
}

// tableVersions is what versionMemo keeps of one table.
type tableVersions struct {
	keys.TableVersions
	// only is []string{table}, the Tables of an invalidation record of
	// this table alone. Shared by every such record: never modified
	// (RecentInvalidations hands out copies).
	only []string
	// counters are the table's statistics (Stats), found on its first
	// invalidation: an invalidation of the table counts itself without
	// looking them up by name. The counters of a name are never replaced.
	counters atomic.Pointer[tableCounters]
	// table is the table version in a memory store, as its last bump
	// found it (versionRef.bump).
	table versionRef
}

// countersOf returns the statistics counters of table, whose memo is tv.
func (c *Cache) countersOf(tv *tableVersions, table string) *tableCounters {
	if tc := tv.counters.Load(); tc != nil {
		return tc
	}
	tc := c.stats.table(table)
	tv.counters.Store(tc)
	return tc
}

const (
	// maxVersionMemo bounds the tables remembered (raw SQL can name any).
	maxVersionMemo = 1024 // as MaxStatsTables: both sit in the budget TestStatsTablesBounded checks
	// maxVersionMemoName bounds the length of a table name remembered.
	maxVersionMemoName = 128
)

// tableVersions returns the version names of a normalised table.
func (c *Cache) tableVersions(table string) *tableVersions {
	if tv := c.versions.get(table); tv != nil {
		return tv
	}
	tv := &tableVersions{TableVersions: c.ns.TableVersions(table), only: []string{table}}
	if len(table) > maxVersionMemoName {
		return tv
	}
	c.versions.mu.Lock()
	defer c.versions.mu.Unlock()
	var old map[string]*tableVersions
	if m := c.versions.m.Load(); m != nil {
		old = *m
	}
	if v, ok := old[table]; ok {
		return v // remembered by another write meanwhile
	}
	if len(old) >= maxVersionMemo {
		return tv
	}
	m := make(map[string]*tableVersions, len(old)+1)
	maps.Copy(m, old)
	m[table] = tv
	c.versions.m.Store(&m)
	return tv
}

// get returns what the memo holds of table, or nil. A name it holds is
// normalised.
func (m *versionMemo) get(table string) *tableVersions {
	if mm := m.m.Load(); mm != nil {
		return (*mm)[table]
	}
	return nil
}

// memoVersions is tableVersions as versionNames asks for it.
func (c *Cache) memoVersions(table string) keys.TableVersions {
	return c.tableVersions(table).TableVersions
}
