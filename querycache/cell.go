package querycache

import (
	"sync/atomic"
	"unsafe"
)

// A MemoryStore keeps each version's token in a cell that the entries
// recording it point to, so that a hit reads its versions without looking
// their names up, and a bump writes one word.
//
// The cell stands for its name only while the store's table holds it: the
// moment it leaves the table (evicted, or replaced by an entry stored
// under its name) it is killed, under the table's lock for that name, and a
// dead cell is never bumped back to life. So an entry's cell either is the
// table's current one, whose token a lookup by name would read, or reads
// 0, which no entry records (NewToken never returns it): the orderings a
// pointer held past its eviction could otherwise allow, each ends in a miss.
//
//   - a fill reads token t of cell C; C is evicted (killed); a write finds
//     no version to bump. The entry holds C, which reads 0: a miss.
//   - a write loads C from the table; C is evicted and killed; the write's
//     bump finds it dead and leaves it dead. A fill that read C before
//     reads 0 at its hit; a fill after finds a new cell under the name.
//   - an entry is stored with a cell taken by name at PutFor, which may be
//     newer than the one whose token the fill read: its token differs from
//     the one the entry recorded, a miss.
type verCell struct {
	token atomic.Uint64
}

// cellSize is what a cell costs on the heap (weigh).
const cellSize = int(unsafe.Sizeof(verCell{}))

func newCell() *verCell {
	c := &verCell{}
	c.token.Store(NewToken())
	return c
}

// load returns the cell's token, 0 when it is dead.
func (c *verCell) load() uint64 { return c.token.Load() }

// bump gives a live cell a new token; a dead cell stays dead.
func (c *verCell) bump() {
	t := NewToken()
	for {
		old := c.token.Load()
		if old == 0 || c.token.CompareAndSwap(old, t) {
			return
		}
	}
}

// kill marks the cell dead: it left the table.
func (c *verCell) kill() { c.token.Store(0) }

// memDeps is what a MemoryStore keeps with an entry stored with PutFor: the
// names of the versions it recorded (epoch first) and their cells, and the
// entry's Attachment.
//
// A hit reads it from memory the CPU has usually not touched since the
// fill, so it is laid out to be read in as few cache lines as possible: for
// the common entry (at most inlineDeps versions whose names fit in
// inlineNames bytes) the names, their ends and the cells sit in the struct
// itself, one allocation, instead of four.
type memDeps struct {
	attach Attachment
	joined string     // the names, one after another
	ends   []uint32   // where each name ends in joined
	cells  []*verCell // each name's cell
	weight uint64     // heap bytes, counted by weigh
	// tables are the counters of the tables the entry read, of the cache
	// that filled it (stats): its eviction is counted there, and so are
	// that cache's hits of it (no lookup of the counters by name).
	stats  *counters
	tables []*tableCounters

	endsIn  [inlineDeps]uint32
	cellsIn [inlineDeps]*verCell
	namesIn [inlineNames]byte
}

const (
	inlineDeps  = 4
	inlineNames = 96 // the epoch, a row's version and its table's bulk version: about 50 bytes with the default prefix
)

// newDeps takes the cells of names as the store holds them now. The names
// are copied into memory of the entry's own (see createVersion).
func (s *MemoryStore) newDeps(names []string) *memDeps {
	n := 0
	for _, name := range names {
		n += len(name)
	}
	d := &memDeps{}
	var buf []byte
	if n <= inlineNames {
		buf = d.namesIn[:0]
	} else {
		buf = make([]byte, 0, n)
		d.weight += allocSize(n)
	}
	if len(names) <= inlineDeps {
		d.ends, d.cells = d.endsIn[:len(names)], d.cellsIn[:len(names)]
	} else {
		d.ends, d.cells = make([]uint32, len(names)), make([]*verCell, len(names))
		d.weight += allocSize(4*len(names)) + allocSize(8*len(names))
	}
	for i, name := range names {
		buf = append(buf, name...)
		d.ends[i] = uint32(len(buf))
		d.cells[i] = s.cellOf(name)
	}
	d.joined = unsafe.String(unsafe.SliceData(buf), len(buf))
	// A live cell is counted with its version; the entry counts the 8
	// bytes (one size class, no rounding) each cell it holds would keep
	// alive once its version left the table.
	d.weight += allocSize(int(unsafe.Sizeof(memDeps{}))) + uint64(len(names)*cellSize)
	return d
}

// recorded reports whether the entry recorded exactly the versions a
// lookup asks for: epoch, then versions. A lookup of the same key with
// other versions reads them by name, as probe does.
func (d *memDeps) recorded(epoch string, versions []string) bool {
	if len(d.ends) != len(versions)+1 {
		return false
	}
	start := uint32(0)
	for i, end := range d.ends {
		v := epoch
		if i > 0 {
			v = versions[i-1]
		}
		if end-start != uint32(len(v)) || d.joined[start:end] != v {
			return false
		}
		start = end
	}
	return true
}

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
