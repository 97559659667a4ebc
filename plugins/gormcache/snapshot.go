package gormcache

import (
	"bytes"
	"hash/maphash"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/maypok86/otter/v2"
	"gorm.io/gorm"
	"gorm.io/gorm/schema"
	"querycache.dev/querycache"
)

// Snapshots make hits cheap. Replaying cached rows through GORM's scanning
// costs about what the scan costs without the cache, so for the common
// destinations (a zero struct, a nil slice of structs) the plugin keeps, in
// process memory, what that scan produced from a given entry, and hands
// each caller a deep copy of it.
//
// A snapshot is a pure function of (entry payload, destination type,
// schema): it is used only when the engine has just validated the entry and
// its payload is byte for byte the one the snapshot was built from, so it
// is exactly what replaying would produce. The stored rows stay the truth.

type snapshotKey struct {
	// name is the entry key's hash (snapshotName), not the key itself:
	// comparing the key in the table read a cold copy of ~80 bytes on
	// every hit, and the key is only an index here, since a snapshot is
	// used only for the very payload it was built from (get). Two keys
	// that hash alike only take each other's place.
	name   uint64
	dest   reflect.Type
	schema *schema.Schema
	joins  string // the join aliases and relationship names GORM's scan resolves columns with
}

type snapshot struct {
	payload []byte        // the entry payload it was built from
	value   reflect.Value // the scanned value; never handed out, only copied
	rows    int64         // RowsAffected of the scan
	copy    copier
	weight  int64 // the memory the snapshot keeps (see weigh)
	adopted bool  // payload is the bytes a hit read (see get), not the fill's

	// key is what the snapshot is kept under; an attached snapshot is
	// checked against it (attached).
	key snapshotKey
	// The memory store's entry the snapshot is attached to (attach), and
	// whether it has left the table (then it must not stay attached, or
	// snapshots would outgrow SnapshotBytes).
	attachedTo atomic.Pointer[querycache.Attachment]
	evicted    atomic.Bool
}

type snapshots struct {
	c   *otter.Cache[snapshotKey, *snapshot]
	max int64 // the largest snapshot kept

	// What a destination type and schema allow, and how to copy them: per
	// plugin, so that a closed *gorm.DB's schemas are not kept.
	targets memo[targetKey, target]
	copiers copiers
}

type targetKey struct {
	t reflect.Type
	s *schema.Schema
}

type target struct {
	cp copier
	ok bool
}

// maxTargets bounds the destination types and schemas remembered.
const maxTargets = 1024

// snapshotOverhead is what a kept snapshot costs beyond its value and
// payload: the snapshot and key structs, the reflect.Value, otter's node.
const snapshotOverhead = 256

// snapshotShare is the fraction of SnapshotBytes one snapshot may take: a
// larger one would evict many others to make room for itself.
const snapshotShare = 8

func newSnapshots(maxBytes int64) *snapshots {
	if maxBytes <= 0 {
		return nil
	}
	s := &snapshots{
		max: maxBytes / snapshotShare,
		c: otter.Must(&otter.Options[snapshotKey, *snapshot]{
			MaximumWeight: uint64(maxBytes),
			Weigher: func(k snapshotKey, s *snapshot) uint32 {
				return uint32(min(s.weight+int64(len(k.joins)), math.MaxUint32))
			},
			Executor: inline,
			// Called on every removal and replacement, under the key's
			// lock: nothing on the read path.
			OnAtomicDeletion: func(e otter.DeletionEvent[snapshotKey, *snapshot]) { e.Value.detach() },
		}),
	}
	s.targets.max = maxTargets
	s.copiers.memo.max = maxCopierTypes
	return s
}

// weigh measures what keeping snap costs: the scanned value with all the
// memory it references (a struct's large array field, a Scanner's buffer,
// a map), the payload it holds alive, and a fixed overhead.
func (snap *snapshot) weigh() {
	snap.weight = memSize(snap.value) + int64(cap(snap.payload)) + snapshotOverhead
}

// inline runs otter's maintenance on the calling goroutine rather than a
// new goroutine per drain (cheaper on the hit path).
func inline(fn func()) { fn() }

