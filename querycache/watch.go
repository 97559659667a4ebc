package querycache

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// This file follows a few versions that other processes bump in a store
// they share with this one (WatchVersions). The GORM plugin watches the
// catalog's version and the epoch, so that DDL another process applied
// makes it forget what it learned of the schema within a poll rather than
// when its facts age out.
//
// The watch cannot tell a bump made by another process from one made by
// this Cache from the tokens alone, and treating this Cache's own bumps
// as foreign calls changed at some later poll, in the middle of whatever
// the process does next (the plugin's tests on Redis saw hits lost at
// random moments after their own migrations). So an own bump of a watched
// name is followed at once, in the order that keeps the watch exact:
//
//  1. the watch's lock is taken, so that no poll reads in between;
//  2. the bump reaches the store;
//  3. the watch reads the tokens, and lets go of the lock;
//  4. changed is called.
//
// Another process's bump that reached the store before 3 is in the tokens
// read at 3, and changed (4) comes after it; one after 3 changes the
// tokens the next poll compares with. Either way it is followed, and the
// own bump calls changed once.

// versionWatch is one WatchVersions.
type versionWatch struct {
	c       *Cache
	names   []string
	changed func(VersionChange)

	mu      sync.Mutex // one read of the tokens at a time: a poll's or an own bump's
	last    []uint64   // the tokens last read; nil: not known (changed is called at the next read)
	before  []bool     // under an own bump (lockWatches to bumped): what changed before it, by others
	blind   bool       // under an own bump: the read before it failed, so what changed is not known
	stop    chan struct{}
	stopped sync.Once
}

// WatchVersions calls changed whenever one of the named versions (full
// names, as keys.Namespace makes them) is bumped by anyone: another
// process sharing the store, seen by a read of the tokens every period;
// or this Cache (Invalidate, InvalidateAll...), at once, after the bump.
// Polls are off every statement's path: one Store.Fetch per period (each
// bounded by the store's own timeout); the first read is made before
// WatchVersions returns. A poll that fails changes nothing; when the read
// that follows one of this Cache's own bumps fails, the next read that
// succeeds calls changed, since what happened in between cannot be told.
// changed must not block: it runs on the watch's goroutine, or on the
// goroutine that invalidated.
//
// The watch stops when stop is called (idempotent) or the Cache is
// closed. It is meant for stores other processes share; on a MemoryStore
// that no other Cache uses, the poll finds nothing it had not been told.
func (c *Cache) WatchVersions(names []string, period time.Duration, changed func()) (stop func(), err error) {
	if changed == nil {
		return nil, errors.New("querycache: WatchVersions needs a changed function")
	}
	return c.WatchVersionsEach(names, period, func(VersionChange) { changed() })
}

// VersionChange is what WatchVersionsEach tells of one change it follows.
type VersionChange struct {
	// Changed[i] reports whether the token of names[i] changed. All are
	// set when what happened in between cannot be told (the tokens before
	// were not known).
	Changed []bool
	// Own is set when the change follows this Cache's own bump. The
	// tokens are read right before it too: what changed since the last
	// read is told first, as a change of its own (not Own), and so is a
	// watched name the bump did not replace that changed meanwhile. Only
	// another process's bump of a name this one replaces, landing in the
	// round trip between that read and the bump, is told as Own.
	Own bool
}

// WatchVersionsEach is WatchVersions, telling which of the names changed
// and whether the change follows this Cache's own bump.
func (c *Cache) WatchVersionsEach(names []string, period time.Duration, changed func(VersionChange)) (stop func(), err error) {
	switch {
	case len(names) == 0:
		return nil, errors.New("querycache: WatchVersions needs at least one version name")
	case period <= 0:
		return nil, errors.New("querycache: WatchVersions needs a positive period")
	case changed == nil:
		return nil, errors.New("querycache: WatchVersions needs a changed function")
	}
	w := &versionWatch{c: c, names: slices.Clone(names), changed: changed, stop: make(chan struct{})}
	// Listed first, so that an own bump from now on is told (lockWatches);
	// then the first tokens, before anything is learned from them.
	c.watchMu.Lock()
	ws := append(slices.Clone(c.watchList()), w)
	c.watches.Store(&ws)
	c.watchMu.Unlock()
	w.read()
	go w.poll(period)
	return w.close, nil
}

// watchList is the watches now (nil for none); the list is copied on write.
func (c *Cache) watchList() []*versionWatch {
	if p := c.watches.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *versionWatch) close() {
	w.stopped.Do(func() {
		close(w.stop)
		c := w.c
		c.watchMu.Lock()
		ws := slices.DeleteFunc(slices.Clone(c.watchList()), func(o *versionWatch) bool { return o == w })
		if len(ws) == 0 {
			c.watches.Store(nil)
		} else {
			c.watches.Store(&ws)
		}
		c.watchMu.Unlock()
	})
}

// poll reads the tokens every period until the watch or the Cache stops.
func (w *versionWatch) poll(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.c.closed:
			return
		case <-t.C:
		}
		if which := w.read(); which != nil {
			w.changed(VersionChange{Changed: which})
		}
	}
}

// read reads the tokens and reports which differ from the last ones read
// (all when the last ones are not known), nil when none does. A failed
// read keeps them.
func (w *versionWatch) read() (which []bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tokens, err := w.fetch()
	if err != nil {
		w.failed(err)
		return nil
	}
	which = differ(w.last, tokens)
	w.last = tokens
	return which
}

