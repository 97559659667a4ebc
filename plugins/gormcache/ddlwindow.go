package gormcache

import (
	"slices"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// A schema change is seen by the plugin after the database has made it:
// the statement runs, its connection goes back to the pool, and only then
// does the after-callback forget the catalog facts (schemaChanged). A
// write that runs on another connection in between already runs under the
// new schema (a trigger just created fires), yet its after-callback would
// judge it by the facts from before, narrowing it to its row
// (TestHostile30TriggerCreatedWriteBeforeCallback).
//
// So a schema change is counted as running from before it is sent until
// its facts are forgotten, right after it ran (schemaWindow, around
// db.Exec's gorm:raw and the plugin's own query and row callbacks; a
// managed transaction's commit, for DDL inside it). A write asks at the start
// of its after-callback, before it reads any facts: if a schema change is
// running it invalidates everything. Otherwise every schema change that
// ran before the write has been seen through, and the facts it reads
// are learned from the new schema. The order, for a write W and DDL D:
//
//	D counted -> D runs -> W runs (fires D's trigger) -> W asks: counted
//	D runs -> D forgets, uncounted -> W asks: not counted -> W reads new facts
//
// A read planned from the old facts needs nothing more: its entry is
// served only to lookups planned from the current facts.

// schemaWindow counts the statement db is about to run as a running
// schema change when it may be one (changesSchema, or a call of a
// function that may write: its body may run DDL), and returns what ends
// the window once the statement has run: the catalog's facts are
// forgotten, then the change is uncounted. The caller defers it, so that
// a panic in the driver or in a later callback cannot leave it counted
// (which made every later write invalidate everything:
// TestHostile31DDLCountStuckAfterPanic). The after-callback still applies
// the statement's invalidation (and forgets again).
func (p *Plugin) schemaWindow(db *gorm.DB, info *sqlinspect.Statement) func() {
	if db.Error != nil || db.DryRun {
		return func() {}
	}
	sql := db.Statement.SQL.String()
	if info == nil {
		if len(sql) > inspectMaxSQL {
			// Not remembered by the inspection memo: the after-callback
			// reads it once more. A long text (a batch, a migration
			// script) counts when it names a statement that may change
			// the schema.
			if !namesSchemaChange(sql) {
				return func() {}
			}
			return p.openSchemaWindow()
		}
		info = &p.inspection(sql).st
	}
	if !changesSchema(info) && !(len(info.Functions) > 0 && p.mayWrite(db, *info, false)) {
		return func() {}
	}
	return p.openSchemaWindow()
}

func (p *Plugin) openSchemaWindow() func() {
	p.ddlStarted()
	before := p.cat.current()
	return func() {
		p.cat.beforeDDL.Store(before) // what a DROP's after-callback asks (cachedFacts)
		p.cat.forget()
		p.forgetSiblings()
		p.ddlEnded()
	}
}

// ddlStarted counts a schema change as running, for this plugin and for
// every plugin sharing its cache: another *gorm.DB's write that runs
// before the change is seen through (and fires a trigger it created)
// would otherwise be judged by facts its plugin has not yet been told to
// forget (TestHostile53SiblingDDLBeforeForget). ddlEnded uncounts it.
func (p *Plugin) ddlStarted() {
	p.w.ddlRunning.Add(1)
	if p.sibs != nil {
		p.sibs.ddlRunning.Add(1)
	}
}

// ddlEnded uncounts a schema change ddlStarted counted.
func (p *Plugin) ddlEnded() {
	if p.sibs != nil {
		p.sibs.ddlRunning.Add(-1)
	}
	p.w.ddlRunning.Add(-1)
}

// rawWithWindow wraps GORM's gorm:raw (db.Exec) in schemaWindow.
func (p *Plugin) rawWithWindow(run func(*gorm.DB)) func(*gorm.DB) {
	return func(db *gorm.DB) {
		end := p.schemaWindow(db, nil)
		defer end()
		run(db)
	}
}

// changesSchema reports whether a statement may change what the catalog
// facts say: DDL (it writes the catalog), or code the text does not show.
// A lone statement that only makes a temporary relation or trigger is
// not counted: it changes nothing other connections see, and its own
// connection's writes are handled apart (temps.go).
func changesSchema(info *sqlinspect.Statement) bool {
	if info.Kind == sqlinspect.KindUnknown {
		return true
	}
	if !slices.Contains(info.Writes, keys.CatalogTable) {
		return false
	}
	temp := len(info.TempTables) > 0 || len(info.TempViews) > 0 || len(info.TempTriggers) > 0
	return !(temp && info.Statements == 1)
}

// namesSchemaChange reports whether sql holds, as a word, the head of a
// statement that may change the schema or run code the text does not
// show (over-counting only widens the writes that run meanwhile).
func namesSchemaChange(sql string) bool {
	for i := 0; i < len(sql); {
		if !identChar(sql[i]) {
			i++
			continue
		}
		j := i
		for j < len(sql) && identChar(sql[j]) {
			j++
		}
		if j-i <= 7 {
			switch strings.ToLower(sql[i:j]) {
			case "create", "alter", "drop", "rename", "comment", "grant", "revoke", "do", "call", "attach", "detach", "pragma":
				return true
			}
		}
		i = j
	}
	return false
}

// ddlBusy reports whether a schema change is running. A write asks at
// the start of its after-callback, before it reads any facts.
func (p *Plugin) ddlBusy() bool {
	return p.w.ddlRunning.Load() > 0 || p.sibs != nil && p.sibs.ddlRunning.Load() > 0
}

// beforeFacts is called by a write's after-callback before it reads any
// facts: unless the statement may change the schema, it notes that a
// write is about to use them (factsUsed, for otherDDL in catalogwatch.go;
// a migration's own statements are judged by its DDL window, and marked
// they made every other process's plugin answer the migration with an
// invalidation of everything), then reports ddlBusy.
func (p *Plugin) beforeFacts(mark bool) bool {
	if n := p.otherDDLs.Load() + 1; mark && p.factsUsed.Load() < n {
		// Raised, never lowered: a write that read otherDDLs before
		// another's raise leaves the higher mark.
		for {
			old := p.factsUsed.Load()
			if old >= n || p.factsUsed.CompareAndSwap(old, n) {
				break
			}
		}
	}
	return p.ddlBusy()
}

// duringDDL widens a write's change to everything when a schema change was
// running as it began to be recorded (ddlBusy).
func duringDDL(busy bool, ch querycache.Change) querycache.Change {
	if !busy || ch.Empty() || ch.All {
		return ch
	}
	return querycache.Change{All: true, Cause: causeDuringDDL}
}
