package querycache

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// A MemoryStore keeps its versions in a table of their own (versionTable),
// outside the otter cache that holds the entries, and an entry a Cache
// filled holds the cells of the versions it recorded (memDeps.cells): a hit
// reads its tokens through those pointers, without a lookup by name.
//
// Why not in otter with the entries, as before: a hit then had to read each
// version by name (three hash-table lookups per hit, the largest cost of a
// hit after GORM's own), because reading through cells hid the versions'
// use from otter's W-TinyLFU, which evicted them and with them the hot
// entries that recorded them (TestHostileCellsHotSetKeepsHitting). Here a
// version is never evicted while an entry holds it (its reference count),
// so there is nothing for the policy to misjudge; the entry's own otter
// read is what keeps it.
//
// The orderings that matter:
//
//   - A fill reads a version's token (by name) before it queries the
//     database; a write bumps the version by name after commit. The cell a
//     name maps to changes only when a cell no entry holds is swept; the
//     sweep kills it first (token 0, refs -1), and a fill whose put then
//     finds another cell, or another token, under the name keeps no cells:
//     its entry is only served through reads by name, which see the new
//     token and miss (C2: a fill that straddled a write is never served).
//   - An entry acquires its cells at put, after checking each still holds
//     the token the fill recorded. A swept cell cannot be acquired (refs
//     -1), so an entry never holds a cell its name no longer maps to: a
//     bump by name always reaches the cells hits read.
//   - A removed entry releases its cells (otter's deletion callback).
type versionTable struct {
	m       sync.Map     // nameKey(version name) -> *verCell
	n       atomic.Int64 // cells in m
	unheld  atomic.Int64 // cells in m no entry holds
	next    atomic.Int64 // sweep when unheld reaches it
	sweepMu sync.Mutex
	floor   int64         // the least next is set to
	round   atomic.Uint32 // sweeps started: a cell is born in one

	// swept counts the cells dropped by sweeps (reported as version
	// evictions: an entry stored with a plain Put, which holds no cells,
	// misses once its versions are dropped).
	swept atomic.Uint64

	// begun and ended count the creations of cells, begun before the
	// cell is put in m and ended after: a versionRef that found a name
	// missing while none was under way knows it still is while begun has
	// not moved (versionRef.bump).
	begun, ended atomic.Uint64

	seed maphash.Seed // namesDigest's
}

// verCell is one version's token.
type verCell struct {
	token atomic.Uint64 // 0 once swept: no entry records 0
	refs  atomic.Int64  // entries holding the cell; -1 once swept
	read  atomic.Bool   // read by name since the last sweep
	born  uint32        // the table's round when it was created (sweep)
}

// versionCost is what one version costs on the heap: the cell, and the
// sync.Map's entry and its share of the map's nodes (TestMemoryItemOverhead
// measures it). Every entry holding a version counts it in its weight: a
// version shared by many entries (the epoch, a table's) is counted many
// times, but no version an entry holds is ever left uncounted, whichever
// entries leave first.
const versionCost = 112

// nameKey is the table's key for a version name: a 64-bit digest, so that
// what the table keeps per version is fixed however long its name (names
// come from callers' keys). Two names with one digest would share a cell: a
// bump of either would invalidate what recorded the other (safe), and a
// lookup naming one could be served what was filled under the same key
// naming the other. With a random per-store seed that no caller sees, the
// chance is about n*n / 2^65 for n versions (2^-25 for a billion).
func (t *versionTable) nameKey(name string) uint64 { return maphash.String(t.seed, name) }

func newVersionTable(maxBytes int64) *versionTable {
	t := &versionTable{
		// Versions no entry holds are swept once there are this many
		// (or twice as many as the last sweep kept): 64 for the smallest
		// store, 4096 (under a MiB) at most.
		floor: min(4096, max(64, maxBytes/2048)),
		seed:  maphash.MakeSeed(),
	}
	t.next.Store(t.floor)
	return t
}

