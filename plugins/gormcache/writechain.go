package gormcache

import (
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"gorm.io/gorm"
	"querycache.dev/querycache"
)

// Where the plugin notes GORM's writes in GORM's callback chains.
//
// A callback registered After("gorm:create") lands wherever GORM's sort
// puts it, which depends on what the application registered before db.Use:
// its own callbacks may run between GORM's write and the plugin's note of
// it. Two orders of events that broke:
//
//   - an application callback between gorm:create and the plugin's changes
//     the model's primary key; the plugin then reads the new key, and the
//     inserted row's cached "not found" stays
//     (TestHostile40CallbackBeforeAssociationsChangesKey);
//   - an application callback registered After the default transaction's
//     commit, which GORM placed before the plugin's note at the chain's end,
//     reads the written row from the cache before the plugin invalidated
//     it, or panics, and the note never runs
//     (TestHostile40AfterCommitCallbackReadsStale, ...Panics).
//
// The same held for db.Exec: an application callback after gorm:raw that
// panicked skipped the plugin's, and the committed write stayed cached
// (TestHostile40RawCallbackPanicsAfterWrite).
//
// So the plugin wraps GORM's own callbacks: gorm:create, gorm:update,
// gorm:delete and gorm:raw note the write the moment GORM's write returns
// (written, afterRaw), and gorm:commit_or_rollback_transaction records,
// the moment the default transaction has ended, what a write in it left
// for then (writeLate). The callbacks registered at the old places stay as
// fallbacks for a chain in which another plugin replaced GORM's callback
// after db.Use: there they note the write as before (writeFallback,
// rawFallback; writeLate at the chain's end).

// writeChain tells the fallbacks whether the wrappers are still in place.
type writeChain struct {
	// gen counts the compilations of the write chains (GORM calls a
	// callback's Match function each time it compiles its chain).
	gen atomic.Uint64
	// checked is gen+1 as of the last check of the chains (0: none yet).
	checked atomic.Uint64
	// wrapped, by wrapped op (gormWrite.op, opRaw): GORM's callback is
	// still the plugin's wrapper.
	wrapped [4]atomic.Bool
	// code, by op: the wrapper's code pointer, taken from the one
	// installed (a closure's code may be copied where the compiler
	// inlines the function that makes it, so no other closure compares).
	code [4]uintptr
}

// opRaw is db.Exec's gorm:raw in writeChain, after the three gormWrites.
const opRaw = 3

// chainProcessor is the part of GORM's callback processor the wrapping uses.
type chainProcessor interface {
	Get(string) func(*gorm.DB)
	Replace(string, func(*gorm.DB)) error
}

// wrapWrites replaces GORM's write callbacks (gorm:create, gorm:update,
// gorm:delete, and db.Exec's gorm:raw) and the default transaction's
// commit with wrappers that note the write at their end, and registers the
// fallbacks. Called once, from Initialize.
func (p *Plugin) wrapWrites(db *gorm.DB) error {
	cb := db.Callback()
	var errs []error
	wrap := func(proc chainProcessor, op int, name string, wrapper func(orig func(*gorm.DB)) func(*gorm.DB)) {
		orig := proc.Get(name)
		if orig == nil {
			errs = append(errs, fmt.Errorf("gormcache: GORM's %s callback is missing; register the plugin on a *gorm.DB with GORM's default callbacks", name))
			return
		}
		f := wrapper(orig)
		p.wc.code[op] = reflect.ValueOf(f).Pointer()
		p.wc.wrapped[op].Store(true)
		errs = append(errs, proc.Replace(name, f))
	}
	for i, proc := range [3]chainProcessor{cb.Create(), cb.Update(), cb.Delete()} {
		w := [3]gormWrite{gormCreate, gormUpdate, gormDelete}[i]
		wrap(proc, w.op, w.name, func(orig func(*gorm.DB)) func(*gorm.DB) { return p.writeAt(w, orig) })
		// A chain without GORM's default transaction (none registered) has
		// nothing to wrap: writeLate at the chain's end is then the one.
		if commit := proc.Get("gorm:commit_or_rollback_transaction"); commit != nil {
			errs = append(errs, proc.Replace("gorm:commit_or_rollback_transaction", p.commitAt(commit)))
		}
	}
	wrap(cb.Raw(), opRaw, "gorm:raw", p.rawAt)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	recompiled := func(*gorm.DB) bool {
		p.wc.gen.Add(1)
		return true
	}
	return errors.Join(
		cb.Create().Match(recompiled).After("gorm:create").Before("gorm:save_after_associations").Register("querycache:after_create", p.writeFallback(gormCreate)),
		cb.Update().Match(recompiled).After("gorm:update").Before("gorm:save_after_associations").Register("querycache:after_update", p.writeFallback(gormUpdate)),
		cb.Delete().Match(recompiled).After("gorm:delete").Before("gorm:after_delete").Register("querycache:after_delete", p.writeFallback(gormDelete)),
		cb.Raw().Match(recompiled).After("gorm:raw").Register("querycache:after_raw", p.rawFallback),
		cb.Create().After("gorm:create").Register("querycache:after_create_late", p.writeLate),
		cb.Update().After("gorm:update").Register("querycache:after_update_late", p.writeLate),
		cb.Delete().After("gorm:delete").Register("querycache:after_delete_late", p.writeLate),
	)
}

