package querycache

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
)

// MemoryOptions configures a MemoryStore.
type MemoryOptions struct {
	// MaxBytes bounds what the store holds: entries (key, value), each with
	// what the Go heap spends on it beyond those bytes (see itemOverhead)
	// and the versions (tokens) it holds, each counted with every entry
	// that holds it. The least useful entries are evicted first; a version
	// is kept while an entry holds it. Versions no entry holds (read by
	// lookups that did not fill) are kept outside the budget while lookups
	// read them, and dropped once unread for a sweep round: at most twice
	// what the last sweep kept, or 64 to 4096 (by MaxBytes), about 112
	// bytes each. A dropped version comes back as a new random token, which
	// invalidates whatever recorded the old one. 0 means 64 MiB.
	MaxBytes int64
	// MaxVersions is ignored: versions are counted in MaxBytes with the
	// entries that hold them.
	//
	// Deprecated: versions are bounded by MaxBytes (see above). A negative
	// value is still reported as an error.
	MaxVersions int
}

// minMemoryBytes is the smallest MaxBytes accepted: a few items. A
// smaller budget is a unit mistake (64 meant as MiB).
const minMemoryBytes = 4 << 10

// itemOverhead is what otter and Go spend on one item beyond its key and
// value bytes: the node (key and value headers, queue links, weight and
// frequency fields) rounded to its size class, its slot in the hash table,
// and its share of the frequency sketch (up to 16 bytes). Measured with
// TestMemoryItemOverhead: 87 to 97 bytes per item beyond the key on amd64
// (Go 1.26, otter 2.4) depending on how full the hash table is, plus the
// sketch.
const itemOverhead = 128

// memItem is an entry. Versions are kept apart (versions.go).
type memItem struct {
	data []byte   // the value
	word uint64   // the deadline (see monoNow)
	deps *memDeps // an entry a Cache stored (putFor): its versions' cells
}

// The store checks an entry's deadline itself instead of using otter's
// expiry: with expiry, every read of the cache (then four versions and an entry
// per hit) reads the clock, which doubled the cost of a hit. An expired
// entry is deleted when it is next read, and is evicted like any other
// item meanwhile: it stays within MaxBytes.
var monoBase = time.Now()

// monoNow returns monotonic nanoseconds since the process started.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// MemoryStore is a Store in process memory, built on otter (W-TinyLFU
// eviction weighted by bytes, lock-free reads). It is
// the embedded default and the first level in front of a shared store.
type MemoryStore struct {
	items    *otter.Cache[string, memItem]
	versions *versionTable
	err      error
	max      uint64 // MaxBytes: an entry weighing more is refused (ErrTooLargeForStore)

	// evicted counts the entries otter evicted to stay within MaxBytes
	// (Evictions).
	evicted atomic.Uint64
}

// NewMemoryStore returns a MemoryStore. An invalid option is reported by
// querycache.New (and by Err), so this constructor can be used inline.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	s := &MemoryStore{}
	switch {
	case opts.MaxBytes < 0:
		s.err = fmt.Errorf("querycache: MemoryOptions.MaxBytes is %d; use a positive byte count, or 0 for the 64 MiB default", opts.MaxBytes)
		return s
	case opts.MaxVersions < 0:
		s.err = fmt.Errorf("querycache: MemoryOptions.MaxVersions is %d; leave it 0 (versions are bounded by MaxBytes)", opts.MaxVersions)
		return s
	case opts.MaxBytes > 0 && opts.MaxBytes < minMemoryBytes:
		// Each item costs itemOverhead beyond its bytes: such a store
		// cannot hold a lookup's versions, and every lookup would miss.
		s.err = fmt.Errorf("querycache: MemoryOptions.MaxBytes is %d bytes, too small to hold an entry and its versions; it counts bytes (%d << 20 is %d MiB), use at least %d, or 0 for the 64 MiB default", opts.MaxBytes, opts.MaxBytes, opts.MaxBytes, minMemoryBytes)
		return s
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 64 << 20
	}
	s.max = uint64(opts.MaxBytes)
	s.versions = newVersionTable(opts.MaxBytes)
	s.items = otter.Must(&otter.Options[string, memItem]{
		MaximumWeight: uint64(opts.MaxBytes),
		Weigher:       weigh,
		Executor:      inline,
		// Called on deletions only (evictions, replacements, deletes):
		// nothing on the read path.
		OnAtomicDeletion: s.countEviction,
	})
	return s
}

