package querycache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// kvRead is what a read of one key found.
type kvRead struct {
	raw   []byte // the bytes stored (nil: none), for a compare-and-swap
	e     entry
	v     kvValue
	names []string // the epoch and v.deps: the versions e's tokens are of
	// present: a value that may be served is there (decoded, unexpired,
	// every version it recorded current, none pending); alive: and it may
	// be served to this caller, whose DependsOn names no other versions.
	// Add and Delete ask whether a value is there, Get whether it is
	// theirs to serve.
	present, alive bool
	shown          shownVersion // the value's own version, read before the value
	// why is the miss reason (Miss.Reason) when not alive.
	why string
}

// read fetches the value stored under name and says whether it may be
// served. deps are the versions the caller expects it to depend on (its
// DependsOn options): when the stored value names the same ones, one round
// trip reads everything; otherwise a second one reads the versions the
// value recorded, which are the ones that count.
func (kv *KV) read(ctx context.Context, name string, deps []string) (kvRead, error) {
	var r kvRead
	// Whatever shows the value depends on its own version too, read first
	// (before the value: a change of the value written after it was read
	// is followed by a bump that makes the version read stale).
	shown, err := kv.shownVersion(ctx, name)
	if err != nil {
		return r, err
	}
	r.shown = shown
	epoch := kv.c.ns.Epoch()
	names := make([]string, 0, 1+len(deps))
	names = append(names, epoch)
	names = append(names, deps...)
	raw, tokens, err := kv.st.Fetch(ctx, name, names)
	if err != nil || len(raw) == 0 {
		r.why = MissAbsent
		return r, err // an empty value is none, for a swap too (Swapper)
	}
	r.raw = raw
	e, v, ok := kv.decode(name, raw)
	if !ok {
		r.why = MissCorrupt
		return r, nil
	}
	r.e, r.v = e, v
	if !slices.Equal(v.deps, deps) {
		names = append(names[:1], v.deps...)
		tokens = append(make([]uint64, 0, 1+len(v.deps)), tokens[0]) // not the store's slice: it may share it
		if len(v.deps) > 0 {
			_, more, err := kv.st.Fetch(ctx, "", v.deps)
			if err != nil {
				return r, err
			}
			tokens = append(tokens, more...)
		}
	}
	r.names = names
	now := kv.c.now()
	r.present = e.fresh(now, tokens) && !kv.c.pending.covers(names, epoch)
	r.alive = r.present
	if !r.present {
		r.why = MissStale
		if !e.fresh(now, tokens) {
			r.why = e.staleness(now)
		}
	}
	if len(deps) > 0 && !slices.Equal(v.deps, deps) {
		// The caller depends on versions the value did not record: it
		// cannot know they are unchanged since (GetOrSet does the same).
		r.alive = false
		r.why = MissStale
	}
	if r.alive {
		record(ctx, names, tokens) // what is served depends on them (capture.go)
		shown.record(ctx)
	}
	return r, nil
}

// decode parses a stored value (the entry, then its payload), counting
// one that does not decode as corrupt: a miss.
func (kv *KV) decode(name string, raw []byte) (entry, kvValue, bool) {
	e, err := decodeEntryAt(name, raw)
	if err != nil {
		kv.c.stats.corrupt.Add(1)
		return entry{}, kvValue{}, false
	}
	v, err := decodeKV(e.payload)
	if err != nil {
		kv.c.stats.corrupt.Add(1)
		return entry{}, kvValue{}, false
	}
	return e, v, true
}

// tombstone is what Delete (and IncrVersion, for the old version) leaves
// under a key: an entry expired from the start, read as absent.
func (kv *KV) tombstone(name string) []byte {
	return encodeEntry(entry{key: name, expires: 0, created: kv.c.now().UnixNano(), payload: encodeKV(kindBytes, nil, nil)})
}

// shownVersion is the value version (keys.Namespace.ValueVersion) of the
// value stored under name with its token, read when ctx carries a capture:
// what captures the value must be invalidated when it changes.
type shownVersion struct {
	name  string
	token uint64
}

