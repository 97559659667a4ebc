package gormcache

import (
	"fmt"
	"testing"

	"querycache.dev/querycache"
)

// A transaction's remembered change keeps its cause when it grows too
// large and is widened to tables, or to everything.
func TestMergeBoundedKeepsCause(t *testing.T) {
	for _, tables := range []int{1, maxTrackedChange + 1} {
		var dst querycache.Change
		for i := 0; i <= maxTrackedChange; i++ {
			mergeBounded(&dst, querycache.Change{
				Rows:  []querycache.Row{{Table: fmt.Sprint("t", i%tables), PK: fmt.Sprint(i)}},
				Cause: "gorm update",
			})
		}
		if len(dst.Rows) != 0 || dst.Cause != "gorm update" {
			t.Fatalf("%d tables: widened to %d rows, %d tables, all %v, cause %q", tables, len(dst.Rows), len(dst.Tables), dst.All, dst.Cause)
		}
		if got := endCause(causeRawTxEnd, dst); got.Cause != "raw SQL: transaction end; gorm update" || got.All != dst.All || len(got.Tables) != len(dst.Tables) {
			t.Fatalf("%d tables: the end's change %+v", tables, got)
		}
	}
}
