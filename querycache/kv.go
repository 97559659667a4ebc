package querycache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"querycache.dev/keys"
)

// KV is the low-level API, Django's cache.get/set/add/delete/incr done the
// querycache way: values the application computes itself, under keys it
// names, on the cache's store, with versions and a prefix. A value may
// declare what it was computed from (DependsOn, DependsOnObject): it is
// then invalidated by the writes the GORM plugin sees, exactly like a
// cached query, with the same version tokens, so a value computed from
// models never goes stale.
//
// Where the values live: on the cache's store, except on a two-level
// store (TieredStore), where they live in its shared level only, never in
// process memory: a value changed by one process (Set, Incr, Delete) must
// not go on being served by another process's copy. Each operation there
// is one or two round trips to Redis (or PostgreSQL). The versions a value
// is stored against are still read through the two-level store, as the
// plugin's queries read them: a value computed from a query this process
// served from memory before a write's broadcast reached it is stored
// against the tokens that query saw, older than the shared level's, and is
// never served (stored against the shared level's new tokens, the old
// result would be served by every process until the next write).
//
// Get, Set, Delete and GetOrSet work on every store. Add, Incr, Decr,
// Touch and IncrVersion change a value atomically across processes: they
// need a store that implements Swapper (every store of this package
// does), and return ErrNotAtomic otherwise.
//
// A KV is safe for concurrent use. Create it with Cache.KV or NewKV.
type KV struct {
	c       *Cache
	st      Store   // where values live (see above)
	view    Store   // where the versions a value is stored against are read: the cache's store
	sw      Swapper // st, when it is one
	lease   Leaser  // st, when it is one and the cache takes leases
	prefix  string
	version int
	ttl     time.Duration
	codec   Codec
	flight  fillGroup // one fill per key in this process
}

// KVOptions configures a KV. The zero value is usable.
type KVOptions struct {
	// Prefix is put before every key, after the cache's namespace
	// (Django's KEY_PREFIX for one part of an application): up to 64
	// letters, digits, '_', '.' or '-'. Default: none.
	Prefix string
	// Version is the version of keys whose call gives none (Django's
	// VERSION). Values of one key under different versions are distinct.
	// Default 1.
	Version int
	// TTL is how long a value lives when its call gives no TTL. Default:
	// the cache's DefaultTTL.
	TTL time.Duration
	// Codec encodes the values of the typed helpers (Remember, GetAs,
	// SetAs, AddAs). Default: CBOR (see CBOR). Byte slices and strings
	// are stored as they are, whatever the codec.
	Codec Codec
}

// ErrNotFound is returned by Incr, Decr and IncrVersion for a key that
// holds no value (Django raises ValueError).
var ErrNotFound = errors.New("querycache: no value under this key")

// ErrNotAtomic is returned by the operations that need a store that can
// swap a value atomically (Swapper) on a store that cannot.
var ErrNotAtomic = errors.New("querycache: the store cannot change a value atomically (it does not implement Swapper)")

// NewKV returns the low-level API on c, or an error that says which option
// is wrong and how to fix it.
func NewKV(c *Cache, opts KVOptions) (*KV, error) {
	if c == nil {
		return nil, errors.New("querycache.NewKV: the cache is nil; pass the *Cache querycache.New returned")
	}
	if c.store == nil {
		return nil, errors.New("querycache.NewKV: the *Cache was not made by querycache.New (it has no store); pass the *Cache querycache.New returned")
	}
	if opts.Codec != nil {
		if v := reflect.ValueOf(opts.Codec); v.Kind() == reflect.Pointer && v.IsNil() {
			return nil, fmt.Errorf("querycache.NewKV: KVOptions.Codec is a nil %T; pass a codec value, or nil for CBOR", opts.Codec)
		}
	}
	if !keys.ValuePrefixOK(opts.Prefix) {
		return nil, fmt.Errorf("querycache.NewKV: KVOptions.Prefix %q is not allowed; use up to %d letters, digits, '_', '.' or '-'", opts.Prefix, keys.MaxPrefixLen)
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("querycache.NewKV: KVOptions.TTL is %v; use a positive duration, or 0 for the cache's DefaultTTL", opts.TTL)
	}
	if opts.Version == 0 {
		opts.Version = 1
	}
	if opts.TTL == 0 {
		opts.TTL = c.ttl
	}
	if opts.Codec == nil {
		opts.Codec = CBOR()
	}
	kv := &KV{c: c, st: c.store, view: c.store, prefix: opts.Prefix, version: opts.Version, ttl: opts.TTL, codec: opts.Codec}
	if t, ok := c.store.(sharedLeveler); ok {
		kv.st = t.sharedLevel()
	}
	kv.sw, _ = kv.st.(Swapper)
	if c.stamp.leaser != nil {
		kv.lease, _ = kv.st.(Leaser)
	}
	return kv, nil
}

