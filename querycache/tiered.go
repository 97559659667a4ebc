package querycache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
	"querycache.dev/keys"
)

// TieredOptions configures a TieredStore. The zero value is usable: every
// field documents its default.
type TieredOptions struct {
	// L1 bounds the first level (MemoryOptions.MaxBytes; default 64 MiB).
	// Entries and version tokens share the budget.
	L1 MemoryOptions
	// Strict checks the versions in Redis on every L1 hit (one small round
	// trip, no payload), so C1 holds across processes. Default false: L1
	// hits cost no round trip and another process may serve a result late
	// by the broadcast delay.
	Strict bool
	// PingInterval is how often the subscription is health-checked when
	// idle: a subscription that stops answering is detected within it (a
	// closed connection at once). Default: 1s.
	PingInterval time.Duration
	// L1VersionTTL is how long a version token read from Redis is trusted
	// in L1 without a broadcast (belt and braces: a broadcast lost in a
	// way nothing detected is bounded by it). Default: 1 minute.
	L1VersionTTL time.Duration
	// Logger receives subscription losses and recoveries, and undecodable
	// broadcasts, at Warn level. nil logs nothing.
	Logger *slog.Logger
}

// TieredStore is a two-level store: process memory (L1) in front of a
// RedisStore (L2), for several processes sharing one Redis; or, made by
// NewTieredPostgresStore, in front of a PostgresStore, with the broadcast
// carried by LISTEN/NOTIFY instead of pub/sub (pgstore_tiered.go). What
// follows says Redis; the PostgreSQL variant keeps the same rules.
//
// L1 holds entries (the envelopes exactly as stored in Redis: the engine
// checks their tokens and expiry) and version tokens read from Redis. A
// lookup whose versions and entry are all in L1 makes no network call.
// Invalidations are written to Redis and broadcast on a Redis pub/sub
// channel (prefix + "qc:invalidate") in the same round trip; every
// TieredStore subscribed to it drops those versions from its L1.
//
// Consistency: the writing process never serves a result older than its
// own write once Bump returned (its L1 is dropped before and after the
// write reaches Redis). Another process may serve its L1 copy until the
// broadcast reaches it: that is the broadcast delay (TestBroadcastDelay
// measures it: on one host with a local Redis, about 0.5 ms at p99 after
// the writer's Bump returned). With Strict set, every L1
// hit reads its versions from Redis, and C1 holds across processes as
// with a RedisStore alone.
//
// Anything that may have lost broadcasts is an epoch change: while the
// subscription is down (a read error, or a ping unanswered within
// PingInterval) L1 is neither served nor filled, and when it is back L1 is
// emptied; L2's recovery (its breaker closing) also empties L1. Until the
// first subscription is confirmed every lookup goes to Redis.
//
// Classic PUBLISH is broadcast to every node of a Redis Cluster, so one
// subscription on any node hears every invalidation; with a
// *redis.ClusterClient the versions are replaced first and the message
// published in a second round trip, because the client sends a pipeline's
// commands to different nodes in parallel and the message could otherwise
// arrive before the new tokens are readable. (Sharded SPUBLISH would need
// one subscription per shard; it is not used.)
type TieredStore struct {
	l2   tieredL2
	opts TieredOptions
	err  error

	l1      *otter.Cache[string, l1Item]
	seed    maphash.Seed
	stripes [tieredStripes]tieredStripe
	// state is generation<<1 | subscribed. It changes only with every
	// stripe locked (clearL1), so a fill that checks it under one stripe
	// lock cannot interleave with a clear.
	state atomic.Uint64

	mu       sync.Mutex // guards channels, sub, started, closed
	channels []string
	chans    atomic.Pointer[[]string] // channels, for Bump without the lock
	sub      *tieredSub               // the subscription loop's current one
	started  atomic.Bool
	closed   bool
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	closeErr sync.Once

	hits, broadcasts, undecodable, losses atomic.Int64
	// evicted and evictedVersions count what L1 evicted for space.
	evicted, evictedVersions atomic.Uint64
	serverChanges            int64 // a Redis L2's, as last seen by the subscription loop

	// Test hooks, set before the store is used.
	afterL2     func() // between Fetch's L2 call and its L1 fill
	onBroadcast func() // after a received message was applied
}

