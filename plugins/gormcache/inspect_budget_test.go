package gormcache

import (
	"fmt"
	"hash/maphash"
	"runtime"
	"strings"
	"testing"

	"querycache.dev/sqlinspect"
)

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestInspectionsStayWithinTheirBudget remembers thousands of long,
// distinct SQL texts (each just under the length limit, some naming many
// tables, some short enough for the front of the memo) and checks the
// live heap they keep stays within inspectBytes (and the front's share).
func TestInspectionsStayWithinTheirBudget(t *testing.T) {
	for _, shape := range []struct {
		name string
		sql  func(i int) string
	}{
		{"long texts", func(i int) string {
			return fmt.Sprintf("SELECT * FROM posts WHERE id = %d AND title = '%s'", i, strings.Repeat("x", inspectMaxSQL-80))
		}},
		{"texts the front keeps", func(i int) string {
			return fmt.Sprintf("SELECT * FROM posts WHERE id = %d AND title = '%s'", i, strings.Repeat("x", inspectFrontMaxSQL-80))
		}},
		{"many tables", func(i int) string {
			var b strings.Builder
			fmt.Fprintf(&b, "SELECT %d FROM t0", i)
			for j := 1; b.Len() < inspectMaxSQL-40; j++ {
				fmt.Fprintf(&b, " JOIN table_%d_%d ON true", i, j)
			}
			return b.String()
		}},
	} {
		t.Run(strings.ReplaceAll(shape.name, " ", "_"), func(t *testing.T) {
			p := &Plugin{inspected: newInspections(), front: &inspectionFront{seed: maphash.MakeSeed()}, sqlDialect: sqlinspect.DialectOf("postgres")}
			base := liveHeap()
			const texts = 5000
			for i := 0; i < texts; i++ {
				sql := shape.sql(i)
				if len(sql) > inspectMaxSQL {
					t.Fatalf("text of %d bytes is not remembered", len(sql))
				}
				p.inspect(sql)
			}
			grown := liveHeap() - base
			runtime.KeepAlive(p)
			t.Logf("%d texts of about %d bytes: live heap grew by %.2f MiB (budget %.0f MiB), %d remembered",
				texts, len(shape.sql(0)), float64(grown)/(1<<20), float64(inspectBytes)/(1<<20), p.inspected.EstimatedSize())
			if grown > inspectBytes+inspectBytes/2 {
				t.Fatalf("remembered inspections keep %d bytes; the budget is %d", grown, inspectBytes)
			}
			if p.inspected.EstimatedSize() == 0 {
				t.Fatal("nothing remembered")
			}
		})
	}
}
