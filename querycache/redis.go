package querycache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/keys"
)

// RedisOptions configures a RedisStore. The zero value is usable: every
// field documents its default.
type RedisOptions struct {
	// Timeout bounds every call the store makes on the hot path (a lookup,
	// a fill). A call that takes longer fails open: the query goes to the
	// database. It is applied through the context, so NewRedisStore turns
	// on the client's ContextTimeoutEnabled. Default: 100ms. -1 means no
	// timeout of the store's own (the client's ReadTimeout still applies).
	Timeout time.Duration
	// InvalidateTimeout bounds a call that replaces versions. A failed one
	// is kept and retried (the cache bypasses what it covers meanwhile).
	// Default: 1s.
	InvalidateTimeout time.Duration

	// VersionTTL is how long a version key lives after it is created or
	// replaced. Every fill extends the versions its entry recorded to at
	// least the entry's TTL plus VersionMargin, so a version always
	// outlives the entries that recorded it. A version that expires anyway
	// (or is evicted) comes back as a new random token: the entries that
	// recorded the old one become misses, never stale hits. Default: 24h.
	VersionTTL time.Duration
	// VersionMargin is added to an entry's TTL when a fill extends its
	// versions. Default: 1 minute.
	VersionMargin time.Duration

	// BreakerFailures is the number of consecutive failed calls that opens
	// the circuit breaker. While it is open the cache is bypassed with no
	// network call, and a probe runs every BreakerProbe until Redis
	// answers. Default: 5.
	BreakerFailures int
	// BreakerProbe is how often an open breaker probes Redis. Default:
	// 500ms.
	BreakerProbe time.Duration
	// HealWait is how long an invalidation that finds the breaker open
	// waits for a probe of its own before it is kept pending: without it,
	// a write made just after Redis came back waited for the next probe
	// (up to BreakerProbe) while other processes, already back, served
	// what it changed. It is what a write can cost while Redis is down,
	// once the breaker has been open for InvalidateTimeout; before that
	// (a stall that may end any moment), an invalidation keeps probing
	// until InvalidateTimeout has passed since the breaker opened, as it
	// would wait for an answer with the breaker closed (breaker.heal).
	// Default: 20ms; -1 turns both off (writes wait for the prober).
	HealWait time.Duration
	// Heartbeat is how often the store reads Redis by itself, so that a
	// process that makes no call of its own (idle, or with the GORM
	// plugin's catalog watch off) still opens its breaker when Redis
	// stalls, within InvalidateTimeout: it then replaces the epoch before
	// it uses the store again, and serves nothing a write made meanwhile
	// changed (heartbeat.go). That holds while Heartbeat +
	// BreakerFailures × Timeout ≤ InvalidateTimeout, as with the defaults
	// (with Timeout -1 the heartbeat's reads take their share of
	// InvalidateTimeout). Default: 100ms; -1 turns it off.
	Heartbeat time.Duration

	// Logger receives breaker transitions and server changes at Warn
	// level. nil logs nothing.
	Logger *slog.Logger
}

// RedisStore is a Store in Redis, shared by every process that uses the
// same Redis, prefix and database identity. It works with a *redis.Client,
// a Sentinel failover client (also a *redis.Client) and a
// *redis.ClusterClient.
//
// Every call is one pipelined round trip:
//
//	lookup        GET entry + SET version token NX GET PX ttl, per version
//	fill          SET entry PX ttl + PEXPIRE version ttl GT, per version
//	invalidation  SET version token PX ttl, per version (+ PUBLISH)
//
// In Cluster mode a pipeline of single-key commands is split by the client
// per node and sent to the nodes in parallel. We chose that over hash tags
// (which would put every key of a database in one slot, one node) so that
// a cluster spreads entries and versions over all its masters; the only
// multi-key command, the fenced fill of a lease, names an entry and its
// lease key, which share a slot by construction (leaseKey).
//
// Failures cost misses, never stale hits: every key has a TTL, versions
// are random tokens created with SET NX, an evicted or expired version
// comes back as a new token, and a server that restarted (or a replica
// promoted in its place) is detected on every new connection by its
// run_id and treated as an epoch change (see identity.go).
type RedisStore struct {
	client  redis.UniversalClient
	cluster bool
	opts    RedisOptions
	err     error

	guarded // the breaker, its prober, the recovery functions, Close

	ident identity
	roll  rollbackCheck // a dataset rolled back under a running server (rollback.go)

	// chans are the broadcast channels of the namespaces bound
	// (bindNamespace), on which Bump announces the versions it replaced.
	chansMu sync.Mutex
	chans   atomic.Pointer[[]string]

	fetches   coalescer[fetched]
	coalesced atomic.Int64
	maxValue  atomic.Int64 // see bindMaxEntry
	boundMu   sync.Mutex
	unbounded bool
}

