package gormcache

import (
	"runtime"
	"slices"
	"sync"
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
// store's catalog version (watchCatalog), within catalogPoll. A first poll
// (bbdfe5a) was taken out (407a5fd): it could not tell the plugin's own
// DDL from another process's, so every plugin forgot its facts again at
// some poll after its own migrations, at a random moment of what followed
// (the suite's tests on Redis lost hits they expected). The watch now
// hears of its own bumps at once (querycache's watch.go).

// siblings are the plugins registered on one cache, held weakly: a
// closed *gorm.DB's plugin is collected as before
// (TestClosedHandlesAreCollected).
type siblings struct {
	mu sync.Mutex
	ps []weak.Pointer[Plugin]
}

// cacheSiblings maps a cache, held weakly, to its plugins; the entry goes
// when the cache is collected.
var cacheSiblings sync.Map // weak.Pointer[querycache.Cache] -> *siblings

// joinSiblings records p among the plugins of its cache.
func (p *Plugin) joinSiblings() {
	key := weak.Make(p.cache)
	v, loaded := cacheSiblings.LoadOrStore(key, &siblings{})
	if !loaded {
		runtime.AddCleanup(p.cache, func(k weak.Pointer[querycache.Cache]) { cacheSiblings.Delete(k) }, key)
	}
	s := v.(*siblings)
	s.mu.Lock()
	s.ps = slices.DeleteFunc(s.ps, func(w weak.Pointer[Plugin]) bool { return w.Value() == nil })
	s.ps = append(s.ps, weak.Make(p))
	s.mu.Unlock()
}

// forgetSiblings makes every other plugin on p's cache forget its catalog
// facts: p applied a change that may have changed the schema.
func (p *Plugin) forgetSiblings() {
	v, ok := cacheSiblings.Load(weak.Make(p.cache))
	if !ok {
		return
	}
	s := v.(*siblings)
	s.mu.Lock()
	var others []*Plugin
	for _, w := range s.ps {
		if o := w.Value(); o != nil && o != p {
			others = append(others, o)
		}
	}
	s.mu.Unlock()
	for _, o := range others {
		o.cat.forget()
	}
}

// catalogPoll is how often a plugin on a store other processes may share
// reads the catalog's and the epoch's version tokens (watchCatalog).
const catalogPoll = 100 * time.Millisecond

// watchCatalog follows DDL applied by other processes sharing the store:
// their plugins bump the catalog's version (or the epoch, for a change of
// everything, which may have been DDL); this plugin forgets its facts
// when it sees that, within catalogPoll (querycache.Cache.WatchVersions).
// Its own bumps are told to it at once, not at a later poll. Not on the
// memory store, which no other process shares. The watch holds the plugin
// weakly and stops when it is collected, or when the cache is closed.
func (p *Plugin) watchCatalog() {
	if _, local := p.cache.Store().(*querycache.MemoryStore); local {
		return
	}
	ns := p.cache.Namespace()
	wp := weak.Make(p)
	stop, err := p.cache.WatchVersions([]string{ns.TableVersions(keys.CatalogTable).Table, ns.Epoch()}, catalogPoll, func() {
		if p := wp.Value(); p != nil {
			p.cat.forget()
		}
	})
	if err != nil {
		return // not reached: the names, period and function are given
	}
	p.stopWatch = stop
	runtime.AddCleanup(p, func(stop func()) { stop() }, stop)
}
