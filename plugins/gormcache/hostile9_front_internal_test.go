package gormcache

import (
	"fmt"
	"hash/maphash"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
	"querycache.dev/sqlinspect"
)

// hostile9FrontTexts are texts of at most inspectFrontMaxSQL bytes (the
// front keeps them) whose inspection holds about ten times the text: a
// list of calls of one function (sqlinspect keeps the list's capacity,
// one Func of 40 bytes per call, after removing the repeats), or many
// distinct qualified functions or tables.
var hostile9FrontTexts = map[string]func(i int) string{
	"repeated calls": func(i int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "SELECT %d", i)
		for b.Len() < inspectFrontMaxSQL-4 {
			b.WriteString(",f()")
		}
		return b.String()
	},
	"qualified calls": func(i int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "SELECT %d", i)
		for j := 0; b.Len() < inspectFrontMaxSQL-10; j++ {
			fmt.Fprintf(&b, ",S.F%d()", j)
		}
		return b.String()
	},
	"tables": func(i int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "SELECT %d FROM A", i)
		for j := 0; b.Len() < inspectFrontMaxSQL-6; j++ {
			fmt.Fprintf(&b, ",%c%d", 'A'+j%26, j/26)
		}
		return b.String()
	},
}

// TestHostile9FrontKeepsHeavyInspections: the memory table promises the
// remembered inspections 2 MiB per plugin "plus about 0.5 MiB" for the
// front (256 texts of at most 1 KiB). The front keeps its 256 inspections
// whatever they weigh, and otter's weigher is not asked: a text of 1 KiB
// can hold about 10 KiB of inspection, so the front alone keeps about
// 2.5 MiB beyond otter's budget. Measured as the existing budget test
// does (live heap after GC), with its slack (1.5 x inspectBytes).
func TestHostile9FrontKeepsHeavyInspections(t *testing.T) {
	for name, gen := range hostile9FrontTexts {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			p := &Plugin{inspected: newInspections(), front: &inspectionFront{seed: maphash.MakeSeed()}, sqlDialect: sqlinspect.DialectOf("postgres")}
			sql0 := gen(0)
			if len(sql0) > inspectFrontMaxSQL {
				t.Fatalf("text of %d bytes: the front does not keep it", len(sql0))
			}
			weight := memSize(reflect.ValueOf(sqlinspect.InspectDialect(sql0, p.sqlDialect)))
			base := liveHeap()
			// Otter keeps about 200 of these (2 MiB of about 10 KiB each) and
			// the front 256: 1500 texts fill both several times over. (5000
			// took 44 s of CI's race run.)
			const texts = 1500
			for i := 0; i < texts; i++ {
				p.inspect(gen(i))
			}
			grown := liveHeap() - base
			front := 0
			for i := range p.front.slots {
				if p.front.slots[i].Load() != nil {
					front++
				}
			}
			runtime.KeepAlive(p)
			t.Logf("%d texts of %d bytes (inspection about %d bytes): live heap grew by %.2f MiB; otter holds %d, the front %d",
				texts, len(sql0), weight, float64(grown)/(1<<20), p.inspected.EstimatedSize(), front)
			if limit := int64(inspectBytes + inspectBytes/2); grown > limit {
				t.Fatalf("remembered inspections keep %.2f MiB; the budget is 2 MiB plus about 0.5 MiB for the front (tested at %.1f MiB)",
					float64(grown)/(1<<20), float64(limit)/(1<<20))
			}
		})
	}
}

// TestHostile9FrontConcurrentMemos: statements of one text share its
// inspection through the front while others evict it from its slot and
// from otter; the memos hung on it (the raw condition's reading, the SET
// list, the key prefix) are read and written concurrently (-race), and
// every lookup still gets its own text's inspection.
func TestHostile9FrontConcurrentMemos(t *testing.T) {
	p := &Plugin{inspected: newInspections(), front: &inspectionFront{seed: maphash.MakeSeed()}, sqlDialect: sqlinspect.DialectOf("sqlite")}
	texts := make([]string, 3*inspectFrontSlots)
	for i := range texts {
		texts[i] = fmt.Sprintf("UPDATE `t%d` SET `n`=? WHERE id = ?", i%7) + strings.Repeat(" ", i/7)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				for i := range texts {
					sql := texts[(i*(g+1)+round)%len(texts)]
					in := p.inspection(sql)
					if in.sql != sql {
						t.Errorf("text %q got the inspection of %q", sql, in.sql)
						return
					}
					cols, ok := p.assignedIn(in, sql)
					if !ok || len(cols) != 1 || cols[0] != "n" {
						t.Errorf("%q: SET list %v %v", sql, cols, ok)
						return
					}
					p.keyPrefix(in, fmt.Sprint(g), "", sql)
				}
				if round%5 == 0 {
					p.inspected.InvalidateAll()
				}
			}
		}()
	}
	wg.Wait()
}

// TestHostile9CondMemoConcurrentSchemas: one inspection's memo of its
// first raw condition (condMemo, 7062d27) read and written concurrently
// (-race) by statements of other schemas, other table names and other
// conditions: each gets what exprCondOf and pkFieldNamed say for its own.
func TestHostile9CondMemoConcurrentSchemas(t *testing.T) {
	cacheStore := &sync.Map{}
	keyed, err := schema.Parse(&refKeyedItem{}, cacheStore, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	composite, err := schema.Parse(&refCompositeItem{}, cacheStore, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	conds := []string{"id = ?", "code = ?", "ID = ?", "ref_keyed_items.id = ?", "other.id = ?", "name = ?", "id <= ?", "~~~py~~~ = ?"}
	tables := []string{"ref_keyed_items", "ref_composite_items", "other", ""}
	schemas := []*schema.Schema{keyed, composite}
	in := &inspection{}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				k := i*(g+1) + g
				stmt := &gorm.Statement{Schema: schemas[k%2], Table: tables[(k/2)%len(tables)]}
				sql := conds[(k/8)%len(conds)]
				ec, field := exprField(in, stmt, sql)
				want := exprCondOf(sql)
				var wantField *schema.Field
				if want.eq {
					wantField = pkFieldNamed(stmt, want.table, want.name, want.trimmed)
				}
				if *ec != *want || field != wantField {
					t.Errorf("schema %s table %q cond %q: memo %+v %v, want %+v %v", stmt.Schema.Name, stmt.Table, sql, *ec, field, *want, wantField)
					return
				}
			}
		}()
	}
	wg.Wait()
}
