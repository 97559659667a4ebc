package gormcache

import (
	"fmt"
	"hash/maphash"
	"reflect"
	"sync"
	"testing"

	"querycache.dev/sqlinspect"
)

// TestInspectionFrontServesItsOwnText: the front of the remembered
// inspections gives every text its own inspection, whatever shares its
// slot, whether otter still holds it or not, under concurrent lookups
// (-race); texts too long for the front still get theirs.
func TestInspectionFrontServesItsOwnText(t *testing.T) {
	p := &Plugin{inspected: newInspections(), front: &inspectionFront{seed: maphash.MakeSeed()}, sqlDialect: sqlinspect.DialectOf("sqlite")}
	texts := make([]string, 4*inspectFrontSlots) // more texts than slots: slots are shared
	for i := range texts {
		texts[i] = fmt.Sprintf("UPDATE `t%d` SET `qty`=? WHERE id = ?", i)
	}
	texts = append(texts, "SELECT * FROM `long` WHERE "+fmt.Sprintf("%0*d", inspectFrontMaxSQL, 0)+" = ?")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				for i := range texts {
					sql := texts[(i*(g+1)+round)%len(texts)]
					in := p.inspection(sql)
					if in.sql != sql {
						t.Errorf("text %q got the inspection of %q", sql, in.sql)
						return
					}
					if want := sqlinspect.InspectDialect(sql, p.sqlDialect); !reflect.DeepEqual(in.st, want) {
						t.Errorf("text %q: inspection %+v, want %+v", sql, in.st, want)
						return
					}
				}
				if g == 0 && round == 1 {
					p.inspected.InvalidateAll() // otter forgets: the front still answers, rightly
				}
			}
		}()
	}
	wg.Wait()
	in := p.inspection(texts[0])
	if again := p.inspection(texts[0]); again != in {
		t.Error("a text looked up twice in a row was not served by the front")
	}
}