// destType returns the destination type when the statement's destination
// allows a snapshot: a query (not Row/Rows) scanning into a zero struct or
// a nil slice of structs (or of pointers to structs), with a schema and no
// column mapping. What the type and schema allow is targetOf's.
func destType(db *gorm.DB) (reflect.Type, bool) {
	rv := db.Statement.ReflectValue
	if !rv.IsValid() || !rv.CanSet() || db.Statement.Schema == nil || len(db.Statement.ColumnMapping) > 0 {
		return nil, false
	}
	t := rv.Type()
	switch t.Kind() {
	case reflect.Struct:
	case reflect.Slice:
		elem := t.Elem()
		if elem.Kind() == reflect.Pointer {
			elem = elem.Elem()
		}
		if elem.Kind() != reflect.Struct {
			return nil, false
		}
	default:
		return nil, false
	}
	if !allZero(unsafe.Pointer(rv.UnsafeAddr()), t.Size()) {
		return nil, false // GORM merges into existing values; replay instead
	}
	return t, true
}

// allZero reports whether the n bytes at p are all zero: the destination
// holds no value GORM's scan would have kept. It is stricter than
// reflect.Value.IsZero (non-zero padding or a -0.0 field is not zero:
// such a destination is replayed, as any non-zero one), and reads only the
// destination: IsZero compares a struct with the runtime's zero buffer
// through the type's equality function, a buffer nothing else a hit
// touches (what that costs a hit is not measured: docs/PERFORMANCE.md).
func allZero(p unsafe.Pointer, n uintptr) bool {
	words := unsafe.Slice((*uint64)(p), n/8)
	for len(words) >= 4 {
		if words[0]|words[1]|words[2]|words[3] != 0 {
			return false
		}
		words = words[4:]
	}
	var acc uint64
	for _, w := range words {
		acc |= w
	}
	if n&7 != 0 { // else p+n is past the object, which -race's checkptr refuses
		for _, b := range unsafe.Slice((*byte)(unsafe.Add(p, n&^7)), n&7) {
			acc |= uint64(b)
		}
	}
	return acc == 0
}

// targetOf says whether values of t scanned with schema sch can be kept
// as snapshots (tg.ok: sch's scan does not depend on the caller's context,
// and the copier can copy t), and how to copy them. Remembered per type
// and schema.
func (s *snapshots) targetOf(t reflect.Type, sch *schema.Schema) target {
	k := targetKey{t, sch}
	tg, ok := s.targets.load(k)
	if !ok {
		tg.cp, tg.ok = s.copiers.copierFor(t)
		tg.ok = tg.ok && contextFree(sch)
		s.targets.store(k, tg)
	}
	return tg
}

// contextFree reports whether scanning into s (and the schemas of its
// relationships, which joins scan into) is independent of the caller's
// context. GORM passes the context to serializers; a custom one might use
// it (a per-tenant key, say), so schemas with serializers other than GORM's
// own are always replayed.
func contextFree(s *schema.Schema) bool {
	free := true
	check := func(s *schema.Schema) {
		for _, f := range s.Fields {
			switch f.Serializer.(type) {
			case nil, schema.JSONSerializer, schema.UnixSecondSerializer, schema.GobSerializer,
				*schema.JSONSerializer, *schema.UnixSecondSerializer, *schema.GobSerializer:
			default:
				free = false
			}
		}
	}
	check(s)
	for _, rel := range s.Relationships.Relations {
		if rel.FieldSchema != nil {
			check(rel.FieldSchema)
		}
	}
	return free
}

// snapshotSeed seeds the hash of entry keys in snapshot keys (in-process
// only: snapshots are never shared).
var snapshotSeed = maphash.MakeSeed()

// snapshotName is the entry key's part of a snapshot key.
func snapshotName(key string) uint64 { return maphash.String(snapshotSeed, key) }

// joinsKey names the statement's joins for the snapshot key.
func joinsKey(db *gorm.DB) string {
	if len(db.Statement.Joins) == 0 {
		return ""
	}
	var b strings.Builder
	for _, j := range db.Statement.Joins {
		b.WriteString(j.Name)
		b.WriteByte(0)
		b.WriteString(j.Alias)
		b.WriteByte(0)
	}
	return b.String()
}