// countEviction releases a removed entry's versions and counts the
// entries otter evicted for space; those the store replaced or deleted
// itself (expired entries) are not evictions. It runs under the item's
// bucket lock, so it only adds.
func (s *MemoryStore) countEviction(e otter.DeletionEvent[string, memItem]) {
	d := e.Value.deps
	if d != nil {
		for _, h := range d.held {
			s.versions.release(h.cell)
		}
	}
	if !e.WasEvicted() {
		return
	}
	s.evicted.Add(1)
	if d != nil {
		for _, t := range d.tables { // its filling cache's counters
			t.evictions.Add(1)
		}
	}
}

// Evictions returns how many entries the store has evicted to stay within
// MaxBytes since it was created, and how many versions it dropped (versions
// no entry held and no lookup read for a while: one comes back as a new
// token, which invalidates what recorded the old one, such as an entry
// stored with a plain Put). Cache.Stats reports both.
func (s *MemoryStore) Evictions() (entries, versions uint64) {
	return s.evicted.Load(), s.versions.swept.Load()
}

// weigh is the number of heap bytes an item holds.
func weigh(key string, it memItem) uint32 {
	w := allocSize(len(key)) + allocSize(cap(it.data)) + itemOverhead
	if it.deps != nil {
		w += uint64(it.deps.weight)
	}
	return uint32(min(w, math.MaxUint32))
}

// allocSize bounds what the Go allocator spends on an object of n bytes:
// small objects are rounded up to a size class (at most 12.5% or 15 bytes
// more), large ones to whole 8 KiB pages.
func allocSize(n int) uint64 {
	switch {
	case n == 0:
		return 0
	case n <= 32<<10:
		return uint64(n + max(15, n/8))
	default:
		return uint64(n+8191) &^ 8191
	}
}

// inline runs otter's buffer maintenance on the calling goroutine. The
// default starts a goroutine per drain, which on a hot read path costs more
// than the (amortised, bounded) drain itself.
func inline(fn func()) { fn() }

// Err reports a configuration error of NewMemoryStore, or nil.
func (s *MemoryStore) Err() error { return s.err }

// Fetch implements Store. The returned value is shared: callers must not
// modify it.
func (s *MemoryStore) Fetch(_ context.Context, key string, versions []string) ([]byte, []uint64, error) {
	if s.err != nil {
		return nil, nil, s.err
	}
	tokens := make([]uint64, len(versions))
	for i, name := range versions {
		tokens[i] = s.versions.token(name)
	}
	var value []byte
	if key != "" {
		if it, ok := s.items.GetIfPresent(key); ok {
			if monoNow() < int64(it.word) {
				value = it.data
			} else {
				s.dropExpired(key, it.word)
			}
		}
	}
	return value, tokens, nil
}

// entry is the entry key for memHit: its value (shared) only when it is
// unexpired, with what putFor kept with it. It reads no version: the
// entry's cells hold them.
func (s *MemoryStore) entry(key string) ([]byte, *memDeps) {
	if s.err != nil {
		return nil, nil
	}
	if it, ok := s.items.GetIfPresent(key); ok && monoNow() < int64(it.word) {
		return it.data, it.deps
	}
	return nil, nil
}