// tieredL2 is a TieredStore's second level: a shared store whose
// invalidations reach every TieredStore in front of it through a
// broadcast. RedisStore (pub/sub, tiered_redis.go) and PostgresStore
// (LISTEN/NOTIFY, pgstore_tiered.go) implement it. Leases are optional:
// the TieredStore takes them through the second level when it is a
// Leaser, and fills without one otherwise.
type tieredL2 interface {
	Store
	Err() error
	PutFor(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string) error
	bindNamespace(ns keys.Namespace)
	bindMaxEntry(n int)
	OnRecover(fn func())
	onRecoverFor(owner any, fn func())
	dropRecover(owner any)
	// channelFor returns the broadcast channel of a name (a key prefix +
	// tieredChannel), as the second level spells it.
	channelFor(name string) string
	// bumpAndBroadcast replaces versions and announces their names on
	// every channel, ordered so that a receiver that reads a version
	// after the announcement reads the new token.
	bumpAndBroadcast(ctx context.Context, versions, channels []string) error
	// listen subscribes to chans and reports to t until sub is stopped or
	// the subscription must be replaced: t.subscribed(sub) once every
	// channel is confirmed (no L1 before that), t.lost(err) when the
	// subscription may have missed a broadcast, t.apply(msg) for each
	// message (in the encodeBroadcast format; anything else empties L1).
	listen(t *TieredStore, sub *tieredSub, chans []string)
}

// tieredStripes is the number of invalidation generation counters (and
// fill locks); a version name uses the one its hash selects.
const tieredStripes = 256

type tieredStripe struct {
	mu  sync.Mutex
	gen atomic.Uint64
	_   [48]byte // one cache line each: stripes are bumped from several goroutines
}

// l1Item is an entry or a version token in L1. (MemoryStore's memItem has
// no room for the time a token was read, which L1VersionTTL needs, nor for
// the digest of an entry's tokens.)
type l1Item struct {
	data []byte // an entry's envelope; nil marks a version
	word uint64 // an entry's deadline (monoNow); a version's token
	aux  uint64 // an entry's tokenDigest; a version's read time (monoNow)
}

// tieredChannel is the broadcast channel's name after the prefix.
const tieredChannel = "qc:invalidate"

// NewTieredStore returns a TieredStore in front of l2, which it owns:
// Close closes l2 too (not l2's client). A nil l2, an l2 with a
// configuration error, or an invalid option is reported by querycache.New
// (and by Err), so the constructor can be used inline.
//
// The subscription starts when a Cache binds the store (querycache.New),
// or at the store's first use.
func NewTieredStore(l2 *RedisStore, opts TieredOptions) *TieredStore {
	if l2 == nil {
		return &TieredStore{err: errors.New("querycache: NewTieredStore got a nil *RedisStore; pass querycache.NewRedisStore(client, querycache.RedisOptions{})")}
	}
	return newTiered(l2, opts)
}

