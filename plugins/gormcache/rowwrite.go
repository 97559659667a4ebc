package gormcache

import (
	"gorm.io/gorm"
	"gorm.io/gorm/schema"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// A rowWritePlan is what the long way (writeChange, then withDependents)
// concluded of a GORM UPDATE or DELETE of one row by its key, for a text
// (its inspection's), a model and the catalog state it judged in: that
// the write changes that one row of a table nothing depends on, whose key
// the plan kp reads. The commonest write then costs its key, checked
// against what may have changed since: the catalog state, and the
// plugin's counts of what is judged per statement (a transaction opened
// by SQL text, temporary triggers and views, DDL in the transaction).
//
// Each part of the verdict is one the long way remembers on its own, for
// the same catalog state (factsPlan, hiddenVerdict, keyFreeVerdict,
// keyPlan): the plan is their conjunction, made once, where the long way
// read them one by one, through two thirds of the plugin's share of an
// update.
//
// A check added to the long way that depends on more than the text, the
// model and the catalog state (a count of the plugin's, the statement's
// connection or transaction) must be added to plannedRowWrite too.
type rowWritePlan struct {
	gen, stored uint64 // the catalog state judged in
	schema      *schema.Schema
	stmtTable   string
	table       string // the written table, normalised
	kp          *keyPlan
}

// plannedRowWrite returns the change of a GORM UPDATE or DELETE (w.where)
// of in's text by its plan, or false when there is none or it does not
// hold: the long way then judges the statement.
func (p *Plugin) plannedRowWrite(db *gorm.DB, in *inspection, w gormWrite) (querycache.Change, bool) {
	rp := in.rowWrite.Load()
	if rp == nil || !w.where || p.broken != nil {
		return querycache.Change{}, false
	}
	stmt := db.Statement
	if rp.schema != stmt.Schema || rp.stmtTable != stmt.Table {
		return querycache.Change{}, false
	}
	// What the long way reads per statement: a transaction opened by SQL
	// text (writeChange: its writes are in bulk,
	// TestRowWritePlanInTextTransaction), a temporary view
	// (writeCallsHiddenWriter), a temporary trigger (withDependents). A
	// temporary trigger, and DDL in the statement's transaction
	// (schemaPending), also change the catalog state today, which the
	// next check sees (TestRowWritePlanFollowsDependents): checked all
	// the same, so that the plan never holds where the long way would
	// have judged otherwise.
	if p.w.suspended.Load() > 0 || p.w.tempViewCount.Load() > 0 || p.w.tempTrigCount.Load() > 0 {
		return querycache.Change{}, false
	}
	if st := p.cat.current(); st.gen != rp.gen || st.stored.Load() != rp.stored {
		return querycache.Change{}, false
	}
	// On PostgreSQL whether the text calls a hidden writer depends on the
	// transaction's search_path: never remembered (writeCallsHiddenWriter).
	if p.dialect != "sqlite" && p.callsHiddenWriter(db, &in.st, true) {
		return querycache.Change{}, false
	}
	if p.schemaPending(db) {
		return querycache.Change{}, false
	}
	var digits pkDigits
	pk, ok := rp.kp.key(stmt, &digits)
	if !ok {
		return querycache.Change{}, false
	}
	return querycache.Change{Rows: ownedRow(rp.table, pk)}, true
}

// rememberRowWrite remembers ch, the long way's change of a GORM write of
// in's text judged in the catalog state st (whose count of stored facts
// was stored before the judgement), as in's plan when it is one row by
// the text's key plan, of a table nothing depends on, and every memo the
// plan stands for holds for that state.
func (p *Plugin) rememberRowWrite(db *gorm.DB, in *inspection, w gormWrite, ch querycache.Change, known knownFacts, st *catalogState, stored uint64) {
	if !w.where || p.broken != nil || ch.All || len(ch.Tables) != 0 || len(ch.Rows) != 1 || ch.Rows[0].Table != known.table {
		return
	}
	info := &in.st
	if info.Kind != sqlinspect.KindWrite || len(info.Functions) > 0 || info.SessionState || info.Attached ||
		info.Undetermined && !info.WritesKnown || info.Cascade || len(info.Writes) != 1 || info.Replace || info.Writes[0] != known.table {
		return
	}
	stmt := db.Statement
	f := known.f
	if stmt.Schema == nil || f == nil || !f.keyable() || f.exists && (f.replaces || !f.deps.empty() || f.relkind == 'f') {
		return
	}
	// The memos the long way read, each for this state.
	if p.cat.current() != st || st.stored.Load() != stored {
		return
	}
	if pf, ok := p.cat.planned(in.plan.Load(), stmt.Table); !ok || pf != f {
		return
	}
	if p.dialect == "sqlite" {
		if v := in.noHidden.Load(); v == nil || v.gen != st.gen || v.stored != stored {
			return
		}
	}
	kp := in.keys.Load()
	if kp == nil || kp.schema != stmt.Schema || kp.f != f || kp.stmtTable != stmt.Table {
		return
	}
	if !isUpdateOrDelete(stmt.SQL.String()) || !p.setsNoKey(db, in, f) {
		return
	}
	in.rowWrite.Store(&rowWritePlan{gen: st.gen, stored: stored, schema: stmt.Schema, stmtTable: stmt.Table, table: known.table, kp: kp})
}
