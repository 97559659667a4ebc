package gormcache

import (
	"bytes"
	"context"
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"gorm.io/gorm"
)

// SharedResults lets a hit on a slice of plain structs hand the caller the
// cached rows themselves instead of a copy of them, the way IdentityCache
// hands out read-only records. The application promises that no code
// modifies a slice filled from the cache by a marked query: not its
// elements' fields, not their order (sort.Slice sorts in place), not
// through a pointer to an element. Appending is allowed: the slice's
// capacity is its length, so append copies.
//
// A list hit then costs about half as much (the copy of 50 rows, their
// allocation and their collection are most of a copying hit; see the
// README's benchmark). Single rows (First, Take into a struct) are copied
// either way, being the caller's own struct.
//
// The promise is checked: before handing the rows out, every hit compares
// them with a byte copy taken when they were cached. When they differ, some
// code broke the promise; the hit and every later one are served from the
// stored entry (copies, as without the option), the rows are dropped, the
// warning is logged once and the refusal "shared_result_modified" counted.
// Callers that received the rows between the modification and its
// detection saw it: that is what the promise is for.
//
// Only slices of structs whose fields are plain data (numbers, strings,
// time.Time, arrays of those) are shared, read by a statement without
// Preload into a model without an AfterFind hook (both write into the
// rows GORM returns). Other destinations are copied as without the option.
//
// GORM scans into a non-empty destination slice's own memory. Under this
// option the plugin's queries (Find, First, FindInBatches...) give such a
// destination a new slice instead, so reusing a variable is safe there;
// Scan, ScanRows and queries on a *gorm.DB without this plugin cannot be
// seen: never pass them a slice a hit returned.
func SharedResults() Option {
	return func(p *Plugin) {
		p.share.opt = true
		p.share.on.Store(true)
	}
}

// sharing is the state of SharedResults.
type sharing struct {
	opt    bool        // the option was given: slices handed out may be shared
	on     atomic.Bool // the option, until a caller was seen to break the promise
	warned sync.Once
}

// unshareDest gives a query scanning into a non-empty slice of structs a
// nil slice instead: GORM would scan into the slice's own array, which may
// be rows a hit shared (TestSharedResultsReusedDestination). It returns
// the slice replaced, to put back if the query fails before scanning.
func unshareDest(db *gorm.DB) (reflect.Value, bool) {
	rv := db.Statement.ReflectValue
	if rv.Kind() != reflect.Slice || rv.Cap() == 0 || rv.Type().Elem().Kind() != reflect.Struct || !rv.CanSet() {
		return reflect.Value{}, false
	}
	old := reflect.New(rv.Type()).Elem()
	old.Set(rv)
	rv.SetZero()
	return old, true
}

// sharedModifiedWarning is logged once when a hit finds shared rows changed.
const sharedModifiedWarning = "gormcache: rows a hit shared under gormcache.SharedResults() were modified by the application (a field assigned, the slice sorted in place, an AfterFind-like callback); from now on hits hand out copies (refusal \"shared_result_modified\"). Remove SharedResults, or find the code that modifies slices returned by cached queries"

// shares reports whether db's hit may hand out the snapshot's rows: the
// option is on and nothing after the query writes into them.
func (p *Plugin) shares(db *gorm.DB) bool {
	return p.share.on.Load() && len(db.Statement.Preloads) == 0 && !db.Statement.Schema.AfterFind
}

// keepPristine prepares snap, a slice of plain structs, to be shared: its
// capacity cut to its length (a caller's append copies instead of writing
// past the end into the shared array), and a byte copy of its elements
// kept to check them against.
func (snap *snapshot) keepPristine() {
	n := snap.value.Len()
	if n == 0 {
		return
	}
	snap.value = snap.value.Slice3(0, n, n)
	snap.pristine = bytes.Clone(elemBytes(snap.value))
}

// intact reports whether the shared rows are still the bytes they were
// cached as. Plain structs hold no pointer but a string's and a
// time.Location's, which nothing modifies in place: the elements' bytes
// are the rows.
func (snap *snapshot) intact() bool {
	return bytes.Equal(snap.pristine, elemBytes(snap.value))
}

// elemBytes is the memory of a slice's elements, read in place. The
// pointers among them (strings') are only compared, never followed.
func elemBytes(v reflect.Value) []byte {
	n := v.Len() * int(v.Type().Elem().Size())
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(v.UnsafePointer()), n)
}

// useSnapshot fills db's destination from snap: the rows themselves when
// share, else a copy. It returns false, and drops snap, when snap was
// built to be shared and its rows have been modified since: the statement
// is then replayed from the entry's bytes, which no caller holds.
func (p *Plugin) useSnapshot(db *gorm.DB, snap *snapshot, share bool) bool {
	if snap.pristine == nil {
		snap.apply(db)
		return true
	}
	if snap.broken.Load() || !snap.intact() {
		p.sharedModified(snap)
		return false
	}
	if share {
		db.Statement.ReflectValue.Set(snap.value)
		db.RowsAffected = snap.rows
		return true
	}
	snap.apply(db)
	return true
}

// sharedModified handles a shared snapshot found modified: sharing stops
// for the plugin, and the snapshot is dropped (other snapshots built to be
// shared go on being checked on every use, so those the same code modified
// are dropped in turn).
func (p *Plugin) sharedModified(snap *snapshot) {
	if snap.broken.Swap(true) {
		return
	}
	p.share.on.Store(false)
	snap.detach()
	p.snaps.c.Invalidate(snap.key)
	p.cache.CountRefusal("shared_result_modified")
	p.share.warned.Do(func() { p.w.log.Warn(context.Background(), "%s", sharedModifiedWarning) })
}