// cell returns the version name's live cell, creating it with a fresh
// random token if it is missing or swept. Two racing creators get the same
// cell. The cell is marked read: a sweep keeps it for one more round.
func (t *versionTable) cell(name string) *verCell {
	key := t.nameKey(name)
	for {
		if v, ok := t.m.Load(key); ok {
			c := v.(*verCell)
			if c.refs.Load() >= 0 {
				if !c.read.Load() {
					c.read.Store(true)
				}
				return c
			}
			// Swept (it is being deleted): replace it.
			fresh := t.newCell()
			t.begun.Add(1)
			swapped := t.m.CompareAndSwap(key, v, fresh)
			t.ended.Add(1)
			if swapped {
				t.created()
				return fresh
			}
			continue
		}
		fresh := t.newCell()
		t.begun.Add(1)
		v, loaded := t.m.LoadOrStore(key, fresh)
		t.ended.Add(1)
		if loaded {
			c := v.(*verCell)
			if c.refs.Load() >= 0 {
				return c
			}
			continue
		}
		t.n.Add(1)
		t.created()
		return fresh
	}
}

func (t *versionTable) newCell() *verCell {
	c := &verCell{born: t.round.Load()}
	c.token.Store(NewToken())
	c.read.Store(true)
	return c
}

// token returns the version name's token, creating the version if missing.
// It is never 0.
func (t *versionTable) token(name string) uint64 {
	for {
		if tok := t.cell(name).token.Load(); tok != 0 {
			return tok
		}
	}
}

// bump gives the version name a new token, if it exists. A missing version
// needs nothing: its next reader creates it with a new token, which no
// entry recorded.
func (t *versionTable) bump(name string) {
	if v, ok := t.m.Load(t.nameKey(name)); ok {
		v.(*verCell).bump()
	}
}

// A versionRef remembers, for one version name bumped again and again
// (a table's, by every write of one of its rows), what the last bump
// found: the name's cell, or that the name had no version. Either spares
// the next bump hashing the name and looking it up (a tenth of the
// engine's share of a write), a table written but never read included.
type versionRef struct {
	cell    atomic.Pointer[verCell]
	missing atomic.Uint64 // versionTable.begun + 1 when the name was found missing; 0: not known
}

// find returns name's live cell, or nil when the name has no version
// (nothing to bump: its next reader creates it with a new token, which no
// entry recorded), through r, which it updates. The caller bumps the cell.
//
// A live cell (refs >= 0) is the name's cell: a cell is replaced in m
// only once swept. Checked after the write committed, a live cell means
// no cell replaced it before the commit: a fill that read another cell's
// token began after that check, and reads what was committed.
//
// A name found missing stays missing while no creation of a cell has
// begun since (begun unchanged), and only if none was under way when it
// was looked up (begun == ended, read before the lookup). The orderings
// this keeps, for a fill F that creates the name's cell and a write W
// whose bump finds begun unchanged and skips:
//   - F's creation began after the read of begun that proved the name
//     missing: begun moved, and W looks the name up.
//   - F's creation began before it, and ended before the reads (begun ==
//     ended): the cell was in m when the lookup found none; impossible.
//   - F's creation was under way then: ended lagged begun, and nothing
//     was remembered.
//
// So a cell W skips was created after W's read of begun, after W's
// commit: the fill reads what W wrote.
func (r *versionRef) find(t *versionTable, name string) *verCell {
	if c := r.cell.Load(); c != nil && c.refs.Load() >= 0 {
		return c
	}
	if m := r.missing.Load(); m != 0 && m-1 == t.begun.Load() {
		return nil
	}
	ended := t.ended.Load()
	begun := t.begun.Load()
	v, ok := t.m.Load(t.nameKey(name))
	if !ok {
		if begun == ended {
			r.missing.Store(begun + 1)
		}
		return nil
	}
	c := v.(*verCell)
	r.cell.Store(c)
	return c
}

