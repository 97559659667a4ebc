package gormcache

import (
	"hash/maphash"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
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
	// inspectFrontSlots is the size of the front of the remembered
	// inspections (inspectionFront); inspectFrontMaxSQL the longest text
	// it keeps.
	inspectFrontSlots  = 256
	inspectFrontMaxSQL = 1024
	// inspectFrontMaxWeight is the heaviest inspection the front keeps
	// (its text and what the inspection holds, as otter weighs it): the
	// front keeps at most inspectFrontSlots of them beyond otter's budget,
	// 0.5 MiB. (A text of 1 KiB can hold an inspection of 10 KiB.)
	inspectFrontMaxWeight = 2048
	// inspectFrontTell is how often (one front hit in it) the front tells
	// otter of a read, so that its eviction policy still sees the hot texts.
	inspectFrontTell = 16
)

// inspectionFront is a direct-mapped array of the last inspections looked
// up, one per slot of the text's hash, in front of the otter cache: a text
// seen just before is found with one hash, one slot and one comparison
// (otter's lookup, cold after the database's statement, was a tenth of a
// write's own work and as much of a hit's). It keeps at most
// inspectFrontSlots inspections alive beyond otter's budget, none heavier
// than inspectFrontMaxWeight. A text otter has evicted meanwhile is still
// served here: an inspection depends on its text alone, and what it
// remembers besides (plans, verdicts) is checked on each use.
type inspectionFront struct {
	seed  maphash.Seed
	slots [inspectFrontSlots]atomic.Pointer[inspection]
}

// inspection is a remembered inspection, and the text's query shape once a
// marked statement used it (shapes.go): statements find their shape's
// counters here, with no second lookup.
type inspection struct {
	sql    string // the text inspected (the front's slots compare it)
	weight uint32 // what it weighs, weighed once (newInspection)
	st     sqlinspect.Statement
	sh     atomic.Pointer[shape]
	// assigned is an UPDATE's SET list, once a write asked (writes.go):
	// parsing it again on every write cost about a quarter of the plugin's
	// share of an update. (Not weighed: a few column names per text.)
	assigned atomic.Pointer[assignedColumns]
	// keyFree is whether that SET list leaves the primary key alone, for
	// the table facts it was judged against (writes.go): the same
	// statement text writes the same table on every call.
	keyFree atomic.Pointer[keyFreeVerdict]
	// plan is what a GORM write of the text learned of its table, for
	// the catalog state it was learned in (catalog.go, factsPlan); read,
	// what a read of one table learned of it.
	plan atomic.Pointer[factsPlan]
	read atomic.Pointer[factsPlan]
	// prefix is the digest of what a read of the text is keyed by besides
	// its bound values (plan.go, keyPrefix): hashing the text again on
	// every hit cost about a fifth of the plugin's share of a PK hit.
	prefix atomic.Pointer[keyPrefix]
	// cond is the reading of the first raw condition of the text's WHERE
	// (rows.go, condMemo).
	cond atomic.Pointer[condMemo]
	// keys is how the key of a statement of the text was proven, when its
	// WHERE is one raw condition on a primary key (rows.go, keyPlan).
	keys atomic.Pointer[keyPlan]
	// noHidden is when a GORM write of the text was found to call no
	// hidden writer (writes.go, hiddenVerdict).
	noHidden atomic.Pointer[hiddenVerdict]
	// rowWrite is the verdict of the long way on a GORM write of one row
	// by the text, for the catalog state it was judged in (rowwrite.go).
	rowWrite atomic.Pointer[rowWritePlan]
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
		Weigher:       func(_ string, in *inspection) uint32 { return in.weight },
		Executor:      inline,
	})
}

// newInspection inspects sql and weighs the result once: otter's weigher
// and the front's bound read the weight. (The shape is bounded by the
// shape registry, not weighed here.)
func (p *Plugin) newInspection(sql string) *inspection {
	in := &inspection{sql: sql, st: p.inspectSQL(sql)}
	w := int64(len(sql)) + memSize(reflect.ValueOf(in.st)) + inspectOverhead + 16
	in.weight = uint32(min(w, math.MaxUint32))
	return in
}

// inspectSQL is sqlinspect.InspectDialect in the plugin's dialect, unless
// the text cannot be read that way: on a PostgreSQL database whose
// sessions begin with standard_conforming_strings off, a backslash in a
// plain string escapes ('it\'s'), so where the text has a backslash its
// strings, and so its statements, are not the ones the reader sees (an
// UPDATE read as part of a string: TestHostile49PgWritesNonConformingStringsHideWrite).
// Such a text is read as unknown, in any number of statements that may
// change the session: a write invalidates everything, and the plugin stops
// caching the database.
func (p *Plugin) inspectSQL(sql string) sqlinspect.Statement {
	if p.escapeStrings.Load() && strings.IndexByte(sql, '\\') >= 0 {
		return sqlinspect.Statement{Kind: sqlinspect.KindUnknown, Undetermined: true, Statements: 2, SessionState: true}
	}
	return sqlinspect.InspectDialect(sql, p.sqlDialect)
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
func (p *Plugin) inspection(sql string) *inspection { return p.inspectionTelling(sql, true) }

// writeInspection is inspection for a write's text: a hit in the front
// does not tell otter's policy. The random draw that picks one hit in
// inspectFrontTell cost a write 88 instructions (3% of the plugin's
// share of an update); a write's text that otter evicts stays in its
// front slot, and one that leaves the slot is looked up in otter, which
// counts that read.
func (p *Plugin) writeInspection(sql string) *inspection { return p.inspectionTelling(sql, false) }

// inspectionTelling is inspection; tell: a hit in the front tells
// otter's policy now and then (inspectFrontTell).
func (p *Plugin) inspectionTelling(sql string, tell bool) *inspection {
	if len(sql) > inspectMaxSQL {
		// Not remembered: not weighed either.
		return &inspection{sql: sql, st: p.inspectSQL(sql)}
	}
	var slot *atomic.Pointer[inspection]
	if p.front != nil && len(sql) <= inspectFrontMaxSQL {
		slot = &p.front.slots[maphash.String(p.front.seed, sql)&(inspectFrontSlots-1)]
		if in := slot.Load(); in != nil && in.sql == sql {
			if tell && rand.Uint32()%inspectFrontTell == 0 {
				p.inspected.GetIfPresent(sql) // a read otter's policy counts
			}
			return in
		}
	}
	in, ok := p.inspected.GetIfPresent(sql)
	if !ok {
		in = p.newInspection(sql)
		p.inspected.Set(sql, in)
	}
	if slot != nil && in.weight <= inspectFrontMaxWeight {
		slot.Store(in)
	}
	return in
}