// NewRedisStore returns a store in Redis. A nil or unsupported client, or
// an invalid option, is reported by querycache.New (and by Err), so the
// constructor can be used inline. A Redis that cannot be reached is not an
// error: the store fails open and probes until it answers.
//
// NewRedisStore installs an OnConnect hook (chained after the client's
// own) that checks the server's identity on every new connection, and sets
// ContextTimeoutEnabled so that Timeout applies. Pass a client that has
// not started serving other goroutines yet.
func NewRedisStore(client redis.UniversalClient, opts RedisOptions) *RedisStore {
	s := &RedisStore{client: client, guarded: newGuarded()}
	if err := opts.fill(); err != nil {
		s.err = err
		return s
	}
	s.opts = opts
	s.setup("Redis", opts.Logger, opts.BreakerFailures, opts.BreakerProbe, s.probe, isRedisNil)
	switch c := client.(type) {
	case nil:
		s.err = errors.New("querycache: NewRedisStore got a nil client; pass redis.NewClient(&redis.Options{Addr: \"127.0.0.1:6379\"}), redis.NewFailoverClient(...) or redis.NewClusterClient(...)")
	case *redis.Client:
		if c == nil {
			s.err = errors.New("querycache: NewRedisStore got a nil *redis.Client; create it with redis.NewClient")
			return s
		}
		o := c.Options()
		o.ContextTimeoutEnabled = true
		o.OnConnect = s.ident.hook(s, o.OnConnect)
	case *redis.ClusterClient:
		if c == nil {
			s.err = errors.New("querycache: NewRedisStore got a nil *redis.ClusterClient; create it with redis.NewClusterClient")
			return s
		}
		s.cluster = true
		o := c.Options()
		o.ContextTimeoutEnabled = true
		o.OnConnect = s.ident.hook(s, o.OnConnect)
	default:
		s.err = fmt.Errorf("querycache: NewRedisStore does not support %T (a Ring shards keys so that an entry and its lease may live apart); use a *redis.Client, a failover client or a *redis.ClusterClient", client)
	}
	return s
}