// joinedMax is the longest a+b joined hashes from a copy on the stack
// (one hash of the bytes, where writing the parts in turn into a
// maphash.Hash cost twice as much); longer names are hashed in parts.
const joinedMax = 128

// joined is the cell of the name a + b, or nil when it has no version,
// found without building the name on the heap: maphash of the bytes of a
// then b is that of the string a + b. The caller bumps the cell.
func (t *versionTable) joined(a, b string) *verCell {
	var key uint64
	if len(a)+len(b) <= joinedMax {
		var buf [joinedMax]byte
		n := copy(buf[:], a)
		n += copy(buf[n:], b)
		key = maphash.Bytes(t.seed, buf[:n])
	} else {
		var h maphash.Hash
		h.SetSeed(t.seed)
		h.WriteString(a)
		h.WriteString(b)
		key = h.Sum64()
	}
	if v, ok := t.m.Load(key); ok {
		return v.(*verCell)
	}
	return nil
}

// bump gives a live cell a new token; a swept cell stays swept.
func (c *verCell) bump() { c.bumpTo(NewToken()) }

// bumpTo gives a live cell the new token tok (never 0); a swept cell stays
// swept. Cells compare tokens one by one, never combined, so the versions
// of one change may share a token: each still differs from what its cell
// held (a repeat is as likely as any two random tokens agreeing).
func (c *verCell) bumpTo(tok uint64) {
	for {
		old := c.token.Load()
		if old == 0 || c.token.CompareAndSwap(old, tok) {
			return
		}
	}
}

// acquire takes a reference to the cell for an entry; it fails once the
// cell is swept.
func (t *versionTable) acquire(c *verCell) bool {
	for {
		r := c.refs.Load()
		if r < 0 {
			return false
		}
		if c.refs.CompareAndSwap(r, r+1) {
			if r == 0 {
				t.unheld.Add(-1)
			}
			return true
		}
	}
}

// release drops an entry's reference. It runs in otter's deletion
// callback, under a bucket lock: it only counts (the next creation sweeps).
func (t *versionTable) release(c *verCell) {
	if c.refs.Add(-1) == 0 {
		t.unheld.Add(1)
	}
}

// heldVersion is a version an entry holds: its cell and the token the
// entry recorded (a hit compares them without reading the entry's bytes).
type heldVersion struct {
	cell  *verCell
	token uint64
}

// hold returns the cells of names for an entry that recorded tokens (read
// by name before its fill), each acquired, in dst if it is long enough,
// and the heap bytes to count against the entry for them beyond dst; nil
// when a name's cell changed or holds another token since (the entry is
// stale, or about to be: it keeps no cells and is only ever checked by
// name).
func (t *versionTable) hold(names []string, tokens []uint64, dst []heldVersion) ([]heldVersion, uint64) {
	if len(names) != len(tokens) {
		return nil, 0
	}
	weight := uint64(versionCost * len(names))
	cells := dst[:0]
	if len(names) > cap(dst) {
		cells = make([]heldVersion, 0, len(names))
		weight += allocSize(16 * len(names))
	}
	cells = cells[:len(names)]
	for i, name := range names {
		v, ok := t.m.Load(t.nameKey(name))
		if ok {
			c := v.(*verCell)
			if c.token.Load() == tokens[i] && t.acquire(c) {
				if c.token.Load() == tokens[i] { // not bumped or swept meanwhile
					cells[i] = heldVersion{c, tokens[i]}
					continue
				}
				t.release(c)
			}
		}
		for _, h := range cells[:i] {
			t.release(h.cell)
		}
		return nil, 0
	}
	return cells, weight
}

// created counts a new cell, which no entry holds yet.
func (t *versionTable) created() {
	t.unheld.Add(1)
	t.maybeSweep()
}