func (kv *KV) shownVersion(ctx context.Context, name string) (shownVersion, error) {
	if captureFrom(ctx) == nil {
		return shownVersion{}, nil
	}
	t, err := kv.ownToken(ctx, name)
	if err != nil {
		return shownVersion{}, err
	}
	return shownVersion{kv.c.ns.ValueVersion(name), t}, nil
}

// ownToken reads the token of the value's own version, which a Set,
// Add, Delete or Incr of it replaces (changed).
func (kv *KV) ownToken(ctx context.Context, name string) (uint64, error) {
	_, t, err := kv.st.Fetch(ctx, "", []string{kv.c.ns.ValueVersion(name)})
	if err != nil {
		return 0, err
	}
	return t[0], nil
}

// ownTokenAt is ownToken, taken from s when a capture read it already.
func (kv *KV) ownTokenAt(ctx context.Context, name string, s shownVersion) (uint64, error) {
	if s.name != "" {
		return s.token, nil
	}
	return kv.ownToken(ctx, name)
}

func (s shownVersion) record(ctx context.Context) {
	if s.name != "" {
		record(ctx, []string{s.name}, []uint64{s.token})
	}
}

// changed replaces the value version of name after the value changed. Its
// failure is returned: a page that showed the old value could be served.
func (kv *KV) changed(ctx context.Context, names ...string) error {
	vs := make([]string, len(names))
	for i, n := range names {
		vs[i] = kv.c.ns.ValueVersion(n)
	}
	return kv.st.Bump(ctx, vs)
}

// entryFor encodes value as an entry depending on the epoch and deps,
// against their tokens read now, or given in fixed. It returns the entry and the names.
func (kv *KV) entryFor(ctx context.Context, name string, kind byte, value []byte, deps []string, fixed map[string]uint64, ttl time.Duration) ([]byte, []string, error) {
	names := make([]string, 0, 1+len(deps))
	names = append(names, kv.c.ns.Epoch())
	names = append(names, deps...)
	_, tokens, err := kv.view.Fetch(ctx, "", names)
	if err != nil {
		return nil, nil, err
	}
	for i, n := range names {
		if t, ok := fixed[n]; ok {
			tokens[i] = t // read by the work that computed the value
		}
	}
	now := kv.c.now()
	return kv.encode(name, kind, value, deps, tokens, now, ttl), names, nil
}

func (kv *KV) encode(name string, kind byte, value []byte, deps []string, tokens []uint64, created time.Time, ttl time.Duration) []byte {
	return encodeEntry(entry{
		key:     name,
		expires: created.Add(ttl).UnixNano(),
		created: created.UnixNano(),
		tokens:  tokens,
		payload: encodeKV(kind, deps, value),
	})
}

// check refuses what the cache would refuse to store.
func (kv *KV) check(value []byte) error {
	if kv.c.isClosed() {
		return ErrClosed
	}
	if kv.c.maxSize > 0 && len(value) > kv.c.maxSize {
		return fmt.Errorf("querycache: a value of %d bytes is over Options.MaxEntryBytes (%d)", len(value), kv.c.maxSize)
	}
	return nil
}

// put stores an entry, extending its versions where the store can.
func (kv *KV) put(ctx context.Context, name string, raw []byte, ttl time.Duration, names []string) error {
	if p, ok := kv.st.(versionedPutter); ok {
		return p.PutFor(ctx, name, raw, ttl, names)
	}
	return kv.st.Put(ctx, name, raw, ttl)
}

// failed counts and logs a store error of the low-level API and returns it.
func (kv *KV) failed(ctx context.Context, op string, err error) error {
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotAtomic) {
		return err
	}
	switch {
	case errors.Is(err, ErrTooLargeForStore):
		// A refusal, warned once, as the engine's own fills count it: as
		// a store error it showed a healthy store failing, with a Warn
		// line for every such value (a hostile run, issue 8's fortieth
		// session).
		kv.c.tooLargeForStore(ctx, err)
	case errors.Is(err, ErrStoreUnavailable):
		kv.c.stats.bypasses.add("store_unavailable")
	default:
		kv.c.stats.errors.Add(1)
		kv.c.warn(ctx, "querycache: low-level "+op+" failed", err)
	}
	return err
}

