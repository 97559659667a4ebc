package gormcache

import (
	"strconv"
	"strings"
)

// What the plugin keeps or prints of a statement's tables is bounded as its
// text is: a valid statement may read hundreds of tables (a UNION over a
// table per tenant), and a shape, a stale finding or a log line that kept
// them all would carry kilobytes per statement, a thousand shapes times
// that.

// MaxShapeTables is how many bytes of table names a shape
// (ShapeStats.Tables) or a stale finding (StaleFinding.Tables) keeps: the
// first names whose lengths add up to at most this; the number left out
// is in their MoreTables.
const MaxShapeTables = MaxShapeSQL

// maxLoggedTables bounds the tables attribute of a Debug line.
const maxLoggedTables = 200

// firstTables returns the longest prefix of tables whose names add up to
// at most max bytes (a copy: the caller keeps it), and how many it leaves
// out.
func firstTables(tables []string, max int) (kept []string, more int) {
	n, size := 0, 0
	for n < len(tables) && size+len(tables[n]) <= max {
		size += len(tables[n])
		n++
	}
	if n == 0 && len(tables) == 0 {
		return nil, 0
	}
	kept = make([]string, n)
	copy(kept, tables)
	return kept, len(tables) - n
}

// joinTables joins tables with commas, up to about max bytes; the names
// left out are counted at the end ("a,b,(+298 more)").
func joinTables(tables []string, max int) string {
	return formatTables(firstTables(tables, max))
}

// formatTables is joinTables of a list already cut: kept, and more left out.
func formatTables(kept []string, more int) string {
	s := strings.Join(kept, ",")
	if more > 0 {
		if s != "" {
			s += ","
		}
		s += "(+" + strconv.Itoa(more) + " more)"
	}
	return s
}