// get returns the snapshot for key if it was built from payload.
func (s *snapshots) get(key snapshotKey, payload []byte) *snapshot {
	snap, ok := s.c.GetIfPresent(key)
	if !ok || len(snap.payload) != len(payload) {
		return nil
	}
	// The snapshot holds its payload alive, so an identical address means
	// identical bytes; otherwise compare them.
	if len(payload) == 0 || &snap.payload[0] == &payload[0] {
		return snap
	}
	if !bytes.Equal(snap.payload, payload) {
		return nil
	}
	if !snap.adopted {
		// A snapshot built on a miss holds the fill's payload, not the
		// bytes the store keeps (the entry's envelope is a copy): every hit
		// would compare the whole payload, and the snapshot would keep a
		// second copy alive. The first hit swaps in the stored bytes, once
		// (a shared store returns new bytes on every read: those keep
		// comparing).
		adopted := &snapshot{payload: payload, value: snap.value, rows: snap.rows, copy: snap.copy, weight: snap.weight, adopted: true, key: snap.key}
		s.c.Set(key, adopted)
		return adopted
	}
	return snap
}

// attached returns the snapshot attached to the memory store's entry at,
// when it was built for this destination type, schema and joins, from the
// very bytes the hit read. It is the hit's fast path: no lookup of its own.
func attached(at *querycache.Attachment, t reflect.Type, sch *schema.Schema, joins string, payload []byte) *snapshot {
	if at == nil {
		return nil
	}
	snap, _ := at.Load().(*snapshot)
	if snap == nil || snap.key.dest != t || snap.key.schema != sch || snap.key.joins != joins || !sameBytes(snap.payload, payload) {
		return nil
	}
	return snap
}

// sameBytes reports whether a and b are the same bytes in memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// attach attaches snap, which s keeps and which was built from the bytes
// of the memory store's entry at (the hit's own), to that entry. An
// attached snapshot is one s keeps: detach, run when s drops it, takes it
// off again. Either detach sees the attachment, or attach sees the snapshot
// evicted and takes it off itself.
func (s *snapshots) attach(at *querycache.Attachment, snap *snapshot, payload []byte) {
	if at == nil || !sameBytes(snap.payload, payload) || snap.evicted.Load() {
		return
	}
	snap.attachedTo.Store(at)
	at.Store(snap)
	if snap.evicted.Load() {
		at.CompareAndSwap(snap, (*snapshot)(nil))
	}
}

// detach runs when s drops snap (evicted for space, or replaced).
func (snap *snapshot) detach() {
	snap.evicted.Store(true)
	if at := snap.attachedTo.Load(); at != nil {
		at.CompareAndSwap(snap, (*snapshot)(nil))
	}
}

// put keeps snap unless it alone would take more than its share of the
// budget; it reports whether it did.
func (s *snapshots) put(key snapshotKey, snap *snapshot) bool {
	if snap.weight > s.max {
		return false
	}
	snap.key = key
	s.c.Set(key, snap)
	return true
}

// apply copies the snapshot into the statement's destination, as the scan
// would have filled it.
func (snap *snapshot) apply(db *gorm.DB) {
	if snap.copy == nil {
		db.Statement.ReflectValue.Set(snap.value)
	} else {
		snap.copy(db.Statement.ReflectValue, snap.value)
	}
	db.RowsAffected = snap.rows
}

// scanSnapshot scans res into a private value of type t, through GORM, and
// returns it as a snapshot; nil if the scan reported an error or found no
// rows (those go through the ordinary replay, which is cheap for them).
func scanSnapshot(db *gorm.DB, res *result, payload []byte, t reflect.Type, cp copier) *snapshot {
	if res.rows() == 0 {
		return nil
	}
	rows, err := replayRows(res)
	if err != nil {
		return nil
	}
	priv := reflect.New(t)
	stmt := db.Statement
	savedDest, savedRV, savedErr, savedRA := stmt.Dest, stmt.ReflectValue, db.Error, db.RowsAffected
	stmt.Dest, stmt.ReflectValue = priv.Interface(), priv.Elem()
	gorm.Scan(rows, db, 0)
	closeErr := rows.Close()
	failed := db.Error != savedErr || closeErr != nil
	snap := &snapshot{payload: payload, value: priv.Elem(), rows: db.RowsAffected, copy: cp}
	stmt.Dest, stmt.ReflectValue, db.Error, db.RowsAffected = savedDest, savedRV, savedErr, savedRA
	if failed {
		return nil
	}
	snap.weigh()
	return snap
}