// dropExpired deletes the entry key if it still has the deadline seen.
func (s *MemoryStore) dropExpired(key string, deadline uint64) {
	s.items.ComputeIfPresent(key, func(old memItem) (memItem, otter.ComputeOp) {
		if old.data != nil && old.word == deadline {
			return old, otter.InvalidateOp
		}
		return old, otter.CancelOp
	})
}

// Put implements Store.
func (s *MemoryStore) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	return s.put(key, value, ttl, nil)
}

// putFor is Put for an entry a Cache filled: the store gives the entry an
// Attachment (attachment.go), holds the cells of the versions it recorded (names,
// the epoch first, and their tokens read before the fill; versions.go) and
// keeps tables, the filling cache's (stats) counters of the tables it read,
// to count its eviction and hits against. It is unexported so that a Store
// wrapping a MemoryStore by embedding keeps its own Put in the path of
// every fill: the cache calls it only on a *MemoryStore it was given
// itself.
func (s *MemoryStore) putFor(key string, value []byte, ttl time.Duration, names []string, tokens []uint64, stats *counters, tables []*tableCounters) error {
	if s.err != nil {
		return s.err
	}
	if ttl <= 0 {
		return nil
	}
	d := &memDeps{stats: stats, tables: tables}
	weight := allocSize(int(unsafe.Sizeof(memDeps{})))
	if len(tables) > 0 {
		weight += allocSize(8 * len(tables))
	}
	if e, err := decodeEntryFrom(key, value, true); err == nil && len(names) > 0 {
		var w uint64
		if d.held, w = s.versions.hold(names, tokens, d.inline[:]); d.held != nil {
			weight += w
			d.names = s.versions.namesDigest(names[0], names[1:])
			d.expires, d.created, d.delta, d.payload = e.expires, e.created, e.delta, e.payload
		}
	}
	d.weight = uint32(min(weight, math.MaxUint32))
	err := s.put(key, value, ttl, d)
	if err != nil {
		for _, h := range d.held {
			s.versions.release(h.cell)
		}
	}
	return err
}

func (s *MemoryStore) put(key string, value []byte, ttl time.Duration, deps *memDeps) error {
	if s.err != nil {
		return s.err
	}
	if ttl <= 0 {
		return nil
	}
	if value == nil {
		value = []byte{} // the entry of an empty value is still present
	}
	it := memItem{data: value, deps: deps}
	if w := uint64(weigh(key, it)); w > s.max {
		// otter would drop it at once: refuse it, so that the cache
		// counts a refusal rather than a store (misconfig.go).
		return fmt.Errorf("%w (%d bytes with its overhead, MaxBytes %d)", ErrTooLargeForStore, w, s.max)
	}
	it.word = uint64(monoNow() + min(int64(ttl), math.MaxInt64/2))
	// The store keeps its own copy of the key: a key may share its bytes
	// with another string (keys.ObjectNames builds a lookup's key and
	// version in one allocation), and what it keeps is what weigh counts.
	s.items.Set(strings.Clone(key), it)
	return nil
}

// Bump implements Store. A version is bumped in its cell. A missing
// version needs nothing: its next reader creates it with a new token,
// which nothing recorded.
func (s *MemoryStore) Bump(_ context.Context, versions []string) error {
	if s.err != nil {
		return s.err
	}
	for _, name := range versions {
		s.versions.bump(name)
	}
	return nil
}

// Len returns the number of entries held (not counting versions), for
// tests and statistics. It walks the store.
func (s *MemoryStore) Len() int {
	if s.err != nil {
		return 0
	}
	n := 0
	for range s.items.All() {
		n++
	}
	return n
}

// Bytes returns the weight of everything the store holds, entries and
// versions, as counted against MaxBytes.
func (s *MemoryStore) Bytes() int64 {
	if s.err != nil {
		return 0
	}
	s.items.CleanUp()
	return int64(s.items.WeightedSize())
}

// Close implements Store.
func (s *MemoryStore) Close() error {
	if s.err != nil {
		return nil
	}
	s.items.StopAllGoroutines()
	return nil
}
