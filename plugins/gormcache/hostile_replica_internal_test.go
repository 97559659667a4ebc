package gormcache

import (
	"strings"
	"testing"

	"querycache.dev/querycache"
)

// TestHostileFenceUnnormalisableTable: a change naming a table that does
// not normalise is applied by the cache as "everything" (Invalidate); its
// fence must cover every table too, not a table named "".
func TestHostileFenceUnnormalisableTable(t *testing.T) {
	for _, bad := range []string{"\xff\xfe", " ", strings.Repeat("x", 2000) + " y"} {
		var f replicaFence
		f.note(querycache.Change{Tables: []string{bad}}, 10)
		if got := f.required([]string{"users"}); got < 10 {
			t.Errorf("after a write to %.20q: the fence of users is %d; want >= 10 (the cache invalidated everything)", bad, got)
		}
		var g replicaFence
		g.note(querycache.Change{Rows: []querycache.Row{{Table: bad, PK: "1"}}}, 10)
		if got := g.required([]string{"orders"}); got < 10 {
			t.Errorf("after a row write to %.20q: the fence of orders is %d; want >= 10", bad, got)
		}
	}
}