// lookupFailed is failed for a lookup that a store error makes query
// around the cache: a bypass, as the engine's lookups count one
// (store_unavailable's counted by failed, store_error's here), never a
// miss.
func (kv *KV) lookupFailed(ctx context.Context, op string, err error) error {
	if err = kv.failed(ctx, op, err); err != nil && !errors.Is(err, ErrStoreUnavailable) {
		kv.c.stats.bypasses.add("store_error")
	}
	return err
}

// Get returns the bytes stored under key if they may be served: present,
// unexpired, and nothing they depend on written since. A value stored by
// a typed helper comes back in its codec's encoding (use GetAs). The bytes
// are the caller's.
func (kv *KV) Get(ctx context.Context, key string, opts ...KVOption) ([]byte, bool, error) {
	v, ok, err := kv.get(ctx, key, opts)
	if !ok {
		return nil, false, err
	}
	return slices.Clone(v.value), true, nil
}

func (kv *KV) get(ctx context.Context, key string, opts []KVOption) (kvValue, bool, error) {
	o, err := kv.call(opts)
	if err != nil {
		return kvValue{}, false, err
	}
	if kv.c.isClosed() {
		return kvValue{}, false, ErrClosed
	}
	r, err := kv.read(ctx, kv.name(key, o), o.deps)
	if err != nil {
		return kvValue{}, false, kv.lookupFailed(ctx, "get", err)
	}
	if !r.alive {
		// What showed the value absent depends on its own version too: a
		// later Set, Add or Incr of the key bumps it. Recorded only for a
		// value that was served, a capture that read a miss was never
		// invalidated by the value's arrival (a hostile run, issue 8's
		// fortieth session: TestCapturedGetMissInvalidatedBySet).
		r.shown.record(ctx)
		if !o.uncounted {
			kv.c.stats.misses.Add(1)
			kv.c.stats.missReasons.add(r.why)
		}
		return kvValue{}, false, nil
	}
	if !o.uncounted {
		kv.c.stats.hits.Add(1)
	}
	return r.v, true, nil
}

// Set stores value under key, replacing what was there.
//
// A value computed from the database and stored with Set may be stale at
// once: if a write committed between the read and Set, Set records the
// versions after the write. Prefer GetOrSet or Remember for such values:
// they read the versions before computing.
func (kv *KV) Set(ctx context.Context, key string, value []byte, opts ...KVOption) error {
	return kv.set(ctx, key, kindBytes, value, opts)
}

func (kv *KV) set(ctx context.Context, key string, kind byte, value []byte, opts []KVOption) error {
	o, err := kv.call(opts)
	if err != nil {
		return err
	}
	if err := kv.check(value); err != nil {
		return err
	}
	name := kv.name(key, o)
	raw, names, err := kv.entryFor(ctx, name, kind, value, o.deps, o.fixed, o.ttl)
	if err == nil && kv.c.open.covers(o.tables) {
		return ErrUncommitted
	}
	if err == nil {
		err = kv.put(ctx, name, raw, o.ttl, names)
	}
	if err == nil {
		if !o.uncounted {
			kv.c.stats.stores.Add(1)
		}
		err = kv.changed(ctx, name)
	}
	return kv.failed(ctx, "set", err)
}

// kvRetries bounds the compare-and-swap loops: each lost race means
// another caller changed the value, which Add reads as present and Incr
// retries on; past this many, the key is too contended to wait.
const kvRetries = 64

// Add stores value under key only if it holds no value that may be served
// (absent, expired, or invalidated by a write), and reports whether it
// stored. Across every process sharing the store, of concurrent Adds of
// one absent key exactly one succeeds.
func (kv *KV) Add(ctx context.Context, key string, value []byte, opts ...KVOption) (bool, error) {
	return kv.add(ctx, key, kindBytes, value, opts)
}

