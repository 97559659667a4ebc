package gormcache

import (
	"slices"
	"strings"
	"testing"
)

func TestFirstTablesAndJoinTables(t *testing.T) {
	long := strings.Repeat("x", 300)
	cases := []struct {
		tables []string
		max    int
		kept   []string
		more   int
		joined string
	}{
		{nil, 10, nil, 0, ""},
		{[]string{"a", "b"}, 10, []string{"a", "b"}, 0, "a,b"},
		{[]string{"aaaa", "bbbb", "cccc"}, 8, []string{"aaaa", "bbbb"}, 1, "aaaa,bbbb,(+1 more)"},
		{[]string{long, "b"}, 200, []string{}, 2, "(+2 more)"}, // the first name alone is over: none kept
	}
	for _, c := range cases {
		kept, more := firstTables(c.tables, c.max)
		if !slices.Equal(kept, c.kept) || more != c.more {
			t.Errorf("firstTables(%d names, %d) = %q, %d; want %q, %d", len(c.tables), c.max, kept, more, c.kept, c.more)
		}
		if len(c.tables) > 0 && len(kept) > 0 && &kept[0] == &c.tables[0] {
			t.Errorf("firstTables returned the caller's array: a shape would pin the statement's list")
		}
		if got := joinTables(c.tables, c.max); got != c.joined {
			t.Errorf("joinTables(%d names, %d) = %q, want %q", len(c.tables), c.max, got, c.joined)
		}
	}
}