// writeAt returns the wrapper of GORM's write callback orig: GORM's write,
// then the plugin's note of it, with nothing between them.
func (p *Plugin) writeAt(w gormWrite, orig func(*gorm.DB)) func(*gorm.DB) {
	return func(db *gorm.DB) {
		orig(db)
		p.failedIn(db) // before the note: the transaction may be gone (txgone.go)
		p.written(db, w)
		p.noteWrapped(db, w.op)
	}
}

// notedWrite is the key, in a statement's Settings, of a write a wrapper
// noted while another plugin's callback stands in its place (wrapping it):
// the fallback then leaves the write alone instead of noting it twice.
type notedWrite struct{}

// noteWrapped leaves the mark for the fallback when the wrapper of op runs
// though it is no longer GORM's callback itself (another plugin's wrapper
// calls it). While the chains hold the wrappers, two atomic loads.
func (p *Plugin) noteWrapped(db *gorm.DB, op int) {
	if !p.stillWrapped(db, op) {
		db.Statement.Settings.Store(notedWrite{}, db.Statement)
	}
}

// rawAt returns the wrapper of gorm:raw (db.Exec): the statement in its
// schema window (ddlwindow.go), then afterRaw, as the window closes.
func (p *Plugin) rawAt(orig func(*gorm.DB)) func(*gorm.DB) {
	run := p.rawWithWindow(orig)
	return func(db *gorm.DB) {
		run(db)
		p.failedIn(db) // a PrepareStmt session's Exec fails past the transaction's ExecContext (txgone.go)
		p.afterRaw(db)
		p.noteWrapped(db, opRaw)
	}
}

// commitAt returns the wrapper of the default transaction's commit
// callback: the commit (or rollback), then what a write in it left for
// then, before any callback after it runs.
func (p *Plugin) commitAt(orig func(*gorm.DB)) func(*gorm.DB) {
	return func(db *gorm.DB) {
		orig(db)
		p.writeLate(db)
	}
}

// writeFallback notes a write where the plugin's callback was registered,
// only when GORM's write callback is no longer the plugin's wrapper
// (another plugin replaced it after db.Use) and the wrapper did not run
// (the replacement did not call it). While the chains are unchanged it
// costs two atomic loads.
func (p *Plugin) writeFallback(w gormWrite) func(*gorm.DB) {
	return func(db *gorm.DB) {
		if !p.stillWrapped(db, w.op) && !takeMark(db, notedWrite{}) {
			p.written(db, w)
		}
	}
}

// rawFallback is writeFallback for db.Exec.
func (p *Plugin) rawFallback(db *gorm.DB) {
	if !p.stillWrapped(db, opRaw) && !takeMark(db, notedWrite{}) {
		p.afterRaw(db)
	}
}