func (kv *KV) add(ctx context.Context, key string, kind byte, value []byte, opts []KVOption) (bool, error) {
	o, err := kv.call(opts)
	if err != nil {
		return false, err
	}
	if err := kv.check(value); err != nil {
		return false, err
	}
	if kv.sw == nil {
		return false, ErrNotAtomic
	}
	name := kv.name(key, o)
	for range kvRetries {
		r, err := kv.read(ctx, name, o.deps)
		if err != nil {
			return false, kv.failed(ctx, "add", err)
		}
		if r.present { // whatever it depends on: Add never replaces a value that may be served
			return false, nil
		}
		raw, names, err := kv.entryFor(ctx, name, kind, value, o.deps, o.fixed, o.ttl)
		if err != nil {
			return false, kv.failed(ctx, "add", err)
		}
		if kv.c.open.covers(o.tables) {
			return false, ErrUncommitted
		}
		ok, err := kv.sw.CompareAndSwap(ctx, name, r.raw, raw, o.ttl, names)
		if err != nil {
			return false, kv.failed(ctx, "add", err)
		}
		if ok {
			kv.c.stats.stores.Add(1)
			return true, kv.failed(ctx, "add", kv.changed(ctx, name))
		}
	}
	return false, fmt.Errorf("querycache: Add of %q lost %d races in a row", key, kvRetries)
}

// tombstoneTTL is how long a deleted key's marker stays in the store: as
// long as it is there, a fill that read the key before the Delete cannot
// store its value over it (its compare-and-swap from what it read fails).
const tombstoneTTL = 10 * time.Minute

// maxKVTTL is the longest lifetime of a value, and of a query's entry
// (Key.TTL, Options.DefaultTTL): a longer TTL ("forever",
// time.Duration(math.MaxInt64)) is this one. Past about 236 years an
// expiry in nanoseconds since 1970 overflows.
const maxKVTTL = 10 * 365 * 24 * time.Hour

// Delete removes the value under key, and reports whether one that could
// be served was there. It works on every store: it overwrites the value
// with an expired marker, which every process reads as absent.
func (kv *KV) Delete(ctx context.Context, key string, opts ...KVOption) (bool, error) {
	o, err := kv.call(opts)
	if err != nil {
		return false, err
	}
	if kv.c.isClosed() {
		return false, ErrClosed
	}
	name := kv.name(key, o)
	r, err := kv.read(ctx, name, o.deps)
	if err != nil {
		return false, kv.failed(ctx, "delete", err)
	}
	// The marker is written even when the key holds nothing: a GetOrSet
	// that found it absent may be computing a value from data the caller
	// has just changed (write, then Delete: the cache-aside purge); its
	// swap from absent must fail. The value version is replaced for the
	// same reason: a page that showed that fill's value was not stored.
	tomb := kv.tombstone(name)
	if err := kv.st.Put(ctx, name, tomb, tombstoneTTL); err != nil {
		return false, kv.failed(ctx, "delete", err)
	}
	return r.present, kv.failed(ctx, "delete", kv.changed(ctx, name))
}

// DeleteMany deletes every key (Django's delete_many). It stops at the
// first error.
func (kv *KV) DeleteMany(ctx context.Context, keys []string, opts ...KVOption) error {
	for _, k := range keys {
		if _, err := kv.Delete(ctx, k, opts...); err != nil {
			return err
		}
	}
	return nil
}

