package gormcache

import (
	"math"
	"reflect"
	"sync/atomic"

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

// inspection is a remembered inspection, and the text's query shape once a
// marked statement used it (shapes.go): statements find their shape's
// counters here, with no second lookup.
type inspection struct {
	st sqlinspect.Statement
	sh atomic.Pointer[shape]
	// assigned is an UPDATE's SET list, once a write asked (writes.go):
	// parsing it again on every write cost about a quarter of the plugin's
	// share of an update. (Not weighed: a few column names per text.)
	assigned atomic.Pointer[assignedColumns]
	// keyFree is whether that SET list leaves the primary key alone, for
	// the table facts it was judged against (writes.go): the same
	// statement text writes the same table on every call.
	keyFree atomic.Pointer[keyFreeVerdict]
	// plan is what a GORM write of the text learned of its table, for
	// the catalog state it was learned in (catalog.go, writePlan).
	plan atomic.Pointer[writePlan]
	// prefix is the digest of what a read of the text is keyed by besides
	// its bound values (plan.go, keyPrefix): hashing the text again on
	// every hit cost about a fifth of the plugin's share of a PK hit.
	prefix atomic.Pointer[keyPrefix]
}

// keyFreeVerdict is updatedRows' judgement of a SET list against the
// facts f of its table: facts learned again are a new object, judged
// again.
type keyFreeVerdict struct {
	f  *tableFacts
	ok bool
}

type assignedColumns struct {
	cols []string
	ok   bool
}

// assignedColumns is sqlinspect.AssignedColumns, remembered with the
// text's inspection. The columns are shared: callers must not modify them.
func (p *Plugin) assignedColumns(sql string) ([]string, bool) {
	return p.assignedIn(p.inspection(sql), sql)
}

// assignedIn is assignedColumns for a text whose inspection is in hand.
func (p *Plugin) assignedIn(in *inspection, sql string) ([]string, bool) {
	if a := in.assigned.Load(); a != nil {
		return a.cols, a.ok
	}
	cols, ok := sqlinspect.AssignedColumns(sql, p.sqlDialect)
	in.assigned.Store(&assignedColumns{cols: cols, ok: ok})
	return cols, ok
}

func newInspections() *otter.Cache[string, *inspection] {
	return otter.Must(&otter.Options[string, *inspection]{
		MaximumWeight: inspectBytes,
		Weigher: func(sql string, in *inspection) uint32 {
			// The shape itself is bounded by the shape registry.
			w := int64(len(sql)) + memSize(reflect.ValueOf(in.st)) + inspectOverhead + 16
			return uint32(min(w, math.MaxUint32))
		},
		Executor: inline,
	})
}

// inspect is sqlinspect.InspectDialect, remembered per SQL text.
func (p *Plugin) inspect(sql string) sqlinspect.Statement {
	return p.inspection(sql).st
}

// inspectShape is inspect, with the text's query shape.
// The statement is the memo's own value, shared by every statement of
// that text: callers must not modify it (copying it to the heap on every
// hit cost an allocation).
func (p *Plugin) inspectShape(sql string) (*inspection, *shape) {
	in := p.inspection(sql)
	sh := in.sh.Load()
	if sh == nil {
		sh = p.shapes.get(sql)
		in.sh.Store(sh)
	}
	return in, sh
}

// inspection returns the remembered inspection of sql, making it if
// needed (a text too long to remember gets one of its own).
func (p *Plugin) inspection(sql string) *inspection {
	if len(sql) > inspectMaxSQL {
		return &inspection{st: sqlinspect.InspectDialect(sql, p.sqlDialect)}
	}
	if in, ok := p.inspected.GetIfPresent(sql); ok {
		return in
	}
	in := &inspection{st: sqlinspect.InspectDialect(sql, p.sqlDialect)}
	p.inspected.Set(sql, in)
	return in
}
