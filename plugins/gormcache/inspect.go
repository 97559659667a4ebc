package gormcache

import (
	"math"
	"reflect"

	"github.com/maypok86/otter/v2"
	"querycache.dev/sqlinspect"
)

// GORM builds the same SQL text for the same query shape, so the plugin
// inspects each text once and remembers the result, within a budget of
// bytes (the texts, what their inspection holds, and otter's per-entry
// cost): a count would let a few thousand long texts take tens of MiB.
const (
	// inspectBytes is the memory the remembered inspections may take.
	inspectBytes = 2 << 20
	// inspectMaxSQL is the longest text remembered; longer ones are
	// inspected on every use.
	inspectMaxSQL = 4096
	// inspectOverhead is otter's and the map's cost per remembered text.
	inspectOverhead = 96
)

func newInspections() *otter.Cache[string, sqlinspect.Statement] {
	return otter.Must(&otter.Options[string, sqlinspect.Statement]{
		MaximumWeight: inspectBytes,
		Weigher: func(sql string, st sqlinspect.Statement) uint32 {
			w := int64(len(sql)) + memSize(reflect.ValueOf(st)) + inspectOverhead
			return uint32(min(w, math.MaxUint32))
		},
		Executor: inline,
	})
}

// inspect is sqlinspect.InspectDialect, remembered per SQL text.
func (p *Plugin) inspect(sql string) sqlinspect.Statement {
	if len(sql) > inspectMaxSQL {
		return sqlinspect.InspectDialect(sql, p.sqlDialect)
	}
	if st, ok := p.inspected.GetIfPresent(sql); ok {
		return st
	}
	st := sqlinspect.InspectDialect(sql, p.sqlDialect)
	p.inspected.Set(sql, st)
	return st
}