// Touch gives the value under key a new lifetime of ttl from now, without
// changing it, and reports whether there was one (Django's touch).
func (kv *KV) Touch(ctx context.Context, key string, ttl time.Duration, opts ...KVOption) (bool, error) {
	if ttl <= 0 {
		return false, fmt.Errorf("querycache: Touch with ttl %v; use a positive duration (Delete removes a value)", ttl)
	}
	ttl = min(ttl, maxKVTTL)
	o, err := kv.call(opts)
	if err != nil {
		return false, err
	}
	if kv.c.isClosed() {
		return false, ErrClosed
	}
	if kv.sw == nil {
		return false, ErrNotAtomic
	}
	name := kv.name(key, o)
	for range kvRetries {
		r, err := kv.read(ctx, name, o.deps)
		if err != nil {
			return false, kv.failed(ctx, "touch", err)
		}
		if !r.alive {
			return false, nil
		}
		e := r.e
		e.expires = kv.c.now().Add(ttl).UnixNano()
		ok, err := kv.sw.CompareAndSwap(ctx, name, r.raw, encodeEntry(e), ttl, r.names)
		if err != nil {
			return false, kv.failed(ctx, "touch", err)
		}
		if ok {
			return true, nil
		}
	}
	return false, fmt.Errorf("querycache: Touch of %q lost %d races in a row", key, kvRetries)
}

// ErrUncommitted is returned by Set and Add of a value that depends on
// what a transaction of this process has written and not committed yet
// (Cache.HoldWrites): it may have been computed from rows that are never
// committed. Store it after the transaction ends.
var ErrUncommitted = errors.New("querycache: the value depends on writes of a transaction that has not ended")

// ErrNotInteger is returned by Incr and Decr for a value that is not an
// integer.
var ErrNotInteger = errors.New("querycache: the value is not an integer")

// Incr adds delta to the integer stored under key and returns the result,
// atomically across every process sharing the store: concurrent
// increments never count once. The value keeps its lifetime and what it
// depends on. A key holding no value gives ErrNotFound (store a value
// first, with Set or Add: Django's incr does the same); a value that is
// not an integer (decimal text, or an integer stored by SetAs) gives
// ErrNotInteger, and a result beyond int64 an error.
func (kv *KV) Incr(ctx context.Context, key string, delta int64, opts ...KVOption) (int64, error) {
	o, err := kv.call(opts)
	if err != nil {
		return 0, err
	}
	if kv.c.isClosed() {
		return 0, ErrClosed
	}
	if kv.sw == nil {
		return 0, ErrNotAtomic
	}
	name := kv.name(key, o)
	for range kvRetries {
		r, err := kv.read(ctx, name, o.deps)
		if err != nil {
			return 0, kv.failed(ctx, "incr", err)
		}
		if !r.alive {
			return 0, ErrNotFound
		}
		n, err := kv.integer(r.v)
		if err != nil {
			return 0, err
		}
		if delta > 0 && n > math.MaxInt64-delta || delta < 0 && n < math.MinInt64-delta {
			return 0, fmt.Errorf("querycache: Incr of %q: %d + %d overflows int64", key, n, delta)
		}
		n += delta
		payload, err := kv.encodeInteger(r.v, n)
		if err != nil {
			return 0, err
		}
		e := r.e
		e.payload = payload
		ttl := time.Duration(e.expires - kv.c.now().UnixNano())
		if ttl <= 0 {
			return 0, ErrNotFound // expired just now
		}
		ok, err := kv.sw.CompareAndSwap(ctx, name, r.raw, encodeEntry(e), ttl, r.names)
		if err != nil {
			return 0, kv.failed(ctx, "incr", err)
		}
		if ok {
			return n, kv.failed(ctx, "incr", kv.changed(ctx, name))
		}
	}
	return 0, fmt.Errorf("querycache: Incr of %q lost %d races in a row", key, kvRetries)
}

// Decr subtracts delta from the integer stored under key (see Incr).
func (kv *KV) Decr(ctx context.Context, key string, delta int64, opts ...KVOption) (int64, error) {
	if delta == math.MinInt64 {
		return 0, fmt.Errorf("querycache: Decr by %d overflows int64", delta)
	}
	return kv.Incr(ctx, key, -delta, opts...)
}

