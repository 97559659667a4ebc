package gormcache

import (
	"hash/maphash"
	"sync"
	"unsafe"

	"querycache.dev/querycache"
)

// hitMemo remembers, by a read's fingerprint, the key planFor derived for
// it, so that the next read with the fingerprint skips what derives the
// key from the statement: the digest, the primary-key extraction, the
// key's and versions' names (a new string each). The memory store then
// knows the key's versions list by its address (memHit), without
// digesting the names again. A key is remembered when a read under it
// was a hit: one-off reads do not churn the memo.
//
// It is looked up by what the fingerprint digests (keys.Builder.Bytes),
// hashed with a per-process seed and then compared whole: equal bytes are
// the same fingerprint, with no digest computed and no collision possible.
//
// Why a fingerprint's key can be reused: the fingerprint covers the SQL
// text, the bound values, the settings, the tenant, the dialect and the
// database (keyPrefix), so two reads with the same one read the same rows.
// What else planFor derives the key from is checked against the memo's
// entry: the tables (the inspection's own list, by identity: a mark's
// declared tables make a new list, and are never memoized) and the facts
// of the one table read (by identity: facts are never modified once
// published, and a catalog change makes new ones). Every refusal and
// bypass is decided before the memo is read. Two statements of one text
// can still differ in what planFor would derive (a Raw statement has no
// WHERE clause to take a primary key from): either key is a correct one
// for those rows (an object's versions or the table's), so either may
// serve them.
//
// The memo is bounded in bytes (what it holds: the fingerprint's bytes,
// the key's and versions' names), and keeps only fingerprints of a few
// hundred bytes: a read bound to large values is keyed as without it. It
// is sharded so that hits on two cores do not share a lock's cache line.
type hitMemo struct {
	shards [hitMemoShards]hitMemoShard
}

const (
	hitMemoShards = 64
	// hitMemoBytes bounds what all shards hold (each an equal part).
	hitMemoBytes = 4 << 20
	// hitMemoMaxFP is the longest fingerprint input kept: the digest of
	// the prefix (32 bytes) and a few values.
	hitMemoMaxFP = 512
	// hitMemoOverhead is what an entry weighs besides its strings' bytes:
	// the entry, its map slot, the headers.
	hitMemoOverhead = 160
)

type hitMemoShard struct {
	mu     sync.RWMutex
	m      map[uint64]*hitMemoEntry // by the hash of the bytes; one entry a hash
	bytes  int                      // what the entries weigh (under mu)
	admits uint64                   // new fingerprints offered while full (under mu)
	_      [16]byte                 // one shard per cache line
}

// hitMemoEntry is immutable once stored: a new entry replaces it. It is
// 64 bytes, one cache line, and its fingerprint and key name share one
// allocation (newHitMemoEntry): on a working set that does not stay in the
// CPU's caches each line a hit reads is a miss (TestHitMemoEntrySize).
type hitMemoEntry struct {
	bytes   *byte       // the fingerprint's bytes, then the key's name
	fpLen   uint32      // what the fingerprint digests (keys.Builder.Bytes)
	nameLen uint32      // the entry key's name
	tables  *string     // &tables[0] of the plan it was made for
	ntables uint32      // len(tables)
	weight  uint32      // what it counts for in the shard's bound
	facts   *tableFacts // the one table's facts (nil for several tables)
	vers    []string    // the engine never modifies a Key's Versions
}

// hitMemoEntrySize is hitMemoEntry's size (see hitMemoEntry).
const hitMemoEntrySize = 64

func (e *hitMemoEntry) fp() string { return unsafe.String(e.bytes, e.fpLen) }

func (e *hitMemoEntry) name() string {
	if e.nameLen == 0 {
		return "" // (a pointer past the allocation is not one to make)
	}
	return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(e.bytes), e.fpLen)), e.nameLen)
}

// newHitMemoEntry copies fp and the key's name into one allocation: a hit
// reads the one and then the other (the store hashes the name).
func newHitMemoEntry(fp string, k querycache.Key, f *tableFacts, w int) *hitMemoEntry {
	buf := make([]byte, len(fp)+len(k.Name))
	copy(buf[copy(buf, fp):], k.Name)
	return &hitMemoEntry{bytes: unsafe.SliceData(buf), fpLen: uint32(len(fp)), nameLen: uint32(len(k.Name)),
		tables: &k.Tables[0], ntables: uint32(len(k.Tables)), weight: uint32(w), facts: f, vers: k.Versions}
}

// matches reports whether e was made for a plan reading tables with facts f.
func (e *hitMemoEntry) matches(tables []string, f *tableFacts) bool {
	return int(e.ntables) == len(tables) && len(tables) > 0 && e.tables == &tables[0] && e.facts == f
}

var hitMemoSeed = maphash.MakeSeed()

// get returns the entry of the fingerprint of fp (its bytes), or nil.
func (h *hitMemo) get(fp []byte) *hitMemoEntry {
	hash := maphash.Bytes(hitMemoSeed, fp)
	s := &h.shards[hash%hitMemoShards]
	s.mu.RLock()
	e := s.m[hash]
	s.mu.RUnlock()
	if e == nil || e.fp() != string(fp) {
		return nil
	}
	return e
}

// put records that the plan of the fingerprint fp (its bytes; key k,
// tables, facts f) was served from the cache. A full shard takes a new
// fingerprint only one time in hitMemoAdmit, in place of arbitrary ones:
// when more fingerprints are hot than the memo holds, most hits then pay a
// read of it and not a write (their lookup is the general one, as without
// the memo).
func (h *hitMemo) put(fp string, k querycache.Key, f *tableFacts) {
	if len(k.Tables) == 0 || fp == "" || len(fp) > hitMemoMaxFP {
		return
	}
	w := hitMemoOverhead + len(fp) + len(k.Name)
	for _, v := range k.Versions {
		w += len(v) + 16
	}
	if w > hitMemoBytes/hitMemoShards/8 {
		return // a shard holds at least 8 of the largest
	}
	hash := maphash.String(hitMemoSeed, fp)
	s := &h.shards[hash%hitMemoShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m[hash]
	if old != nil && old.fp() == fp && old.matches(k.Tables, f) && old.name() == k.Name {
		return // a concurrent hit recorded it
	}
	if old != nil {
		s.bytes -= int(old.weight)
		delete(s.m, hash)
	} else if s.bytes+w > hitMemoBytes/hitMemoShards {
		s.admits++
		if s.admits%hitMemoAdmit != 0 {
			return
		}
	}
	for victim, e := range s.m {
		if s.bytes+w <= hitMemoBytes/hitMemoShards {
			break
		}
		s.bytes -= int(e.weight)
		delete(s.m, victim)
	}
	if s.m == nil {
		s.m = make(map[uint64]*hitMemoEntry)
	}
	s.m[hash] = newHitMemoEntry(fp, k, f, w)
	s.bytes += w
}

// hitMemoAdmit: a full shard admits one new fingerprint in this many.
const hitMemoAdmit = 8
