package querycache

import (
	"sync"
	"sync/atomic"
)

// pendingSet holds the versions whose replacement could not be delivered
// to the store (C4: an undelivered invalidation is not forgotten). While a
// version is pending, every lookup that depends on it bypasses the cache;
// a background loop retries delivery.
type pendingSet struct {
	n     atomic.Int64 // fast path: zero means nothing is pending or held
	mu    sync.Mutex
	gen   uint64
	names map[string]uint64 // name -> generation of its latest failure
	// held are versions suspended by Cache.Suspend (a watcher of outside
	// writes that cannot see them), with a count of holders each.
	held map[string]int
}

// maxPending bounds the names remembered while the store cannot be reached
// (a long outage under many writes to distinct rows). Beyond it they are
// replaced by the epoch alone: delivering it invalidates every entry, so it
// covers every name it replaces, and meanwhile every lookup bypasses.
const maxPending = 4096

// add records names as undelivered; epoch is the global version's name.
func (p *pendingSet) add(names []string, epoch string) {
	p.mu.Lock()
	if p.names == nil {
		p.names = map[string]uint64{}
	}
	p.gen++
	if _, all := p.names[epoch]; all || len(p.names)+len(names) > maxPending {
		p.names = map[string]uint64{epoch: p.gen} // a new map releases the old one's memory
	} else {
		for _, n := range names {
			p.names[n] = p.gen
		}
	}
	p.n.Store(int64(len(p.names) + len(p.held)))
	p.mu.Unlock()
}

// covers reports whether any of names (or the epoch) is pending.
func (p *pendingSet) covers(names []string, epoch string) bool {
	if p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.names[epoch]; ok {
		return true
	}
	if p.held[epoch] > 0 {
		return true
	}
	for _, n := range names {
		if _, ok := p.names[n]; ok {
			return true
		}
		if p.held[n] > 0 {
			return true
		}
	}
	return false
}

// holding reports whether any of names (or the epoch) is held by Suspend
// rather than pending delivery; it only tells the two apart for Stats.
func (p *pendingSet) holding(names []string, epoch string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held[epoch] > 0 {
		return true
	}
	for _, n := range names {
		if p.held[n] > 0 {
			return true
		}
	}
	return false
}

// hold suspends names until the returned function is called (once).
func (p *pendingSet) hold(names []string) (release func()) {
	p.mu.Lock()
	if p.held == nil {
		p.held = map[string]int{}
	}
	for _, n := range names {
		p.held[n]++
	}
	p.n.Store(int64(len(p.names) + len(p.held)))
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			for _, n := range names {
				if p.held[n]--; p.held[n] <= 0 {
					delete(p.held, n)
				}
			}
			p.n.Store(int64(len(p.names) + len(p.held)))
			p.mu.Unlock()
		})
	}
}

// snapshot returns every pending name with its generation. They stay
// pending until done is called with the snapshot.
func (p *pendingSet) snapshot() map[string]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]uint64, len(p.names))
	for n, g := range p.names {
		out[n] = g
	}
	return out
}

// done removes the names of a delivered snapshot, except those that failed
// again after the snapshot was taken: that later write's invalidation was
// not covered by the delivery.
func (p *pendingSet) done(delivered map[string]uint64) {
	p.mu.Lock()
	for n, g := range delivered {
		if p.names[n] == g {
			delete(p.names, n)
		}
	}
	p.n.Store(int64(len(p.names) + len(p.held)))
	p.mu.Unlock()
}

// len is the number of versions pending delivery (not those held).
func (p *pendingSet) len() int {
	if p.n.Load() == 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.names)
}

// any reports whether anything is pending or held, without a lock: when it
// is false, covers is false for every name.
func (p *pendingSet) any() bool { return p.n.Load() != 0 }