func (kv *KV) integer(v kvValue) (int64, error) {
	if v.kind == kindBytes {
		n, err := strconv.ParseInt(string(v.value), 10, 64)
		if err != nil {
			return 0, ErrNotInteger
		}
		return n, nil
	}
	var n *int64 // a CBOR null or undefined leaves it nil: not an integer
	if err := kv.codec.Unmarshal(v.value, &n); err != nil || n == nil {
		return 0, ErrNotInteger
	}
	return *n, nil
}

func (kv *KV) encodeInteger(v kvValue, n int64) ([]byte, error) {
	if v.kind == kindBytes {
		return encodeKV(kindBytes, v.deps, strconv.AppendInt(nil, n, 10)), nil
	}
	b, err := kv.codec.Marshal(n)
	if err != nil {
		return nil, err
	}
	return encodeKV(kindCodec, v.deps, b), nil
}

// IncrVersion moves the value of key from its version (the call's, or
// the KV's) to that version plus delta, and returns the new version
// (Django's incr_version): the value keeps its lifetime and dependencies,
// and the old version no longer holds it. A key holding no value gives
// ErrNotFound.
func (kv *KV) IncrVersion(ctx context.Context, key string, delta int, opts ...KVOption) (int, error) {
	o, err := kv.call(opts)
	if err != nil {
		return 0, err
	}
	if kv.c.isClosed() {
		return 0, ErrClosed
	}
	if delta > 0 && o.version > math.MaxInt-delta || delta < 0 && o.version < math.MinInt-delta {
		return 0, fmt.Errorf("querycache: IncrVersion of %q: version %d + %d overflows", key, o.version, delta)
	}
	if kv.sw == nil {
		return 0, ErrNotAtomic
	}
	old := kv.name(key, o)
	nv := o.version + delta
	o.version = nv
	moved := kv.name(key, o)
	// The old version is retired first, by a compare-and-swap from what
	// was read (an Incr that landed in between makes it fail: read again),
	// and only then is the value installed under the new one. Copying
	// first, as before, let a retry copy the old value again over the new
	// version after another caller's Incr of the new version had returned
	// (TestHostile26IncrVersionLosesNoIncrement). Between the two
	// steps the key is briefly absent under both versions: an Incr then
	// reports ErrNotFound, never a count that is later lost.
	for range kvRetries {
		r, err := kv.read(ctx, old, o.deps)
		if err != nil {
			return 0, kv.failed(ctx, "incr_version", err)
		}
		if !r.alive {
			return 0, ErrNotFound
		}
		ttl := time.Duration(r.e.expires - kv.c.now().UnixNano())
		if ttl <= 0 {
			return 0, ErrNotFound
		}
		if delta == 0 {
			return nv, nil
		}
		ok, err := kv.sw.CompareAndSwap(ctx, old, r.raw, kv.tombstone(old), tombstoneTTL, nil)
		if err != nil {
			return 0, kv.failed(ctx, "incr_version", err)
		}
		if !ok {
			continue
		}
		// The value under its new name is sealed with that name: an
		// entry's checksum covers the key it is stored under (entry.go).
		e := r.e
		e.key = moved
		raw := encodeEntry(e)
		// Over whatever the new version holds, as Django's incr_version
		// sets it: a write to it that lands before this swap is ordered
		// before the move, and the swap is tried again from it (after
		// kvRetries lost races, a plain put: the value must not be lost).
		installed := false
		for range kvRetries {
			m, err := kv.read(ctx, moved, nil)
			if err != nil {
				return 0, kv.failed(ctx, "incr_version", err)
			}
			if installed, err = kv.sw.CompareAndSwap(ctx, moved, m.raw, raw, ttl, r.names); err != nil {
				return 0, kv.failed(ctx, "incr_version", err)
			}
			if installed {
				break
			}
		}
		if !installed {
			if err := kv.put(ctx, moved, raw, ttl, r.names); err != nil {
				return 0, kv.failed(ctx, "incr_version", err)
			}
		}
		return nv, kv.failed(ctx, "incr_version", kv.changed(ctx, old, moved))
	}
	return 0, fmt.Errorf("querycache: IncrVersion of %q lost %d races in a row", key, kvRetries)
}
