package gormcache

import (
	"context"
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
// sees, and after catalogMaxAge. DDL run through another plugin on the
// same cache (another *gorm.DB of the process, or another process on a
// shared store) is announced in the store: it bumps the catalog's version
// (or, for a change of everything, the epoch). Without reading that, a
// plugin went on attributing its writes by the old schema (a trigger just
// created, unseen) for up to a minute
// (TestHostile20SharedCacheDDLFromOtherPlugin).
//
//   - Plugins of one process sharing a *querycache.Cache tell each other
//     at once (siblingsOf): no store round trip.
//   - Other processes are followed by a poll of the two version tokens,
//     every catalogPoll, on stores other than the memory store (which no
//     other process shares): one Fetch per period, off every statement's
//     path. Their DDL is followed within catalogPoll, not at once.

// catalogPoll is how often a plugin on a shared store reads the catalog's
// version tokens.
const catalogPoll = 100 * time.Millisecond

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

// joinSiblings records p among the plugins of its cache, and starts the
// poll of the store's catalog versions when the store may be shared.
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
	if _, local := p.cache.Store().(*querycache.MemoryStore); !local {
		go watchCatalogVersions(weak.Make(p), p.cache)
	}
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

// watchCatalogVersions polls the catalog's and the epoch's version tokens
// in the cache's store and makes the plugin forget its catalog facts when
// they change, until the cache is closed or the plugin collected. A poll
// that fails changes nothing (the facts still age out).
func watchCatalogVersions(wp weak.Pointer[Plugin], c *querycache.Cache) {
	ns := c.Namespace()
	names := []string{ns.TableVersions(keys.CatalogTable).Table, ns.Epoch()}
	key := ns.Prefix() + "q:catalog-watch" // never stored: only the tokens are read
	t := time.NewTicker(catalogPoll)
	defer t.Stop()
	var last []uint64
	for {
		select {
		case <-c.Done():
			return
		case <-t.C:
		}
		p := wp.Value()
		if p == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), catalogPoll)
		_, tokens, err := c.Store().Fetch(ctx, key, names)
		cancel()
		if err == nil && len(tokens) == len(names) {
			if last != nil && !slices.Equal(last, tokens) {
				p.cat.forget()
			}
			last = tokens
		}
		p = nil // hold it weakly between polls
	}
}