func (o *RedisOptions) fill() error {
	neg := func(name string, d time.Duration, allowMinus1 bool) error {
		return badDuration("RedisOptions."+name, d, allowMinus1)
	}
	if err := errors.Join(
		neg("Timeout", o.Timeout, true),
		neg("InvalidateTimeout", o.InvalidateTimeout, false),
		neg("VersionTTL", o.VersionTTL, false),
		neg("VersionMargin", o.VersionMargin, false),
		neg("BreakerProbe", o.BreakerProbe, false),
		neg("HealWait", o.HealWait, true),
		neg("Heartbeat", o.Heartbeat, true),
	); err != nil {
		return err
	}
	if o.BreakerFailures < 0 {
		return fmt.Errorf("querycache: RedisOptions.BreakerFailures is %d; use a positive count, or 0 for 5", o.BreakerFailures)
	}
	if o.Timeout == 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.InvalidateTimeout == 0 {
		o.InvalidateTimeout = time.Second
	}
	if o.VersionTTL == 0 {
		o.VersionTTL = 24 * time.Hour
	}
	if o.VersionMargin == 0 {
		o.VersionMargin = time.Minute
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerProbe == 0 {
		o.BreakerProbe = 500 * time.Millisecond
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = heartbeatDefault
	}
	if o.HealWait == 0 {
		o.HealWait = 20 * time.Millisecond
	}
	return nil
}

// bindNamespace tells the store the namespace of a Cache using it: a
// server change (identity.go) and a recovery replace its epoch. The Cache
// calls it from New.
func (s *RedisStore) bindNamespace(ns keys.Namespace) {
	s.ident.bind(ns)
	epoch := ns.Epoch()
	s.startHeartbeat(s.opts.Heartbeat, beatTimeout(s.opts.Timeout, s.opts.InvalidateTimeout, s.opts.Heartbeat, s.opts.BreakerFailures), nil, func(ctx context.Context) error {
		return s.client.Get(ctx, epoch).Err() // redis.Nil is an answer
	})
	s.bindRollback(ns.Prefix())
	ch := s.channelFor(ns.Prefix() + tieredChannel)
	s.chansMu.Lock()
	defer s.chansMu.Unlock()
	var chans []string
	if p := s.chans.Load(); p != nil {
		if slices.Contains(*p, ch) {
			return
		}
		chans = slices.Clone(*p)
	}
	chans = append(chans, ch)
	s.chans.Store(&chans)
}

// Err reports a configuration error of NewRedisStore, or nil.
func (s *RedisStore) Err() error { return s.err }

// Client returns the store's Redis client.
func (s *RedisStore) Client() redis.UniversalClient { return s.client }

// BreakerOpen reports whether the circuit breaker is open (Redis is being
// bypassed).
func (s *RedisStore) BreakerOpen() bool { return s.brk.open.Load() }

// BreakerOpenings returns how many times the breaker has opened.
func (s *RedisStore) BreakerOpenings() int64 { return s.brk.opened.Load() }

// OnRecover registers fn to run (on the prober's goroutine) each time the
// breaker closes again: the cache uses it to deliver, first thing, the
// invalidations it could not deliver while Redis was away.
func (s *RedisStore) OnRecover(fn func()) { s.onRecover(fn) }

// call runs fn with the store's timeout and feeds the breaker.
func (s *RedisStore) call(ctx context.Context, timeout time.Duration, fn func(ctx context.Context) error) error {
	if s.err != nil {
		return s.err
	}
	return s.guarded.call(ctx, timeout, fn)
}

// probe checks that Redis answers a write (a replica answers PING but
// refuses writes) and, when it does, runs the recovery functions and
// closes the breaker.
func (s *RedisStore) probe() bool { return s.probeWithin(s.life, s.opts.InvalidateTimeout) }

// healProbe is the probe a write makes through the open breaker (heal):
// not ended by Close, unlike the prober's, as an invalidation after Close
// is still sent once (TestInvalidationAfterCloseHealsBreaker).
func (s *RedisStore) healProbe(timeout time.Duration) bool {
	return s.probeWithin(context.Background(), timeout)
}

// probeWithin is probe with the time its round trips may take.
func (s *RedisStore) probeWithin(ctx context.Context, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.ident.probe(ctx, s); err != nil {
		return false
	}
	// An outage may have hidden invalidations this process never saw
	// fail (another process's, undelivered): whatever was cached before
	// it is not trusted. Replacing the epoch first, before any lookup of
	// ours reaches Redis again, costs one refill per entry.
	for _, ns := range s.ident.namespaces() {
		if err := s.client.Set(ctx, ns.Epoch(), tokenString(NewToken()), s.opts.VersionTTL).Err(); err != nil {
			return false
		}
	}
	// Close, then deliver what was kept: the cache's own lookups of
	// anything pending keep bypassing until it is delivered.
	s.recovered()
	return true
}

// tokenString is how a token is stored: 16 hex digits, readable in
// redis-cli.
func tokenString(t uint64) string {
	var b [16]byte
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = hex[t&15]
		t >>= 4
	}
	return string(b[:])
}

// parseToken reads a stored token; ok is false for anything else (another
// program's value, a counter, garbage).
func parseToken(s string) (uint64, bool) {
	if len(s) != 16 {
		return 0, false
	}
	t, err := strconv.ParseUint(s, 16, 64)
	return t, err == nil && t != 0
}

// Fetch implements Store: one pipelined round trip reads the entry and
// reads or creates every version.
//
// Concurrent fetches of the same key and versions are merged (coalesce.go):
// a stampede of N goroutines makes about one round trip. The value may be
// shared between them: callers must not modify it.
func (s *RedisStore) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	if s.err != nil {
		return nil, nil, s.err
	}
	if !s.brk.allow() {
		return nil, nil, ErrStoreUnavailable
	}
	// The batch key must be injective: names are the caller's strings and
	// may hold any byte, so each is length-prefixed (a separator byte would
	// let key "a\x00b" with versions [c] meet key "a" with [b, c]).
	n := binary.MaxVarintLen64 * (len(versions) + 2)
	n += len(key)
	for _, v := range versions {
		n += len(v)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(versions)))
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	for _, v := range versions {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	// The batch runs on the leader's context without its cancellation:
	// callers who joined wait for it (the store's Timeout still bounds it).
	bctx := context.WithoutCancel(ctx)
	r, err, shared := s.fetches.do(ctx, string(b), func() (fetched, error) {
		v, t, err := s.fetchOnce(bctx, key, versions)
		return fetched{v, t}, err
	})
	if err != nil {
		return nil, nil, err
	}
	if len(r.tokens) != len(versions) {
		return nil, nil, errors.New("querycache: internal error: a merged fetch answered for other versions")
	}
	if shared {
		s.coalesced.Add(1)
	}
	// Every caller gets tokens of its own, the leader too: the callers
	// who joined copy the batch's tokens when they wake, which may be
	// after the leader returned and reused its slice (KV.read did, a data
	// race under TestHostile26ConcurrentAddsWithOtherDependenciesOneWinner).
	return r.value, append([]uint64(nil), r.tokens...), nil
}