// newTiered returns a TieredStore in front of any second level.
func newTiered(l2 tieredL2, opts TieredOptions) *TieredStore {
	t := &TieredStore{l2: l2, seed: maphash.MakeSeed(), done: make(chan struct{})}
	switch {
	case l2.Err() != nil:
		t.err = prefixed("querycache: NewTieredStore's second level: ", l2.Err()) // one prefix (misconfig.go)
		return t
	case opts.L1.MaxBytes < 0:
		t.err = fmt.Errorf("querycache: TieredOptions.L1.MaxBytes is %d; use a positive byte count, or 0 for the 64 MiB default", opts.L1.MaxBytes)
		return t
	case opts.L1.MaxBytes > 0 && opts.L1.MaxBytes < minMemoryBytes:
		t.err = fmt.Errorf("querycache: TieredOptions.L1.MaxBytes is %d bytes, too small to hold an entry and its versions; it counts bytes (%d << 20 is %d MiB), use at least %d, or 0 for the 64 MiB default", opts.L1.MaxBytes, opts.L1.MaxBytes, opts.L1.MaxBytes, minMemoryBytes)
		return t
	case opts.L1.MaxVersions < 0:
		t.err = fmt.Errorf("querycache: TieredOptions.L1.MaxVersions is %d; leave it 0 (versions are counted in MaxBytes)", opts.L1.MaxVersions)
		return t
	case opts.PingInterval < 0:
		t.err = fmt.Errorf("querycache: TieredOptions.PingInterval is %v; use a positive duration, or 0 for 1s", opts.PingInterval)
		return t
	case opts.L1VersionTTL < 0:
		t.err = fmt.Errorf("querycache: TieredOptions.L1VersionTTL is %v; use a positive duration, or 0 for 1 minute", opts.L1VersionTTL)
		return t
	}
	if opts.L1.MaxBytes == 0 {
		opts.L1.MaxBytes = 64 << 20
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = time.Second
	}
	if opts.L1VersionTTL == 0 {
		opts.L1VersionTTL = time.Minute
	}
	t.opts = opts
	t.l1 = otter.Must(&otter.Options[string, l1Item]{
		MaximumWeight: uint64(opts.L1.MaxBytes),
		Weigher:       weighL1,
		Executor:      inline,
		// Deletions only (evictions, replacements, invalidations):
		// nothing on the read path.
		OnAtomicDeletion: t.countEviction,
	})
	t.ctx, t.cancel = context.WithCancel(context.Background())
	// L2's breaker closing means Redis was away: the prober replaces the
	// epoch there, and broadcasts may have been lost meanwhile (another
	// process's, or ours if only publishing failed). Registered before
	// any Cache registers its own, so L1 is empty before the Cache
	// delivers what it kept.
	l2.OnRecover(func() { t.clearL1(keepSub) })
	// L2 is closed by the last of its users, this store among them: a
	// cache on L2 itself (a worker's KV beside the two-level cache) lost
	// its prober and heartbeat when this store's Close closed L2 under
	// it (TestHostileL1TieredCloseClosesL2UnderPlainCache).
	acquireStore(l2)
	return t
}

// weighL1 is the number of heap bytes an L1 item holds (see weigh).
func weighL1(key string, it l1Item) uint32 {
	w := allocSize(len(key)) + allocSize(cap(it.data)) + itemOverhead + 8
	return uint32(min(w, math.MaxUint32))
}

// Err reports a configuration error of NewTieredStore, or nil.
func (t *TieredStore) Err() error { return t.err }

// closedStore reports whether Close has begun (checkStore).
func (t *TieredStore) closedStore() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// L2 returns the second level when it is a RedisStore, or nil.
func (t *TieredStore) L2() *RedisStore {
	r, _ := t.l2.(*RedisStore)
	return r
}

// PostgresL2 returns the second level when it is a PostgresStore, or nil.
func (t *TieredStore) PostgresL2() *PostgresStore {
	p, _ := t.l2.(*PostgresStore)
	return p
}

// Subscribed reports whether the invalidation subscription is confirmed
// and healthy. While it is not, L1 is neither served nor filled (except
// in Strict mode, whose hits read their versions from Redis).
func (t *TieredStore) Subscribed() bool { return t.state.Load()&1 == 1 }

// TieredStats are a TieredStore's counters since it was created.
type TieredStats struct {
	// L1Hits counts lookups answered from L1 with no round trip (in
	// Strict mode: with a round trip for the versions only).
	L1Hits int64
	// Broadcasts counts messages received on the channel, including this
	// process's own and undecodable ones.
	Broadcasts int64
	// Undecodable counts messages that could not be decoded; each emptied
	// L1.
	Undecodable int64
	// SubscriptionLosses counts the times a confirmed subscription was
	// lost (each emptied L1).
	SubscriptionLosses int64
	// Subscribed is Subscribed().
	Subscribed bool
	// L1Bytes is the weight L1 holds, as counted against L1.MaxBytes.
	L1Bytes int64
	// L1Evictions and L1VersionEvictions count the entries and version
	// tokens L1 evicted to stay within L1.MaxBytes (an evicted L1 item is
	// read from L2 again). Cache.Stats reports them as its Evictions and
	// VersionEvictions.
	L1Evictions, L1VersionEvictions uint64
}