// stillWrapped reports whether GORM's callback of op is still the
// plugin's wrapper, checking the chains again after they changed.
func (p *Plugin) stillWrapped(db *gorm.DB, op int) bool {
	if g := p.wc.gen.Load(); p.wc.checked.Load() != g+1 {
		cb := db.Callback()
		for op, f := range [4]func(*gorm.DB){
			cb.Create().Get(gormCreate.name), cb.Update().Get(gormUpdate.name),
			cb.Delete().Get(gormDelete.name), cb.Raw().Get("gorm:raw"),
		} {
			p.wc.wrapped[op].Store(f != nil && reflect.ValueOf(f).Pointer() == p.wc.code[op])
		}
		p.wc.checked.Store(g + 1)
	}
	return p.wc.wrapped[op].Load()
}

// lateWrite is the key, in a statement's Settings, of a write whose change
// written left to writeLate; its value is a *deferredWrite.
type lateWrite struct{}

// deferredWrite holds the changes written computed for writeLate to
// record. stmt tells the statement's own mark from the copy GORM puts in
// the statements that save its associations (see takeMark).
//
// A statement may be noted more than once before its transaction ends,
// and every note is kept: a plugin that wraps GORM's write callback after
// db.Use, calling the plugin's wrapper, makes the fallback note the write
// again, with less to go on (the preset SQL's mark taken, the key changed
// by a callback since); a chain reused after a recovered panic in a hook
// keeps GORM's default transaction open, and its next write's change joins
// the first's. One slot lost the first note
// (TestHostile41WrappedDeleteAfterUsePresetSQL, TestHostile41ReusedChainPanicThenWrite).
type deferredWrite struct {
	stmt    *gorm.Statement
	changes []sourcedChange
}

// sourcedChange is a change and the write callback that computed it.
type sourcedChange struct {
	source string
	ch     querycache.Change
}

// written computes a write's change right after GORM's write and records
// it there, except in GORM's default transaction begun on a pool the
// plugin does not manage (a pool taken before db.Use, or another plugin's,
// such as dbresolver's): that transaction commits later in the chain,
// after which the statement is back on its pool and writeLate records the
// change as committed. Recorded before that commit, it would take the
// path of an unseen transaction, whose end is noticed later (reads are
// fenced meanwhile, and a fenced read under dbresolver went to the lagging
// standby: TestHostileReplicaWriteDuringActivation). Computed after the
// commit, it named the rows the model's After hooks had left in the model
// (TestHostile39AfterCreateHookChangesKey).
//
// In the caller's own transaction on such a pool the write is recorded
// here, as an unseen transaction's: its commit comes after the chain
// anyway, and a panic in a later callback (an After hook's, recovered by
// the caller, who then commits) skips the late callback, which lost the
// write (TestHostile14PanicAfterWriteInUnmanagedTransaction).
func (p *Plugin) written(db *gorm.DB, w gormWrite) {
	ch, ok := p.change(db, w)
	if !ok {
		return
	}
	if scopeOf(db.Statement.ConnPool).kind == scopeRawTx && startedDefaultTx(db) {
		sc := sourcedChange{source: w.source, ch: ch}
		if p.lates.Load() > 0 {
			if v, ok := db.Statement.Settings.Load(lateWrite{}); ok {
				if d, ok := v.(*deferredWrite); ok && d.stmt == db.Statement {
					d.changes = append(d.changes, sc)
					return
				}
			}
		}
		p.lates.Add(1)
		db.Statement.Settings.Store(lateWrite{}, &deferredWrite{stmt: db.Statement, changes: []sourcedChange{sc}})
		return
	}
	p.record(db, w.source, ch)
}

// startedDefaultTx reports whether GORM's default transaction was begun by
// this statement's chain (gorm:begin_transaction), to be committed at its
// end (gorm:commit_or_rollback_transaction).
func startedDefaultTx(db *gorm.DB) bool {
	_, ok := db.InstanceGet("gorm:started_transaction")
	return ok
}

// writeLate records the change written left to it: run by the commit's
// wrapper and, as a fallback, at the end of the write's chain (whichever
// comes first takes it). While no write is left, statements' settings are
// not read.
func (p *Plugin) writeLate(db *gorm.DB) {
	if p.lates.Load() == 0 {
		return
	}
	v, _ := db.Statement.Settings.LoadAndDelete(lateWrite{})
	if d, ok := v.(*deferredWrite); ok && d.stmt == db.Statement {
		p.lates.Add(-1)
		for _, c := range d.changes {
			p.record(db, c.source, c.ch)
		}
	}
}