type fetched struct {
	value  []byte
	tokens []uint64
}

// Coalesced returns how many fetches were answered by another caller's
// round trip.
func (s *RedisStore) Coalesced() int64 { return s.coalesced.Load() }

func (s *RedisStore) fetchOnce(ctx context.Context, key string, versions []string) (value []byte, tokens []uint64, err error) {
	tokens = make([]uint64, len(versions))
	err = s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		var bad []int
		value, bad, err = s.fetch(ctx, key, versions, tokens)
		if err != nil || len(bad) == 0 {
			return err
		}
		return s.repair(ctx, versions, bad, tokens)
	})
	if err != nil {
		return nil, nil, err
	}
	return value, tokens, nil
}

// fetch is Fetch's round trip. mine are the tokens offered for missing
// versions; a SET NX GET that returns nil created the version with ours.
// bad lists versions holding something that is not a token.
func (s *RedisStore) fetch(ctx context.Context, key string, versions []string, tokens []uint64) (value []byte, bad []int, err error) {
	p := s.client.Pipeline()
	var get *redis.StringCmd
	if key != "" {
		get = s.getEntry(ctx, p, key)
	}
	cmds := make([]*redis.StatusCmd, len(versions))
	for i, v := range versions {
		tokens[i] = NewToken()
		cmds[i] = p.SetArgs(ctx, v, tokenString(tokens[i]), redis.SetArgs{Mode: "NX", Get: true, TTL: s.opts.VersionTTL})
	}
	// Exec reports the first failed command; each is examined below, where
	// a key of another type (WRONGTYPE: another program's hash under one
	// of our names) is garbage, not a failure of Redis.
	_, _ = p.Exec(ctx)
	for i, c := range cmds {
		old, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			// Created with our token.
		case isWrongType(err):
			bad = append(bad, i)
		case err != nil:
			return nil, nil, err
		default:
			t, ok := parseToken(old)
			if !ok {
				bad = append(bad, i)
				continue
			}
			tokens[i] = t
		}
	}
	if get != nil {
		b, err := s.entryBytes(get)
		switch {
		case errors.Is(err, redis.Nil), isWrongType(err):
			// No entry, or not ours: a miss (the fill's SET replaces it).
		case err != nil:
			return nil, nil, err
		default:
			value = b
		}
	}
	return value, bad, nil
}

// repair replaces versions that hold something other than a token (a
// foreign program's value, a truncated write) with fresh tokens: whatever
// recorded the garbage becomes a miss.
func (s *RedisStore) repair(ctx context.Context, versions []string, bad []int, tokens []uint64) error {
	p := s.client.Pipeline()
	for _, i := range bad {
		tokens[i] = NewToken()
		p.Set(ctx, versions[i], tokenString(tokens[i]), s.opts.VersionTTL)
	}
	_, err := p.Exec(ctx)
	return err
}

// Put implements Store. The entry is stored for ttl, and every version it
// depends on is extended to outlive it (PEXPIRE ... GT only lengthens).
// Put does not know the versions; PutFor does.
func (s *RedisStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return s.PutFor(ctx, key, value, ttl, nil)
}

// PutFor stores value under key for ttl and extends each of versions to
// live at least ttl plus VersionMargin, in one round trip.
func (s *RedisStore) PutFor(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string) error {
	if ttl <= 0 {
		return nil
	}
	return s.call(ctx, s.opts.Timeout, func(ctx context.Context) error {
		p := s.client.Pipeline()
		p.Set(ctx, key, value, ttl)
		s.extend(ctx, p, ttl, versions)
		_, err := p.Exec(ctx)
		return err
	})
}

// extend queues a PEXPIRE ... GT per version: a version created (or
// replaced) long ago could otherwise expire before the entry that records
// it. GT only lengthens, so on a version with most of VersionTTL left it
// does nothing. (An expired version would only cost a miss, but an entry
// that can never hit is wasted memory.)
func (s *RedisStore) extend(ctx context.Context, p redis.Pipeliner, ttl time.Duration, versions []string) {
	for _, v := range versions {
		p.ExpireGT(ctx, v, ttl+s.opts.VersionMargin)
	}
}