// Stats returns the store's counters.
func (t *TieredStore) Stats() TieredStats {
	st := TieredStats{
		L1Hits:             t.hits.Load(),
		Broadcasts:         t.broadcasts.Load(),
		Undecodable:        t.undecodable.Load(),
		SubscriptionLosses: t.losses.Load(),
		Subscribed:         t.Subscribed(),
		L1Evictions:        t.evicted.Load(),
		L1VersionEvictions: t.evictedVersions.Load(),
	}
	if t.err == nil {
		t.l1.CleanUp()
		st.L1Bytes = int64(t.l1.WeightedSize())
	}
	return st
}

// countEviction counts the items L1 evicted for space; those replaced or
// invalidated are not evictions.
func (t *TieredStore) countEviction(e otter.DeletionEvent[string, l1Item]) {
	if !e.WasEvicted() {
		return
	}
	if e.Value.data != nil {
		t.evicted.Add(1)
	} else {
		t.evictedVersions.Add(1)
	}
}

// Evictions returns L1's evictions of entries and of versions (see
// TieredStats); Cache.Stats reports them.
func (t *TieredStore) Evictions() (entries, versions uint64) {
	return t.evicted.Load(), t.evictedVersions.Load()
}

// bindNamespace binds L2 to the namespace (its epoch) and subscribes to
// the namespace's channel. The Cache calls it from New.
func (t *TieredStore) bindNamespace(ns keys.Namespace) {
	if t.err != nil {
		return
	}
	t.l2.bindNamespace(ns)
	t.addChannel(t.l2.channelFor(ns.Prefix() + tieredChannel))
}

// bindMaxEntry passes the cache's entry limit to the Redis level.
func (t *TieredStore) bindMaxEntry(n int) {
	if t.err == nil {
		t.l2.bindMaxEntry(n)
	}
}

// OnRecover registers fn to run each time L2's breaker closes again.
func (t *TieredStore) OnRecover(fn func()) {
	if t.err != nil {
		return
	}
	t.l2.OnRecover(fn)
}

// onRecoverFor and dropRecover are OnRecover for a Cache (guarded.go).
func (t *TieredStore) onRecoverFor(owner any, fn func()) {
	if t.err == nil {
		t.l2.onRecoverFor(owner, fn)
	}
}

func (t *TieredStore) dropRecover(owner any) {
	if t.err == nil {
		t.l2.dropRecover(owner)
	}
}

// Fetch implements Store.
func (t *TieredStore) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	if t.err != nil {
		return nil, nil, t.err
	}
	t.start()
	if t.opts.Strict {
		return t.fetchStrict(ctx, key, versions)
	}
	st := t.state.Load()
	if st&1 == 0 {
		// Not subscribed: a broadcast could be missed, so L1 is not
		// trusted, and not filled (what we read could not be dropped).
		return t.l2.Fetch(ctx, key, versions)
	}
	now := monoNow()
	tokens := make([]uint64, len(versions))
	if t.l1Versions(versions, tokens, now) {
		if key == "" {
			t.hits.Add(1)
			return nil, tokens, nil
		}
		if it, ok := t.l1Entry(key, now); ok && it.aux == tokenDigest(tokens) {
			t.hits.Add(1)
			return it.data, tokens, nil
		}
		// No entry, or one recorded against other tokens (stale here;
		// another process may have stored a fresh one in Redis).
	}

	// The generation of every name's stripe is read before the L2 call;
	// a token is put in L1 only if its stripe's generation (and the
	// global state) is unchanged when it is put. The ordering this
	// prevents, where an invalidation overtakes our read:
	//
	//  1. we send GET-or-create v to Redis; it answers T1
	//  2. another process replaces v with T2 and publishes v
	//  3. our subscriber receives v and drops it from L1 (nothing there)
	//  4. our Fetch puts T1 in L1
	//
	// Without the check, T1 would stay in L1 with no broadcast left to
	// drop it: every entry recorded against T1 would be served until
	// L1VersionTTL. Step 3 bumps v's stripe, so step 4 sees a changed
	// generation and stores nothing. The snapshot is taken before the
	// request is sent, so any broadcast of a write our read did not see
	// (the server ran the write after our read, and published after the
	// write) is applied after the snapshot.
	var buf [8]uint64
	gens := t.snapshot(versions, buf[:0])
	value, tokens, err := t.l2.Fetch(ctx, key, versions)
	if err != nil {
		return nil, nil, err
	}
	if t.afterL2 != nil {
		t.afterL2()
	}
	t.fillVersions(versions, tokens, gens, st, now)
	if value != nil {
		t.fillEntry(key, value, 0)
	}
	return value, tokens, nil
}

