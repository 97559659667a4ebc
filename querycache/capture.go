package querycache

import (
	"context"
	"sync"
	"sync/atomic"
)

// Capture collects what a piece of work read from the cache while its
// context carried it: the version names of every cached query served or
// filled (by the GORM plugin) and of every low-level value read, each with
// the token it had when it was read. A page or a template fragment built
// by that work depends on exactly those versions: stored against those
// tokens (DependsOnCapture), it is invalidated by the first write to
// anything it showed, with no TTL wait and no key to delete by hand.
//
// Why the tokens as read, not as they are when the page is stored: a write
// that commits while the handler runs, after one of its queries read a
// version, must leave the page stale (DESIGN.md, C1). Two reads of one
// version that saw different tokens make the work untracked
// ("versions_changed"): it mixed two states (a write came between them, or
// one read was served from a two-level store's memory before a broadcast
// reached it, while another read the shared level).
//
// Reads that went to the database without the cache (a query not marked
// cacheable, one inside a transaction, one made while an invalidation
// was undelivered) are not tracked: Untracked counts them, and a page
// cache should then not store the page (plugins/httpcache refuses).
//
// A Capture is safe for concurrent use. Captures nest: work captured
// inside another capture's context is recorded in both, so a page that
// embeds a cached fragment depends on what the fragment read.
type Capture struct {
	parent *Capture

	mu        sync.Mutex
	index     map[string]int // name -> position in names
	names     []string
	tokens    []uint64
	untracked []string // reasons, the first few
	nUntrack  int
	dirty     bool // a read inside a transaction (UncommittedRead)
	// The names read again with another token (versions_changed), and
	// whether a version went unrecorded (too_many_versions): what
	// KV.readCurrent checks besides Versions.
	laterNames []string
	overflow   bool
}

type captureKey struct{}

// captures counts the captures made by WithCapture (ever) and the ones
// the low-level API's fills hold now (scopedCapture): while it is zero,
// the read path does not look for one in the context (one atomic load
// instead of a context walk per hit). A fill's own capture must not open
// the gate for good: every hit of the process would pay the walk after
// the first GetOrSet miss.
var captures atomic.Int64

// maxCaptured bounds what one capture records: past it, the work read so
// many versions that storing its result against them would cost more
// than it saves; it is counted as untracked.
const maxCaptured = maxKVDeps

// WithCapture returns a context that records, in the returned Capture,
// what is read from any Cache with it (see Capture).
func WithCapture(ctx context.Context) (context.Context, *Capture) {
	captures.Add(1)
	c := &Capture{parent: captureFrom(ctx)}
	return context.WithValue(ctx, captureKey{}, c), c
}

// scopedCapture is WithCapture for work whose end the caller knows (a
// fill): done closes the gate it opened. Reads made with the context after
// done are not recorded, which nothing needs: the work has ended.
func scopedCapture(ctx context.Context) (context.Context, *Capture, func()) {
	captures.Add(1)
	c := &Capture{parent: captureFrom(ctx)}
	var once sync.Once
	return context.WithValue(ctx, captureKey{}, c), c, func() { once.Do(func() { captures.Add(-1) }) }
}

func captureFrom(ctx context.Context) *Capture {
	if captures.Load() == 0 || ctx == nil {
		return nil
	}
	c, _ := ctx.Value(captureKey{}).(*Capture)
	return c
}

// record adds names with their tokens (read now, or recorded by the value
// served) to the context's captures.
func record(ctx context.Context, names []string, tokens []uint64) {
	for c := captureFrom(ctx); c != nil; c = c.parent {
		c.add(names, tokens)
	}
}

func (c *Capture) add(names []string, tokens []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.index == nil {
		c.index = make(map[string]int, len(names))
	}
	for i, n := range names {
		if i >= len(tokens) {
			break
		}
		if at, ok := c.index[n]; ok {
			if c.tokens[at] != tokens[i] {
				// Two reads saw two states of one version: a write came
				// between them, or one read came from a process's memory
				// a broadcast has not reached yet. The work mixed them;
				// no set of tokens stands for what it showed.
				c.untrackLocked("versions_changed")
				if len(c.laterNames) < maxCaptured {
					c.laterNames = append(c.laterNames, n)
				} else {
					c.overflow = true
				}
			}
			continue
		}
		if len(c.names) >= maxCaptured {
			c.untrackLocked("too_many_versions")
			c.overflow = true
			return
		}
		c.index[n] = len(c.names)
		c.names = append(c.names, n)
		c.tokens = append(c.tokens, tokens[i])
	}
}

// Untracked records, in every capture ctx carries, that something was read
// without the cache for reason ("not_cacheable", "transaction", ...): the
// work's result depends on data no version stands for. The GORM plugin
// calls it for each such query.
func Untracked(ctx context.Context, reason string) {
	for c := captureFrom(ctx); c != nil; c = c.parent {
		c.mu.Lock()
		c.untrackLocked(reason)
		c.mu.Unlock()
	}
}

// UncommittedRead records, in every capture ctx carries, that something
// was read inside a transaction: what the work computed may include writes
// that are never committed, so it must not be cached at all, even by
// GetOrSet and Remember, which store values computed from untracked reads
// on the strength of their declared dependencies (DESIGN.md, C3). The
// GORM plugin calls it for each read it makes inside a transaction.
func UncommittedRead(ctx context.Context) {
	for c := captureFrom(ctx); c != nil; c = c.parent {
		c.mu.Lock()
		c.dirty = true
		c.untrackLocked("transaction")
		c.mu.Unlock()
	}
}

// Capturing reports whether ctx carries a Capture: callers skip the work
// of saying what they read when nothing records it.
func Capturing(ctx context.Context) bool { return captureFrom(ctx) != nil }

// Uncommitted reports whether the work read inside a transaction
// (UncommittedRead).
func (c *Capture) Uncommitted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirty
}

func (c *Capture) untrackLocked(reason string) {
	c.nUntrack++
	if len(c.untracked) < 8 {
		c.untracked = append(c.untracked, reason)
	}
}

// Untracked returns how many reads were made without the cache, and the
// reasons of the first few.
func (c *Capture) Untracked() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nUntrack, append([]string(nil), c.untracked...)
}

// Versions returns the version names recorded, with the token each had
// when first read.
func (c *Capture) Versions() (names []string, tokens []uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...), append([]uint64(nil), c.tokens...)
}

// everyRead returns the versions recorded with the token each was first
// read with, the names also read with another token (versions_changed),
// and false when a version went unrecorded (too many).
func (c *Capture) everyRead() (names []string, tokens []uint64, twice []string, complete bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...), append([]uint64(nil), c.tokens...), append([]string(nil), c.laterNames...), !c.overflow
}

// Len returns the number of versions recorded.
func (c *Capture) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.names)
}