// maybeSweep sweeps the versions no entry holds once there are enough of
// them, so that lookups that never fill (hostile keys, misses that store
// nothing) and entries that left cannot grow the table without bound: the
// versions no entry holds stay below twice what the last sweep kept, or
// twice the floor.
//
// A sweep walks the whole table. A small one runs on the caller (a miss,
// which is about to query the database); a large one on a goroutine of its
// own, so that no lookup waits for a walk of a large store's versions.
func (t *versionTable) maybeSweep() {
	unheld, next := t.unheld.Load(), t.next.Load()
	if unheld < next {
		return
	}
	if !t.sweepMu.TryLock() {
		// A sweep aside is walking. Lookups that create versions faster
		// than it walks would outgrow it (each round keeps what they
		// created, and a longer walk lets them create more): once the
		// versions no entry holds are well past the threshold, creators
		// wait for the walk, then sweep themselves if still needed.
		if unheld < 2*next+syncSweepMax {
			return
		}
		t.sweepMu.Lock()
		if t.unheld.Load() < t.next.Load() {
			t.sweepMu.Unlock()
			return
		}
	}
	if t.n.Load() > syncSweepMax {
		go func() {
			defer t.sweepMu.Unlock()
			t.sweep()
		}()
		return
	}
	defer t.sweepMu.Unlock()
	t.sweep()
}

// syncSweepMax is the largest table swept on the caller: a walk of 16384
// versions takes a few hundred microseconds.
const syncSweepMax = 16384

// sweep drops the versions no entry holds and no lookup read since the
// last sweep (a fill in flight read its versions: they are kept for it).
// A dropped cell is killed first (refs -1, token 0): it can no longer be
// acquired, and its name's next reader creates a new cell with a new token.
// The caller holds sweepMu.
func (t *versionTable) sweep() {
	round := t.round.Add(1) // cells created from now on are born in it
	var kept int64          // versions no entry holds, kept because they were read before the sweep

	t.m.Range(func(k, v any) bool {
		c := v.(*verCell)
		if c.read.Load() {
			c.read.Store(false) // kept this round; dropped next if unread
			if c.refs.Load() == 0 && c.born != round {
				kept++
			}
			return true
		}
		if c.refs.CompareAndSwap(0, -1) {
			c.token.Store(0)
			t.unheld.Add(-1)
			if t.m.CompareAndDelete(k, v) {
				t.n.Add(-1)
			}
			t.swept.Add(1)
		}
		return true
	})
	// The next sweep when the versions no entry holds have doubled over
	// what this one kept: what lookups created while it walked (a sweep
	// aside runs beside them) is not counted as kept, or a scan of
	// one-off names would raise the threshold on every sweep (it then
	// stays at twice what is created between two sweeps' starts).
	t.next.Store(max(t.floor, min(2*kept, maxNextFloors*t.floor)))
}

// maxNextFloors caps the sweep threshold at this many floors: with
// creators waiting past twice the threshold plus syncSweepMax, the versions
// no entry holds stay under 2 x 4 x 4096 + 16384 (about 5 MiB) for the
// largest floor. A workload that reads more versions than that without
// holding them sweeps more often (its versions are recreated, which only
// costs misses).
const maxNextFloors = 4

// namesDigest identifies a list of version names: an entry keeps the
// digest of the names its cells stand for, and a hit serves it only for a
// lookup of the same names (a Key of the same name may list other
// versions).
func (t *versionTable) namesDigest(epoch string, names []string) uint64 {
	var h maphash.Hash
	h.SetSeed(t.seed)
	var n [8]byte
	for i := -1; i < len(names); i++ {
		name := epoch
		if i >= 0 {
			name = names[i]
		}
		// Each name after its length: no two lists write the same bytes.
		binary.LittleEndian.PutUint64(n[:], uint64(len(name)))
		h.Write(n[:])
		h.WriteString(name)
	}
	return h.Sum64()
}
