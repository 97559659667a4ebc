package querycache

import "sync/atomic"

// memDeps is what a MemoryStore keeps with an entry a Cache stored (putFor):
// its Attachment, the cells of its versions, and the counters of the
// tables it read in the cache that filled it (its eviction, and that
// cache's hits of it, are counted there without looking the counters up by
// name).
type memDeps struct {
	// Everything a hit reads, in the struct's three cache lines: it is
	// 192 bytes, a size class whose objects start on a line (a 1000-id
	// working set does not stay in the CPU's caches, and each line is a
	// miss; a test checks the size). The versions (in inline when they
	// fit), the entry decoded at put (so that a hit need not read the
	// entry's bytes), the counters, the attachment.
	held    []heldVersion // the versions it recorded, the epoch first (versions.go)
	expires int64
	created int64
	delta   int64
	payload []byte
	stats   *counters
	tables  []*tableCounters
	// named is the first element of the last Versions list found to be its
	// names (memHit): the same list again (a caller's memo of the key, a
	// query shape's list) is known by its address, without digesting the
	// names. The engine never modifies a Key's Versions; callers must not
	// either once they have passed them.
	named atomic.Pointer[string]
	// valid: a lookup with ValidOnce found the payload valid.
	valid  atomic.Bool
	weight uint32         // heap bytes, counted by weigh
	names  uint64         // the versions' names' digest (namesDigest)
	inline [3]heldVersion // held, for up to 3 versions (a row's: the epoch, the row, the table's bulk)
	attach Attachment
}

// memDepsSize is memDeps' size, a size class of the Go allocator (see
// memDeps).
const memDepsSize = 192

// An Attachment holds what a caller derived from one stored value (the GORM
// plugin keeps the rows it scanned from it), for as long as the store keeps
// that value: a value stored again comes with a new, empty Attachment, so
// whatever is attached was derived from exactly the bytes the hit returns.
// Only a MemoryStore gives attachments (Cache.LookupAttached), since a
// shared store's value is read anew on every hit. It is safe for concurrent
// use; every value stored in one must have the same concrete type.
type Attachment struct {
	v atomic.Value
}

// Load returns the attached value, or nil.
func (a *Attachment) Load() any { return a.v.Load() }

// Store attaches v (not nil).
func (a *Attachment) Store(v any) { a.v.Store(v) }

// CompareAndSwap attaches new if old is attached, and reports whether it
// did.
func (a *Attachment) CompareAndSwap(old, new any) bool { return a.v.CompareAndSwap(old, new) }