// fetchStrict serves an L1 entry with tokens read from Redis now (a
// versions-only round trip), so a stale L1 copy is never served: it works
// whether the subscription is up or not.
func (t *TieredStore) fetchStrict(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	if key != "" {
		if it, ok := t.l1Entry(key, monoNow()); ok {
			_, tokens, err := t.l2.Fetch(ctx, "", versions)
			if err != nil {
				return nil, nil, err
			}
			if it.aux == tokenDigest(tokens) {
				t.hits.Add(1)
				return it.data, tokens, nil
			}
			// Stale here; Redis may hold a fresh one.
			value, tokens, err := t.l2.Fetch(ctx, key, versions)
			if err != nil {
				return nil, nil, err
			}
			if value != nil {
				t.fillEntry(key, value, 0)
			} else {
				t.dropEntry(key, it.data)
			}
			return value, tokens, nil
		}
	}
	value, tokens, err := t.l2.Fetch(ctx, key, versions)
	if err != nil {
		return nil, nil, err
	}
	if value != nil {
		t.fillEntry(key, value, 0)
	}
	return value, tokens, nil
}

// l1Versions fills tokens from L1 and reports whether every version was
// there and read from Redis less than L1VersionTTL ago.
func (t *TieredStore) l1Versions(versions []string, tokens []uint64, now int64) bool {
	ttl := int64(t.opts.L1VersionTTL)
	for i, name := range versions {
		it, ok := t.l1.GetIfPresent(name)
		if !ok || it.data != nil || now-int64(it.aux) >= ttl {
			return false
		}
		tokens[i] = it.word
	}
	return true
}

// l1Entry returns the unexpired entry key from L1.
func (t *TieredStore) l1Entry(key string, now int64) (l1Item, bool) {
	it, ok := t.l1.GetIfPresent(key)
	if !ok || it.data == nil {
		return l1Item{}, false
	}
	if now >= int64(it.word) {
		t.dropEntry(key, it.data)
		return l1Item{}, false
	}
	return it, true
}

// dropEntry deletes the entry key from L1 if it still holds data (not a
// newer entry stored meanwhile).
func (t *TieredStore) dropEntry(key string, data []byte) {
	t.l1.ComputeIfPresent(key, func(old l1Item) (l1Item, otter.ComputeOp) {
		if old.data != nil && unsafe.SliceData(old.data) == unsafe.SliceData(data) {
			return old, otter.InvalidateOp
		}
		return old, otter.CancelOp
	})
}

// stripe returns the stripe of a version name.
func (t *TieredStore) stripe(name string) *tieredStripe {
	return &t.stripes[maphash.String(t.seed, name)%tieredStripes]
}

// snapshot appends the generation of each name's stripe to gens.
func (t *TieredStore) snapshot(versions []string, gens []uint64) []uint64 {
	for _, name := range versions {
		gens = append(gens, t.stripe(name).gen.Load())
	}
	return gens
}

// fillVersions puts the tokens read from L2 in L1, each only if no
// invalidation touched its stripe, and nothing cleared L1, since the
// snapshot (gens, st) was taken before the read. The check and the store
// are done under the stripe's lock, which drop holds while it bumps the
// generation and deletes: a drop cannot fall between them.
func (t *TieredStore) fillVersions(versions []string, tokens, gens []uint64, st uint64, readAt int64) {
	if len(tokens) != len(versions) || len(gens) != len(versions) {
		return // never index past them under a stripe's lock
	}
	for i, name := range versions {
		s := t.stripe(name)
		s.mu.Lock()
		if s.gen.Load() == gens[i] && t.state.Load() == st {
			t.l1.Set(name, l1Item{word: tokens[i], aux: uint64(readAt)})
		}
		s.mu.Unlock()
	}
}

