package querycache

import (
	"sync"
	"sync/atomic"

	"querycache.dev/keys"
)

// versionMemo remembers the version names of the tables writes name
// (keys.TableVersions) and a one-table list for their records, so that an
// invalidation builds only its rows' names. It is bounded in tables and in
// name length; a table beyond the bounds gets its names built on each use.
type versionMemo struct {
	m sync.Map // normalised table -> *tableVersions
	n atomic.Int64
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
	if v, ok := c.versions.m.Load(table); ok {
		return v.(*tableVersions)
	}
	tv := &tableVersions{TableVersions: c.ns.TableVersions(table), only: []string{table}}
	if len(table) > maxVersionMemoName {
		return tv
	}
	if c.versions.n.Add(1) > maxVersionMemo {
		c.versions.n.Add(-1)
		return tv
	}
	if v, loaded := c.versions.m.LoadOrStore(table, tv); loaded {
		c.versions.n.Add(-1)
		return v.(*tableVersions)
	}
	return tv
}

// memoVersions is tableVersions as versionNames asks for it.
func (c *Cache) memoVersions(table string) keys.TableVersions {
	return c.tableVersions(table).TableVersions
}
