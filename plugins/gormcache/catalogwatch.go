package gormcache

import (
	"runtime"
	"slices"
	"sync"
	"weak"

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
// Another process's DDL on a shared store is still followed only when the
// facts age out. Polling the store's catalog version (tried: every
// 100 ms, TestHostile21OtherProcessDDLOnSharedStore passed) made every
// process sharing a prefix relearn its catalog at every DDL and every
// change of everything any of them made (the epoch), which the test
// suite, all of it on one Redis and one prefix, showed as lookups that
// were not hits; not kept.

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