// KV returns the cache's low-level API with the default options (no
// prefix, version 1, the cache's DefaultTTL, CBOR). It is created once.
func (c *Cache) KV() *KV {
	c.kvOnce.Do(func() {
		kv, err := NewKV(c, KVOptions{})
		if err != nil {
			panic(err) // the default options are valid
		}
		c.kv = kv
	})
	return c.kv
}

// KVOption adjusts one call of the low-level API.
type KVOption func(*kvCall)

type kvCall struct {
	ns      keys.Namespace
	ttl     time.Duration
	version int
	hasVer  bool
	deps    []string          // version names
	tables  []string          // the tables of deps (DependsOn, DependsOnObject)
	fixed   map[string]uint64 // tokens already read (DependsOnCapture)
	err     error
	// uncounted: bookkeeping (Bookkeeping): no hit, miss or store counted
	uncounted bool
	// own is the token of the value's own version read before a fill
	// (ownRead): the fill stores only if it is still current (ownCurrent).
	own     uint64
	ownRead bool
}

// Bookkeeping marks a Get or Set as the caller's own bookkeeping beside
// the values it caches, such as the page cache's list of the headers a
// URL's pages vary on: Stats counts no hit, miss or store for it, so that
// one cached page is one lookup there (it counted two: a hostile run,
// issue 8's fortieth session).
func Bookkeeping() KVOption {
	return func(o *kvCall) { o.uncounted = true }
}

// WithTTL sets how long the value stored by this call lives (Django's
// timeout). It must be positive.
func WithTTL(ttl time.Duration) KVOption {
	return func(o *kvCall) {
		if ttl <= 0 && o.err == nil {
			o.err = fmt.Errorf("querycache: WithTTL(%v); use a positive duration (Delete removes a value)", ttl)
		}
		o.ttl = ttl
	}
}

// WithVersion sets the key's version for this call (Django's version=).
func WithVersion(v int) KVOption {
	return func(o *kvCall) { o.version, o.hasVer = v, true }
}

// DependsOn declares that the value was computed from tables: any write
// the GORM plugin sees (or Cache.Invalidate is told of) to one of them
// invalidates it. Names are normalised as the plugin names tables
// ("public.Users" is "users").
func DependsOn(tables ...string) KVOption {
	return func(o *kvCall) {
		for _, t := range tables {
			name, err := keys.Table(t)
			if err != nil {
				if o.err == nil {
					o.err = fmt.Errorf("querycache: DependsOn(%q): %w", t, err)
				}
				continue
			}
			o.deps = append(o.deps, o.ns.TableVersion(name))
			o.tables = append(o.tables, name)
		}
	}
}

// DependsOnObject declares that the value was computed from one row of
// table, whose primary key is pk (one value per primary-key column, in the
// model's order): a write to that row, or a write to table whose rows are
// not known one by one (a batch UPDATE ... WHERE, raw SQL), invalidates
// it; writes to other rows do not.
func DependsOnObject(table string, pk ...any) KVOption {
	return func(o *kvCall) {
		name, err := keys.Table(table)
		if err != nil {
			if o.err == nil {
				o.err = fmt.Errorf("querycache: DependsOnObject(%q): %w", table, err)
			}
			return
		}
		o.tables = append(o.tables, name)
		parts := make([]string, len(pk))
		canonical := len(pk) > 0
		for i, v := range pk {
			s, ok := keys.PK(v)
			if !ok {
				canonical = false
				break
			}
			parts[i] = s
		}
		if !canonical {
			// No canonical form: depend on the whole table, which every
			// write to it replaces.
			o.deps = append(o.deps, o.ns.TableVersion(name))
			return
		}
		o.deps = append(o.deps, o.ns.ObjectVersion(name, keys.JoinPK(parts)), o.ns.BulkVersion(name))
	}
}

// CheckOptions returns the error a call with opts would return for them
// (a nil option, a TTL that is not positive, a name that spells no table,
// too many dependencies), or nil; and an error for a KV that NewKV did not
// make. It is for code that takes options once and uses them on every
// call (fragment.Register): the mistake is then reported where it is
// made, not by every call after it.
func (kv *KV) CheckOptions(opts ...KVOption) error {
	if kv == nil || kv.c == nil {
		return errors.New("querycache: the KV was not made by querycache.NewKV or Cache.KV")
	}
	_, err := kv.call(opts)
	return err
}