// fillEntry puts an entry's envelope in L1 until the expiry it records
// (or ttl, when shorter and positive). Envelopes that do not decode are
// left in Redis only: serving them from L1 would save nothing.
//
// An entry needs no generation check: the engine serves it only if the
// tokens it recorded are the current ones, which L1's versions (checked
// as above) or Redis's (Strict) decide.
func (t *TieredStore) fillEntry(key string, raw []byte, ttl time.Duration) {
	e, err := decodeEntryAt(key, raw)
	if err != nil {
		return
	}
	left := e.expires - time.Now().UnixNano()
	if ttl > 0 {
		left = min(left, int64(ttl))
	}
	if left <= 0 {
		return
	}
	deadline := monoNow() + min(left, math.MaxInt64/2)
	var d uint64 = digestSeed
	for i := range e.count() {
		d = digestStep(d, e.token(i))
	}
	t.l1.Set(key, l1Item{data: raw, word: uint64(deadline), aux: d})
}

// tokenDigest is a digest of tokens in order, compared with the digest of
// the tokens an L1 entry recorded so that an entry that is certainly
// stale is not returned (the engine would count a miss and query the
// database, while Redis may hold a fresh entry). A collision only returns
// an entry the engine then rejects.
func tokenDigest(tokens []uint64) uint64 {
	var d uint64 = digestSeed
	for _, tok := range tokens {
		d = digestStep(d, tok)
	}
	return d
}

const digestSeed = 0x243f6a8885a308d3

func digestStep(d, tok uint64) uint64 {
	d ^= tok
	d *= 0x9e3779b97f4a7c15
	return d ^ d>>29
}

// Put implements Store: the entry is written to Redis, then kept in L1.
func (t *TieredStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return t.PutFor(ctx, key, value, ttl, nil)
}

// PutFor stores value under key for ttl in Redis, extending versions to
// outlive it (RedisStore.PutFor), then keeps it in L1.
//
// When Redis refused the write, L1 does not keep the entry either: a
// failing L2 is also a sign that broadcasts may not be getting through,
// and an entry only this process holds would be served here on the
// strength of tokens nobody else can see being replaced. L1 stays a
// subset of what Redis had, as it would be without the first level.
func (t *TieredStore) PutFor(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string) error {
	if t.err != nil {
		return t.err
	}
	t.start()
	if err := t.l2.PutFor(ctx, key, value, ttl, versions); err != nil {
		return err
	}
	t.keep(key, value, ttl)
	return nil
}

// keep puts an entry Redis has just stored in L1, unless L1 is not in use
// (default mode without a live subscription).
func (t *TieredStore) keep(key string, value []byte, ttl time.Duration) {
	if ttl > 0 && (t.opts.Strict || t.Subscribed()) {
		t.fillEntry(key, value, ttl)
	}
}

// Bump implements Store: the versions are dropped from L1, replaced in
// Redis and broadcast to every subscribed store in one round trip (two
// with a cluster client), and dropped from L1 again.
//
// The first drop makes this process stop serving them while the write is
// in flight; the second removes a token a concurrent Fetch of ours read
// from Redis before the replacement landed and put in L1 after the first
// drop (its generation check passed: nothing had bumped the stripe since
// its snapshot). Because the second drop bumps the stripes too, a Fetch
// still in flight then is refused its fill. So once Bump returns, this
// process's L1 holds no token older than the write: C1 holds locally
// without waiting for our own broadcast. If Redis fails, the error is
// returned (the engine keeps the invalidation pending and bypasses what
// it covers until it is delivered).
func (t *TieredStore) Bump(ctx context.Context, versions []string) error {
	if t.err != nil {
		return t.err
	}
	if len(versions) == 0 {
		return nil
	}
	t.start()
	t.drop(versions)
	err := t.bumpL2(ctx, versions)
	t.drop(versions)
	return err
}