// Bump implements Store: one pipelined round trip replaces every version,
// and announces them on the broadcast channel of the cache's namespace:
// other processes' two-level stores on the same prefix keep versions in
// their memory and drop them when a broadcast names them, so a write made
// through a plain Redis store must be announced as theirs are (without
// it they served their copies until L1VersionTTL).
func (s *RedisStore) Bump(ctx context.Context, versions []string) error {
	if len(versions) == 0 {
		return nil
	}
	if p := s.chans.Load(); p != nil {
		return s.bumpAndBroadcast(ctx, versions, *p)
	}
	return s.bump(ctx, versions, "", nil)
}

// bump replaces versions and, when channel is set, publishes msg on it in
// the same round trip. On one server the pipeline runs in order, so a
// process that receives the message and reads again sees the new tokens;
// a Cluster client splits the pipeline per node and may run the PUBLISH
// first, so the two-level store publishes in a second trip there
// (TieredStore.bumpL2).
func (s *RedisStore) bump(ctx context.Context, versions []string, channel string, msg []byte) error {
	if len(versions) == 0 {
		return nil
	}
	if s.err == nil {
		s.brk.heal(ctx, s.opts.HealWait, s.opts.InvalidateTimeout, s.healProbe) // a write does not wait for the next probe
	}
	return s.call(ctx, s.opts.InvalidateTimeout, func(ctx context.Context) error {
		p := s.client.Pipeline()
		for _, v := range versions {
			p.Set(ctx, v, tokenString(NewToken()), s.opts.VersionTTL)
		}
		incr, expire := s.countBump(ctx, p) // rollback.go
		if channel != "" {
			p.Publish(ctx, channel, msg)
		}
		cmds, err := p.Exec(ctx)
		if incr == nil || err != nil && len(cmds) < len(versions) {
			return err
		}
		// The counter's own failure (garbage written over it) is not the
		// bump's: the versions and the broadcast are.
		for _, c := range cmds {
			if c != incr && c != expire && c.Err() != nil {
				return c.Err()
			}
		}
		s.counted(incr)
		return nil
	})
}

// Close implements Store. It stops the prober; the client stays open (it
// belongs to the caller).
func (s *RedisStore) Close() error {
	s.close()
	return nil
}

// isRedisNil reports redis.Nil: an answer (no such key), not a failure.
func isRedisNil(err error) bool { return errors.Is(err, redis.Nil) }

// isWrongType reports Redis's WRONGTYPE error: a key of ours holds a list,
// hash or set written by someone else.
func isWrongType(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE")
}

// maxValue bounds the bytes a lookup reads for an entry; 0 is no bound.
// The cache sets it from MaxEntryBytes (bindMaxEntry): anything larger is
// not an entry of ours (a fill never stores one), and reading a huge
// foreign value on every lookup would time out and open the breaker for
// every key.

// bindMaxEntry tells the store the largest payload the cache stores; -1
// means no limit.
// Caches sharing a store bind the largest of their limits; one without a
// limit removes the bound for good.
func (s *RedisStore) bindMaxEntry(n int) {
	s.boundMu.Lock()
	defer s.boundMu.Unlock()
	if n <= 0 || s.unbounded {
		s.unbounded = true
		s.maxValue.Store(0)
		return
	}
	// The envelope: header, up to maxEntryDeps tokens, lengths, checksum.
	s.maxValue.Store(max(s.maxValue.Load(), int64(n)+entryHeader+8*maxEntryDeps+64))
}

// getEntry queues the read of an entry: GETRANGE bounded by maxValue (one
// byte more, to tell an oversized value), or GET without a bound.
func (s *RedisStore) getEntry(ctx context.Context, p redis.Pipeliner, key string) *redis.StringCmd {
	if m := s.maxValue.Load(); m > 0 {
		return p.GetRange(ctx, key, 0, m)
	}
	return p.Get(ctx, key)
}

// entryBytes reads a getEntry answer: redis.Nil for no entry (GETRANGE
// answers "" for a missing key; no entry of ours is empty) or for a value
// too large to be ours.
func (s *RedisStore) entryBytes(get *redis.StringCmd) ([]byte, error) {
	b, err := get.Bytes()
	if err != nil {
		return nil, err
	}
	if m := s.maxValue.Load(); m > 0 && (len(b) == 0 || int64(len(b)) > m) {
		return nil, redis.Nil
	}
	return b, nil
}
