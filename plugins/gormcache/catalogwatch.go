package gormcache

import (
	"context"
	"fmt"
	"querycache.dev/sqlinspect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// This file follows DDL that another plugin sharing the cache applied.
// The catalog's facts are per plugin (catalog.go): forgotten on the DDL it
// sees, and after catalogMaxAge. Plugins of one process sharing a
// *querycache.Cache (several *gorm.DB) tell each other at once
// (forgetSiblings): before, one went on attributing its writes by the old
// schema (a trigger just created through the other, unseen) for up to a
// minute (TestHostile20SharedCacheDDLFromOtherPlugin).
//
// Another process's DDL on a shared store is followed by a watch of the
// store's catalog version (watchCatalog), within a period (CatalogWatch,
// 100 ms by default). A first poll (bbdfe5a) was taken out (407a5fd): it
// could not tell the plugin's own DDL from another process's, so every
// plugin forgot its facts again at some poll after its own migrations, at
// a random moment of what followed (the suite's tests on Redis lost hits
// they expected). The watch now hears of its own bumps at once
// (querycache's watch.go).

// siblings are the plugins registered on one cache, held weakly: a
// closed *gorm.DB's plugin is collected as before
// (TestClosedHandlesAreCollected).
type siblings struct {
	mu sync.Mutex
	ps []weak.Pointer[Plugin]
	// fences is set (never cleared) before any of them switches its
	// replica fence on (activateFence): until then a change applied to
	// the cache has no plugin to fence, and fence returns at once, with no
	// lock and no weak pointer made strong (about 110 instructions a
	// write).
	fences atomic.Bool
	// ddlRunning counts the schema changes any of them is running
	// (ddlStarted): each one's writes meanwhile are widened (ddlBusy).
	ddlRunning atomic.Int32
}

// cacheSiblings maps a cache, held weakly, to its plugins; the entry goes
// when the cache is collected.
var cacheSiblings sync.Map // weak.Pointer[querycache.Cache] -> *siblings

// joinSiblings records p among the plugins of its cache.
func (p *Plugin) joinSiblings() {
	key := weak.Make(p.cache)
	v, loaded := cacheSiblings.LoadOrStore(key, &siblings{})
	s := v.(*siblings)
	if !loaded {
		runtime.AddCleanup(p.cache, func(k weak.Pointer[querycache.Cache]) { cacheSiblings.Delete(k) }, key)
		// One hook per cache, holding no plugin: every change applied to
		// the cache fences every plugin on it (replica.go, fenceSiblings),
		// and one that may have changed the schema makes them forget it.
		p.cache.OnInvalidate(s.changed)
	}
	s.mu.Lock()
	s.ps = slices.DeleteFunc(s.ps, func(w weak.Pointer[Plugin]) bool { return w.Value() == nil })
	s.ps = append(s.ps, weak.Make(p))
	s.mu.Unlock()
	p.sibs = s
}

// changed is the cache's OnInvalidate hook: a change that may have
// changed the schema (everything, or the catalog) makes every plugin on
// the cache forget what it learned of it, whoever applied the change; then
// the change is fenced (replica.go). A plugin's own such changes made it
// forget already (schemaChanged), and on a shared store the catalog watch
// follows other processes'; but a change applied by another component of
// this process went unheard on the memory store: the listener's of DDL by
// a program without the plugin (migrations.InstallPostgresDDLNotify), or
// the application's InvalidateAll after its own migration. The plugins
// went on judging writes by the old schema (a foreign key with ON DELETE
// CASCADE just added: a delete's children not invalidated) until the
// facts expired (TestOutsideDDLForgetsFactsOnMemoryStore).
func (s *siblings) changed(ctx context.Context, ch querycache.Change) {
	if ch.All || len(ch.Tables) > 0 && slices.Contains(ch.Tables, keys.CatalogTable) {
		s.mu.Lock()
		ps := make([]*Plugin, 0, len(s.ps))
		for _, w := range s.ps {
			if o := w.Value(); o != nil {
				ps = append(ps, o)
			}
		}
		s.mu.Unlock()
		for _, p := range ps {
			p.cat.forget()
			// A table created may be shadowed by a temporary one, and a
			// look that ran while hidden code still streamed its rows saw
			// nothing (temps.go). On every such change, the plugins' own
			// included (their schemaChanged only forgets).
			p.tempsLookAgain()
		}
	}
	s.fence(ctx, ch)
}

// forgetSiblings makes every other plugin on p's cache forget its catalog
// facts: p applied a change that may have changed the schema.
func (p *Plugin) forgetSiblings() {
	for _, o := range p.siblingPlugins() {
		o.cat.forget()
	}
}

// siblingPlugins returns the other live plugins on p's cache.
func (p *Plugin) siblingPlugins() []*Plugin {
	v, ok := cacheSiblings.Load(weak.Make(p.cache))
	if !ok {
		return nil
	}
	s := v.(*siblings)
	s.mu.Lock()
	defer s.mu.Unlock()
	var others []*Plugin
	for _, w := range s.ps {
		if o := w.Value(); o != nil && o != p {
			others = append(others, o)
		}
	}
	return others
}

// defaultCatalogPoll is how often a plugin on a store other processes may
// share reads the catalog's and the epoch's version tokens (watchCatalog),
// unless CatalogWatch says otherwise.
const defaultCatalogPoll = 100 * time.Millisecond

// CatalogWatch sets how often the plugin, on a store other processes may
// share (every store but the memory store), reads the two version tokens
// through which their plugins announce DDL: another process's migration
// run through its plugin is followed within this period. Default 100 ms:
// one small read of the store per period and process (a fleet of 1,000
// processes on one Redis adds 10,000 reads a second). A negative period
// turns the watch off: another process's DDL is then followed when the
// catalog's facts expire (a minute), as a migration by a program without
// the plugin always is. Zero is an error.
func CatalogWatch(period time.Duration) Option {
	return func(p *Plugin) {
		if period == 0 {
			p.optionError(fmt.Errorf("gormcache.CatalogWatch(0): give a positive period, a negative one to turn the watch off, or leave the option out for %v", defaultCatalogPoll))
			return
		}
		p.catalogPoll = period
	}
}

// watchCatalog follows DDL applied by other processes sharing the store:
// their plugins bump the catalog's version (or the epoch, for a change of
// everything, which may have been DDL); this plugin forgets its facts
// when it sees that, within the period (CatalogWatch; querycache's
// Cache.WatchVersions). Its own bumps are told to it at once, not at a
// later poll. Not on the memory store, which no other process shares. The
// watch holds the plugin weakly and stops when it is collected, or when
// the cache is closed.
func (p *Plugin) watchCatalog() {
	if _, local := p.cache.Store().(*querycache.MemoryStore); local || p.catalogPoll < 0 {
		return
	}
	period := p.catalogPoll
	if period == 0 {
		period = defaultCatalogPoll
	}
	ns := p.cache.Namespace()
	wp := weak.Make(p)
	stop, err := p.cache.WatchVersionsEach([]string{ns.TableVersions(keys.CatalogTable).Table, ns.Epoch()}, period, func(ch querycache.VersionChange) {
		if p := wp.Value(); p != nil {
			p.cat.forget()
			if !ch.Own && ch.Changed[0] {
				p.otherDDL()
			}
		}
	})
	if err != nil {
		return // not reached: the names, period and function are given
	}
	p.stopWatch = stop
	runtime.AddCleanup(p, func(stop func()) { stop() }, stop)
}

// announced makes a change of everything by a statement that may change
// the schema also replace the catalog's version: other processes' watches
// answer a change of the catalog's version (otherDDL), not one of the
// epoch alone, which every change of everything replaces. A multi-statement
// migration, or CREATE TRIGGER whose body writes, invalidates everything
// and was announced as an epoch change only
// (TestHostile35OtherProcessDDLWindowLeavesPermanentStale, trigger cases).
func announced(info *sqlinspect.Statement, ch querycache.Change) querycache.Change {
	if ch.All && changesSchema(info) && !slices.Contains(ch.Tables, keys.CatalogTable) {
		ch.Tables = append(slices.Clip(ch.Tables), keys.CatalogTable)
	}
	return ch
}

// otherDDLCause is the cause of the invalidations otherDDL makes.
const otherDDLCause = "another process changed the schema"

// otherDDL follows another process's DDL, seen by the watch a period
// after it ran, once the facts are forgotten. The writes this process
// made in between were judged by the facts from before: a trigger or an
// ON DELETE CASCADE just added changed rows their invalidations did not
// name, and those entries stayed stale after the watch caught up
// (TestHostile35OtherProcessDDLWindowLeavesPermanentStale). What they
// missed is not known, so when a write began reading facts since the
// previous such change (factsUsed), everything is invalidated. The order,
// for a write W of this process and the watch's call:
//
//	W: beforeFacts marks factsUsed (n+1) -> W reads facts
//	watch: forget -> otherDDLs becomes n+1 -> factsUsed >= n+1: invalidate everything
//
// W either marked before the count rose, and is covered by the
// invalidation (its statement ran before its after-callback; a managed
// transaction's commit compares the count instead: txConn.otherDDLs), or
// marked after the facts were forgotten, and reads the new ones. A write
// in the moment between the other process's DDL and its bump of the
// catalog (its after-callback) is marked with the count before, and is
// covered the same way. Only another process's catalog change: the
// invalidation bumps the epoch, which other processes' watches follow by
// forgetting only (a response to every epoch change would answer each
// other's without end), and this process's own DDL has its window
// (ddlwindow.go).
func (p *Plugin) otherDDL() {
	n := p.otherDDLs.Add(1)
	if p.factsUsed.Load() >= n {
		p.apply(context.Background(), querycache.Change{All: true, Cause: otherDDLCause})
	}
}