// ownCurrent reports whether the value's own version is still the one o
// read before its fill. A Delete or Set that returned while the fill ran
// bumped it; the compare-and-swap of the stored bytes alone let the older
// computation be stored once the store had evicted the Delete's marker or
// the Set's value meanwhile, served to every caller until it expired (a
// hostile run, issue 8's fortieth session: TestKVFillAfterEvictedDeleteNotStored).
// A version the store evicted reads as a new token: not current, nothing
// stored.
func (kv *KV) ownCurrent(ctx context.Context, name string, o kvCall) bool {
	if !o.ownRead {
		return true
	}
	t, err := kv.ownToken(ctx, name)
	return err == nil && t == o.own
}

// call applies opts in the cache's namespace.
func (kv *KV) call(opts []KVOption) (kvCall, error) {
	o := kvCall{ns: kv.c.ns, ttl: kv.ttl, version: kv.version}
	for i, opt := range opts {
		if opt == nil {
			// A nil KVOption panicked in the caller's request.
			return o, fmt.Errorf("querycache: KV option %d of %d is nil; leave it out, or pass one such as querycache.DependsOn(\"users\")", i+1, len(opts))
		}
		opt(&o)
	}
	if o.err != nil {
		return o, o.err
	}
	o.ttl = min(o.ttl, maxKVTTL)
	if len(o.deps) > 1 {
		slices.Sort(o.deps)
		o.deps = slices.Compact(o.deps)
	}
	if len(o.deps) > maxKVDeps {
		return o, fmt.Errorf("querycache: a value depends on %d versions; at most %d", len(o.deps), maxKVDeps)
	}
	return o, nil
}

// name is the store key of key for this call.
func (kv *KV) name(key string, o kvCall) string {
	return kv.c.ns.Value(kv.prefix, o.version, key)
}

// A value as stored, the payload of an entry (entry.go), whose tokens are
// those of the epoch and then of every dependency:
//
//	magic 'K', format 1
//	kind      byte: kindBytes (the caller's bytes) or kindCodec
//	n         uvarint, then n dependency names, each a uvarint length
//	          and its bytes, sorted
//	value     the rest
//
// The dependency names are kept so that Get, which is not told what the
// value depends on, can check them. Like entries, values are decoded
// strictly: anything else is a miss.
const (
	kvMagic    = 'K'
	kvFormat   = 1
	kindBytes  = 0
	kindCodec  = 1
	maxKVDeps  = 256
	maxDepName = 4096
)

type kvValue struct {
	kind  byte
	deps  []string
	value []byte
}

func encodeKV(kind byte, deps []string, value []byte) []byte {
	n := 3 + binary.MaxVarintLen64 + len(value)
	for _, d := range deps {
		n += binary.MaxVarintLen64 + len(d)
	}
	b := make([]byte, 0, n)
	b = append(b, kvMagic, kvFormat, kind)
	b = binary.AppendUvarint(b, uint64(len(deps)))
	for _, d := range deps {
		b = binary.AppendUvarint(b, uint64(len(d)))
		b = append(b, d...)
	}
	return append(b, value...)
}

var errCorruptKV = errors.New("querycache: corrupt low-level value")

// decodeKV parses a payload. value aliases b.
func decodeKV(b []byte) (kvValue, error) {
	var v kvValue
	if len(b) < 4 || b[0] != kvMagic || b[1] != kvFormat || b[2] > kindCodec {
		return v, errCorruptKV
	}
	v.kind = b[2]
	b = b[3:]
	n, w := binary.Uvarint(b)
	if w <= 0 || n > maxKVDeps || w != uvarintLen(n) {
		return v, errCorruptKV
	}
	b = b[w:]
	if n > 0 {
		v.deps = make([]string, n)
	}
	for i := range v.deps {
		l, w := binary.Uvarint(b)
		if w <= 0 || l == 0 || l > maxDepName || w != uvarintLen(l) || uint64(len(b)-w) < l {
			return kvValue{}, errCorruptKV
		}
		v.deps[i] = string(b[w : w+int(l)])
		if i > 0 && v.deps[i] <= v.deps[i-1] {
			return kvValue{}, errCorruptKV // one encoding: sorted, no duplicates
		}
		b = b[w+int(l):]
	}
	v.value = b
	return v, nil
}

// sharedLeveler is a store with a level in process memory in front of a
// shared one (TieredStore, and any store embedding it): the low-level
// API keeps its values in the shared level only (see KV).
type sharedLeveler interface {
	sharedLevel() Store
}

func (t *TieredStore) sharedLevel() Store { return t.l2 }