// bumpL2 replaces versions in L2 and broadcasts them on every channel,
// so that a receiver that reads them after the message reads the new
// tokens.
func (t *TieredStore) bumpL2(ctx context.Context, versions []string) error {
	chans := []string{t.l2.channelFor(tieredChannel)}
	if p := t.chans.Load(); p != nil { // nil only if closed before first use
		chans = *p
	}
	return t.l2.bumpAndBroadcast(ctx, versions, chans)
}

// drop deletes version names from L1 and bumps their stripes, under each
// stripe's lock (see fillVersions).
func (t *TieredStore) drop(names []string) {
	for _, name := range names {
		s := t.stripe(name)
		s.mu.Lock()
		s.gen.Add(1)
		t.l1.Invalidate(name)
		s.mu.Unlock()
	}
}

// What clearL1 does with the subscribed bit.
type subState int8

const (
	keepSub subState = iota // an "all" or undecodable broadcast, L2 recovery
	subDown                 // subscription lost, channel added, closed
	subUp                   // subscription confirmed
)

// clearL1 empties L1 and starts a new generation, with every stripe
// locked so that no fill checked against the old generation lands after
// it (see fillVersions); sub says whether L1 may be served afterwards.
func (t *TieredStore) clearL1(sub subState) {
	for i := range t.stripes {
		t.stripes[i].mu.Lock()
	}
	t.l1.InvalidateAll()
	old := t.state.Load()
	bit := old & 1
	switch sub {
	case subDown:
		bit = 0
	case subUp:
		bit = 1
	}
	t.state.Store((old>>1+1)<<1 | bit)
	for i := range t.stripes {
		t.stripes[i].mu.Unlock()
	}
}

// Close implements Store: it stops the subscription, empties L1 and
// closes L2 unless a Cache still uses L2 itself (the Redis client stays
// open: it belongs to the caller).
func (t *TieredStore) Close() error {
	if t.err != nil {
		return nil
	}
	var err error
	t.closeErr.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.cancel()
		sub := t.sub
		started := t.started.Load()
		t.mu.Unlock()
		// Stopping the subscription closes its PubSub, which waits for a
		// connection's setup in progress: under CLIENT PAUSE ALL, until
		// go-redis gave up, about 5 s (TestTieredCloseDuringPause). Close
		// waits for it at most closeWait; the subscription's goroutine,
		// stopped, ends on its own when the setup returns. L2 closes
		// meanwhile: its own wait (a probe of the paused server, up to
		// closeWait too) added to this one took Close past 3 s under load.
		stopped := make(chan struct{})
		go func() {
			if sub != nil {
				sub.stop()
			}
			if started {
				<-t.done
			}
			close(stopped)
		}()
		l2closed := make(chan error, 1)
		if releaseStore(t.l2) {
			go func() { l2closed <- t.l2.Close() }()
		} else {
			l2closed <- nil
		}
		wait := time.NewTimer(closeWait)
		select {
		case <-stopped:
		case <-wait.C:
		}
		wait.Stop()
		t.clearL1(subDown)
		t.l1.StopAllGoroutines()
		err = <-l2closed
	})
	return err
}

// addChannel subscribes to ch as well. Names of a namespace are
// broadcast on its channel; a channel added to a running subscription
// replaces it (a new subscription to every channel), and L1 is not
// served until that is confirmed: broadcasts on the new channel before
// then were not heard.
func (t *TieredStore) addChannel(ch string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || slices.Contains(t.channels, ch) {
		return
	}
	t.channels = append(t.channels, ch)
	chans := slices.Clone(t.channels)
	t.chans.Store(&chans)
	if !t.started.Load() {
		t.startLocked()
		return
	}
	t.clearL1(subDown)
	if t.sub != nil {
		t.sub.stop() // the loop sees it is no longer current and replaces it
		t.sub = nil
	}
}

// start starts the subscription at the store's first use if no Cache
// bound it, on the channel of the empty prefix.
func (t *TieredStore) start() {
	if t.started.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started.Load() || t.closed {
		return
	}
	if len(t.channels) == 0 {
		t.channels = []string{t.l2.channelFor(tieredChannel)}
		chans := slices.Clone(t.channels)
		t.chans.Store(&chans)
	}
	t.startLocked()
}