// differ reports which of now differ from was (all when was is not known),
// nil when none does.
func differ(was, now []uint64) []bool {
	var which []bool
	for i := range now {
		if was == nil || len(was) != len(now) || was[i] != now[i] {
			if which == nil {
				which = make([]bool, len(now))
			}
			which[i] = true
		}
	}
	return which
}

// failed counts and logs a read of the tokens that failed, as every other
// store error is: the watch follows no bump until a read succeeds, and
// when no read has succeeded yet (the first one, made before WatchVersions
// returned, timed out on a loaded machine), the first that does calls
// changed, which makes the plugin learn its catalog again. Without the
// count, that statement's extra catalog reads came with no store error to
// explain them (the news demo's "4. homepage (invalidated by A) B miss 1"
// read 6 statements once in a saturated CI run). A store its breaker has
// opened is neither: the breaker logged its opening, the statements it
// sends to the database count their bypasses, and a poll is no statement.
func (w *versionWatch) failed(err error) {
	c := w.c
	if errors.Is(err, ErrStoreUnavailable) {
		return
	}
	c.stats.errors.Add(1)
	c.warn(context.Background(), "querycache: reading the watched versions failed; their bumps by other processes are followed once a read succeeds", err, "versions", len(w.names))
}

// fetch reads the tokens, bounded by the store's own timeout only: a
// deadline of the watch's (its period, 100 ms, was one) that a slow
// moment of the store outlives is a failed call to the PostgreSQL store,
// and five in a row opened its breaker, sending the process's lookups to
// the database while the store answered every one of them within its
// Timeout (TestHostile23WatchPostgresStoreBreaker). A poll slower than
// the period only drops ticks.
func (w *versionWatch) fetch() ([]uint64, error) {
	// The key is never stored: only the tokens are read.
	_, tokens, err := w.c.store.Fetch(context.Background(), w.c.ns.Prefix()+"q:version-watch", w.names)
	if err == nil && len(tokens) != len(w.names) {
		err = errors.New("querycache: the store returned the wrong number of tokens")
	}
	return tokens, err
}

// lockWatches returns the watches that hold one of names, locked, or nil.
// The caller is about to bump names and calls bumped after: a poll that
// read the tokens between the bump and the watch's own read would call
// changed too, a second time, after the invalidation returned.
//
// Each watch reads the tokens first: a change since its last read is
// another process's, which the own change would hide (told as Own, the
// plugin takes it for its own DDL). The ordering this prevents
// (TestHostile36OtherProcessDDLHiddenByOwnBump), within one period:
//
//  1. process B adds a trigger and bumps the catalog's version
//  2. A writes, judged by the schema from before (its watch has not
//     polled): the invalidation misses what the trigger changed
//  3. A runs DDL of its own and bumps the catalog: its watch reads the
//     new token and tells it as Own; B's migration is never answered,
//     and what A wrote in 2 stays stale
//
// A bump of another process's that lands between this read and the own
// bump, of a name both replace, is still told as Own: the window is one
// round trip of the store instead of the watch's period.
func (c *Cache) lockWatches(names []string) []*versionWatch {
	var held []*versionWatch
	for _, w := range c.watchList() {
		if slices.ContainsFunc(names, func(n string) bool { return slices.Contains(w.names, n) }) {
			w.mu.Lock() // in the list's order, whoever locks: no deadlock
			w.before, w.blind = nil, false
			if tokens, err := w.fetch(); err == nil {
				w.before = differ(w.last, tokens)
				w.last = tokens
			} else {
				// (A stalled store: the bump may still get through, and
				// the read after it then shows another process's change
				// and this one's together.)
				w.blind = true
			}
			held = append(held, w)
		}
	}
	return held
}

// bumped follows this Cache's bump of names, which the watches held
// (lockWatches) hold: first what others changed before it; then, when it
// reached the store, each reads the tokens and calls changed with the
// own change, and with another one for the watched names the bump did
// not replace that changed meanwhile. An own bump that did not reach the
// store is kept pending and delivered later, and the polls see it then.
func (c *Cache) bumped(held []*versionWatch, names []string, delivered bool) {
	type call struct {
		w  *versionWatch
		ch VersionChange
	}
	var calls []call
	for _, w := range held {
		if w.before != nil {
			calls = append(calls, call{w, VersionChange{Changed: w.before}})
			w.before = nil
		}
		if delivered {
			tokens, err := w.fetch()
			if err != nil {
				tokens = nil // not known: the next read that succeeds calls changed
			}
			which := differ(w.last, tokens)
			var others []bool
			if w.last != nil {
				for i, changed := range which {
					if changed && !slices.Contains(names, w.names[i]) {
						if others == nil {
							others = make([]bool, len(w.names))
						}
						others[i] = true
					}
				}
			}
			if which == nil {
				which = make([]bool, len(w.names)) // the bump did reach the store
			}
			// When the read before the bump failed, what changed may be
			// another process's too: told as not Own (the plugin then
			// answers a catalog change, at worst by invalidating more)
			// (TestHostile38OtherProcessDDLHiddenWhenPreReadStalls).
			calls = append(calls, call{w, VersionChange{Changed: which, Own: !w.blind}})
			if others != nil && !w.blind {
				calls = append(calls, call{w, VersionChange{Changed: others}})
			}
			w.last = tokens
		} else if w.blind {
			w.last = nil // not known: the next read that succeeds tells every name, not Own
		}
		w.blind = false
		w.mu.Unlock()
	}
	for _, cl := range calls {
		cl.w.changed(cl.ch)
	}
}