func (t *TieredStore) startLocked() {
	t.started.Store(true)
	go t.run()
}

// run keeps a subscription to every channel until the store is closed.
func (t *TieredStore) run() {
	defer close(t.done)
	for {
		sub, chans, ok := t.newSub()
		if !ok {
			return
		}
		t.l2.listen(t, sub, chans)
		sub.stop()
	}
}

// newSub makes the loop's next subscription. It reports false when the
// store is closed.
func (t *TieredStore) newSub() (*tieredSub, []string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, false
	}
	sub := &tieredSub{}
	sub.ctx, sub.cancel = context.WithCancel(t.ctx)
	t.sub = sub
	return sub, slices.Clone(t.channels), true
}

// current reports whether sub is still the loop's subscription
// (addChannel and Close replace or stop it).
func (t *TieredStore) current(sub *tieredSub) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sub == sub && !t.closed
}

// tieredSub is one subscription of the loop, listened to by the second
// level (tieredL2.listen) until it is stopped: by addChannel (a channel
// was added: the loop makes a new one), by Close, or by the loop when
// listen returns. Stopping cancels ctx and runs the functions the second
// level registered with onStop (closing a connection whose blocked read
// does not watch the context).
type tieredSub struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	stopped bool
	stops   []func()
}

// onStop registers fn to run when sub is stopped; it reports false (and
// runs nothing) when sub is stopped already.
func (s *tieredSub) onStop(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.stops = append(s.stops, fn)
	return true
}

// stop cancels the subscription; it may be called more than once.
func (s *tieredSub) stop() {
	s.mu.Lock()
	fns := s.stops
	s.stops, s.stopped = nil, true
	s.mu.Unlock()
	s.cancel()
	for _, fn := range fns {
		fn()
	}
}

// sleep waits d or until sub is stopped; false means stopped.
func (s *tieredSub) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-s.ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// lost marks the subscription down and empties L1: broadcasts sent from
// now until the subscription is confirmed again are not heard.
func (t *TieredStore) lost(err error) {
	if !t.Subscribed() {
		return
	}
	// Counted after L1 is dropped: whoever sees the count move (a test
	// waiting for the loss) sees L1 empty and Subscribed false, not the
	// loss half applied.
	t.clearL1(subDown)
	t.losses.Add(1)
	t.logWarn("querycache: invalidation subscription lost; first level bypassed until it is back", "err", err)
}

// subscribed marks the subscription up after its confirmation (every
// channel subscribed), emptying L1 first: broadcasts may have been missed
// while it was down, and anything read from Redis before the server
// subscribed us could be stale without a broadcast to come.
func (t *TieredStore) subscribed(sub *tieredSub) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sub != sub || t.closed {
		return // replaced meanwhile (addChannel): wait for the new one
	}
	recovered := t.losses.Load() > 0
	t.clearL1(subUp)
	if recovered {
		t.logWarn("querycache: invalidation subscription back; first level emptied and in use again")
	}
}

// apply applies a received broadcast. The counters are bumped after it
// is applied, so a test that sees them move sees L1 already dropped.
func (t *TieredStore) apply(payload string) {
	m, err := decodeBroadcast(payload)
	t.applyDecoded(m, err, len(payload))
}

// applyDecoded applies a decoded broadcast (err: undecodable) of size
// bytes.
func (t *TieredStore) applyDecoded(m broadcast, err error, size int) {
	switch {
	case err != nil:
		// Anyone can publish on the channel; a message we cannot read may
		// have been meant to invalidate anything.
		t.clearL1(keepSub)
		n := t.undecodable.Add(1)
		if n&(n-1) == 0 { // 1, 2, 4, 8, ...: a flood does not flood the log
			t.logWarn("querycache: undecodable invalidation broadcast; first level emptied", "count", n, "bytes", size)
		}
	case m.all:
		t.clearL1(keepSub)
	default:
		t.drop(m.names)
	}
	t.broadcasts.Add(1)
	if t.onBroadcast != nil {
		t.onBroadcast()
	}
}

func (t *TieredStore) logWarn(msg string, args ...any) {
	if t.opts.Logger != nil {
		t.opts.Logger.Warn(msg, args...)
	}
}
