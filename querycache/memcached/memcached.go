// Package memcached is a querycache.Store in Memcached, shared by every
// process that uses the same servers and prefix.
//
// It is a package of its own, not part of querycache, so that a program
// that does not use Memcached does not link (or, with module graph
// pruning, download) the Memcached client: only importers of this package
// have github.com/bradfitz/gomemcache in their import graph.
//
// Memcached is a cache that forgets: it evicts by LRU, and every key may
// go at any time. The store is built for that (DESIGN.md, "Versions must
// survive eviction"):
//
//   - versions are random tokens (querycache.NewToken), stored with no
//     expiry; a missing version is created with Memcached's add, so two
//     racing creators agree on one token (the loser's add answers
//     NOT_STORED and it reads the winner's);
//   - a version that was evicted comes back as a new random token, never 0
//     and never a value an old entry recorded: the entries that recorded
//     the old one become misses, never stale hits;
//   - Bump sets fresh tokens (a full server that refuses one has it
//     deleted instead);
//   - a server that comes back with its old items (a warm restart, -e)
//     is recognised on every new connection by its process id and start
//     time, kept in a marker on it: the caches' epochs are replaced
//     before the connection is used (boot.go).
//
// Keys: Memcached keys are at most 250 bytes of printable ASCII without
// spaces. Every entry key and version name maps to a Memcached key
// injectively: Prefix, a kind ("e" entry, "v" version), then ":" and the
// name itself when it is printable ASCII without spaces and short enough,
// otherwise "#" and the unpadded base64url SHA-256 of the name, a form no
// kept name can take (the character after the kind tells them apart).
// Entries and versions never share a key.
//
// Failures are errors, never panics: the engine fails open on them (the
// query goes to the database). After a few calls in a row get no answer a
// circuit breaker opens, and calls fail at once with
// querycache.ErrStoreUnavailable until a probe gets an answer
// (Options.BreakerFailures). A value larger than the item limit
// (Options.MaxItemBytes, 1 MiB by default as in Memcached's -I) is refused
// with an error wrapping querycache.ErrTooLargeForStore, and what the key
// held before is deleted, as Memcached itself does when a set fails, so
// an older value is not served in place of the refused one.
package memcached

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"querycache.dev/keys"
	"querycache.dev/querycache"
)

// Options configures a Store. The zero value talks to 127.0.0.1:11211.
type Options struct {
	// Servers are the Memcached servers ("host:port" or a Unix socket
	// path); keys are spread over them by the client's CRC32 selector.
	// Default: 127.0.0.1:11211. Ignored when Client is set.
	Servers []string
	// Client is a client of your own (its Timeout and MaxIdleConns are
	// left as you set them). Close does not close it. Optional. Its
	// connections are not checked for a server restarted with old data
	// (boot.go): with -e, let the store make its client.
	Client *memcache.Client
	// Prefix starts every Memcached key the store writes: printable ASCII
	// without spaces, at most 64 bytes. Processes sharing servers with
	// other programs (or other caches) use one prefix each.
	Prefix string
	// Timeout bounds every network operation (dial, read, write), as
	// gomemcache's Client.Timeout. A call that takes longer fails: the
	// engine goes to the database. Default: 100ms. The client has no
	// per-call context: a context's cancellation or deadline is checked
	// before each operation, and Timeout bounds each one.
	Timeout time.Duration
	// MaxIdleConns is how many idle connections are kept per server.
	// Default: 32 (gomemcache's own default of 2 makes concurrent callers
	// dial and drop connections on every call).
	MaxIdleConns int
	// BreakerFailures is the number of consecutive failed calls (no
	// answer: refused, timed out, cut) that opens the circuit breaker.
	// While it is open every call fails at once with
	// querycache.ErrStoreUnavailable, with no network call, so a server
	// that does not answer costs the engine nothing per query instead of
	// Timeout; every BreakerProbe one call goes through as a probe, and
	// the first that gets an answer closes it. Default: 5; -1 turns the
	// breaker off.
	BreakerFailures int
	// BreakerProbe is how often an open breaker lets one call through.
	// Default: 500ms.
	BreakerProbe time.Duration
	// InvalidateTimeout bounds how long an invalidation waits for the
	// servers to answer. A version replacement that times out (a stalled
	// server: a fork, a paused VM, a slow command) is sent again until
	// InvalidateTimeout has passed since the invalidation began, or, while
	// the breaker is open, since it opened; a server that refuses the
	// connection fails it at once. Without the wait, the write would
	// return with its invalidation pending while another process, whose
	// own calls did not fail, went on reading the same server after the
	// stall and served what the write changed until the engine's retry.
	// Default: 1s (the Redis store's InvalidateTimeout).
	InvalidateTimeout time.Duration
	// Heartbeat is how often the store asks every server for its version
	// when it has made no call since its last turn, so that a process
	// idle during a stall finds the servers stalled too: its breaker
	// opens, and it replaces the epoch before it uses them again, instead
	// of serving, from the moment they resume, what a write made during
	// the stall changed (its invalidation pending in the writer until the
	// writer's retry). A failed beat is tried again at once, so the
	// breaker opens within BreakerFailures × Timeout: keep Heartbeat plus
	// that within InvalidateTimeout (the defaults: 100 ms + 5 × 100 ms,
	// within 1 s). Default: 100ms; -1 turns it off.
	Heartbeat time.Duration
	// MaxItemBytes is the servers' item size limit (memcached -I),
	// counting the key and Memcached's item header. A larger value is
	// refused before it is sent. Default: 1 MiB, Memcached's default.
	MaxItemBytes int
}

// itemOverhead is what Memcached counts in an item besides its key and
// value: the item header (48-56 bytes), the CAS id, the key's NUL and the
// value's CRLF, rounded up.
const itemOverhead = 72

// maxPrefix bounds Options.Prefix, so that a digest key (prefix, kind,
// '#', 43 characters) always fits in 250 bytes.
const maxPrefix = 64

// maxKey is Memcached's key length limit.
const maxKey = 250

// Store is a querycache.Store (and querycache.Swapper) in Memcached. It is
// safe for concurrent use.
type Store struct {
	client *memcache.Client
	own    bool // we made the client: Close closes its connections
	opts   Options
	err    error
	closed atomic.Bool
	brk    breaker

	calls    atomic.Uint64 // calls made (do): the heartbeat skips a busy store's turn
	beatOnce sync.Once
	stop     chan struct{} // closed by Close: ends the heartbeat

	// servers is the server list of a client the store made (nil for
	// Options.Client): boot.go sends an epoch to the server its key is on.
	servers *memcache.ServerList

	recMu      sync.Mutex
	nss        []keys.Namespace // the caches' namespaces: their epochs, replaced by recover
	recoverFns []ownedFn
}

var (
	_ querycache.Store   = (*Store)(nil)
	_ querycache.Swapper = (*Store)(nil)
)

// ErrClosed is returned by every call after Close.
var ErrClosed = errors.New("memcached: the store is closed")

// New returns a Store on the servers of opts. An invalid option is
// reported by querycache.New (and by Err), so the constructor can be used
// inline. Servers that cannot be reached are not an error: every call
// fails until they answer, and the engine goes to the database meanwhile.
func New(opts Options) *Store {
	s := &Store{stop: make(chan struct{})}
	if err := opts.check(); err != nil {
		s.err = err
		return s
	}
	if opts.Timeout == 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	if opts.MaxIdleConns == 0 {
		opts.MaxIdleConns = 32
	}
	if opts.MaxItemBytes == 0 {
		opts.MaxItemBytes = 1 << 20
	}
	if opts.BreakerFailures == 0 {
		opts.BreakerFailures = 5
	}
	if opts.BreakerProbe == 0 {
		opts.BreakerProbe = 500 * time.Millisecond
	}
	if opts.InvalidateTimeout == 0 {
		opts.InvalidateTimeout = time.Second
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = 100 * time.Millisecond
	}
	s.opts = opts
	s.brk = breaker{threshold: int32(opts.BreakerFailures), probe: int64(opts.BreakerProbe)}
	if opts.Client != nil {
		s.client = opts.Client
		return s
	}
	servers := opts.Servers
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:11211"}
	}
	ss := new(memcache.ServerList)
	if err := ss.SetServers(servers...); err != nil {
		s.err = fmt.Errorf("memcached: Options.Servers %q: %w", servers, err)
		return s
	}
	s.client = memcache.NewFromSelector(ss)
	s.servers = ss
	// Every new connection checks that the server did not come back with
	// old data (boot.go).
	s.client.DialContext = s.dial
	s.client.Timeout = opts.Timeout
	s.client.MaxIdleConns = opts.MaxIdleConns
	s.own = true
	return s
}

func (o *Options) check() error {
	if len(o.Prefix) > maxPrefix {
		return fmt.Errorf("memcached: Options.Prefix is %d bytes; use at most %d", len(o.Prefix), maxPrefix)
	}
	if !safe(o.Prefix) {
		return fmt.Errorf("memcached: Options.Prefix %q holds a space, a control character or a non-ASCII byte; use printable ASCII", o.Prefix)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("memcached: Options.Timeout is %v; use a positive duration, or 0 for 100ms", o.Timeout)
	}
	if o.MaxIdleConns < 0 {
		return fmt.Errorf("memcached: Options.MaxIdleConns is %d; use a positive count, or 0 for 32", o.MaxIdleConns)
	}
	if o.BreakerFailures < -1 {
		return fmt.Errorf("memcached: Options.BreakerFailures is %d; use a positive count, 0 for 5, or -1 for no breaker", o.BreakerFailures)
	}
	if o.BreakerProbe < 0 {
		return fmt.Errorf("memcached: Options.BreakerProbe is %v; use a positive duration, or 0 for 500ms", o.BreakerProbe)
	}
	if o.InvalidateTimeout < 0 {
		return fmt.Errorf("memcached: Options.InvalidateTimeout is %v; use a positive duration, or 0 for 1s", o.InvalidateTimeout)
	}
	if o.Heartbeat < 0 && o.Heartbeat != -1 {
		return fmt.Errorf("memcached: Options.Heartbeat is %v; use a positive duration, 0 for 100ms, or -1 for none", o.Heartbeat)
	}
	if o.MaxItemBytes < 0 || (o.MaxItemBytes > 0 && o.MaxItemBytes < 1024) {
		return fmt.Errorf("memcached: Options.MaxItemBytes is %d; use the servers' -I limit in bytes (at least 1024), or 0 for 1 MiB", o.MaxItemBytes)
	}
	return nil
}

// Err reports a configuration error of New, or nil.
func (s *Store) Err() error {
	if s.err == nil && s.client == nil {
		// &memcached.Store{}: querycache.New reports it (it reads Err),
		// where it panicked at the first lookup.
		return errors.New("memcached: the Store is a zero value, not built by memcached.New; use memcached.New(memcached.Options{Servers: ...})")
	}
	return s.err
}

// Client returns the Memcached client.
func (s *Store) Client() *memcache.Client { return s.client }

// safe reports whether every byte of name may appear in a Memcached key:
// printable ASCII, no space.
func safe(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// mkey is the Memcached key of name of kind ('e' or 'v'): see the package
// documentation. Distinct (kind, name) pairs give distinct keys.
func (s *Store) mkey(kind byte, name string) string {
	n := len(s.opts.Prefix) + 2 + len(name)
	if n <= maxKey && safe(name) {
		b := make([]byte, 0, n)
		b = append(b, s.opts.Prefix...)
		b = append(b, kind, ':')
		b = append(b, name...)
		return string(b)
	}
	sum := sha256.Sum256([]byte(name))
	b := make([]byte, 0, len(s.opts.Prefix)+2+base64.RawURLEncoding.EncodedLen(len(sum)))
	b = append(b, s.opts.Prefix...)
	b = append(b, kind, '#')
	b = base64.RawURLEncoding.AppendEncode(b, sum[:])
	return string(b)
}

// ready reports why no call may be made now, or nil.
func (s *Store) ready(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ok, probe := s.brk.allow()
	if !ok || (probe && s.recover() != nil) {
		return querycache.ErrStoreUnavailable
	}
	return nil
}

// BreakerOpen reports whether the circuit breaker is open (see
// Options.BreakerFailures).
func (s *Store) BreakerOpen() bool { return s.brk.openUntil.Load() != 0 }

// BreakerOpenings returns how many times the breaker has opened.
func (s *Store) BreakerOpenings() int64 { return s.brk.opened.Load() }

// breaker keeps a server that does not answer from adding Timeout to
// every query. It needs no goroutine: once open, the first call after each
// probe interval runs the probe (recover) before its own work. Only the
// probe closes it: an answer to a call that was already under way when it
// opened does not (the epochs must be replaced first).
type breaker struct {
	threshold int32 // <= 0: never opens
	probe     int64 // nanoseconds
	failures  atomic.Int32
	openUntil atomic.Int64 // Unix nanoseconds of the next probe; 0 when closed
	openedAt  atomic.Int64 // Unix nanoseconds of the last opening
	opened    atomic.Int64
	healing   atomic.Bool // an invalidation is going through the open breaker (Bump)
}

// allow reports whether a call may go to the server, and whether it must
// probe first (the breaker is open and due for a probe).
func (b *breaker) allow() (ok, probe bool) {
	u := b.openUntil.Load()
	if u == 0 {
		return true, false
	}
	now := time.Now().UnixNano()
	if now < u {
		return false, false
	}
	// One caller becomes the probe; the others wait for the next one.
	ok = b.openUntil.CompareAndSwap(u, now+b.probe)
	return ok, ok
}

// close closes the breaker: the probe got its answers.
func (b *breaker) close() {
	b.failures.Store(0)
	b.openUntil.Store(0)
}

// record counts the outcome of one call: answered (even NOT_STORED, a
// miss or a conflict) or not.
func (b *breaker) record(answered bool) {
	if answered {
		if b.failures.Load() != 0 && b.openUntil.Load() == 0 {
			b.failures.Store(0)
		}
		return
	}
	if b.threshold <= 0 || b.failures.Add(1) < b.threshold {
		return
	}
	now := time.Now().UnixNano()
	if b.openUntil.CompareAndSwap(0, now+b.probe) {
		b.openedAt.Store(now)
		b.opened.Add(1)
	}
}

// answered reports whether err came with an answer from the server.
func answered(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, memcache.ErrCacheMiss), errors.Is(err, memcache.ErrNotStored),
		errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrMalformedKey),
		serverTooLarge(err), serverRefused(err):
		return true
	}
	return false
}

// serverRefused reports an error line the server sent: SERVER_ERROR (out
// of memory under -M, say), which the client reports as an unexpected
// response line. The server answered: the breaker stays closed, and the
// calls it would answer are made (TestHostile25MemcachedOutOfMemoryIsAnAnswer).
func serverRefused(err error) bool {
	return err != nil && (errors.Is(err, memcache.ErrServerError) || strings.Contains(err.Error(), "memcache: unexpected response line"))
}

// do runs one client operation and records its outcome in the breaker.
func (s *Store) do(fn func() error) error {
	s.calls.Add(1)
	err := fn()
	s.brk.record(answered(err))
	return err
}

// expiration is Memcached's exptime for ttl: whole seconds rounded up
// (never 0, which means "never expires"), and beyond 30 days an absolute
// Unix time, as the protocol requires.
func expiration(ttl time.Duration) int32 {
	secs := int64(ttl / time.Second)
	if ttl%time.Second != 0 {
		secs++ // rounded up without adding to ttl first: a ttl near MaxInt64 overflowed to 1 s
	}
	if secs < 1 {
		secs = 1
	}
	const month = 30 * 24 * 3600
	if secs > month {
		secs += time.Now().Unix()
	}
	return int32(min(secs, math.MaxInt32))
}

// tokenBytes is how a token is stored: 16 hex digits, readable with
// memcached's own tools.
func tokenBytes(t uint64) []byte {
	b := make([]byte, 16)
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = hex[t&15]
		t >>= 4
	}
	return b
}

// parseToken reads a stored token; ok is false for anything else.
func parseToken(b []byte) (uint64, bool) {
	if len(b) != 16 {
		return 0, false
	}
	t, err := strconv.ParseUint(string(b), 16, 64)
	return t, err == nil && t != 0
}

// stale reports an error that a pooled connection the server has closed
// gives (a restarted server, an idle timeout): the command never ran.
func stale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// retry runs an idempotent operation, and once more on a fresh connection
// when the first failed on a stale one: after a server restart every
// pooled connection is dead, and without this each would cost one failed
// call. The idle connections are dropped first (they are most likely dead
// too). Compare-and-swap is never retried: a cas whose answer was lost may
// have stored, and a second try would report a conflict with itself.
func (s *Store) retry(fn func() error) error {
	err := fn()
	if err != nil && stale(err) {
		s.dropIdle()
		err = fn()
	}
	s.brk.record(answered(err))
	return err
}

// dropIdle closes the idle connections of a client New made (gomemcache's
// Close does only that; the client stays usable).
func (s *Store) dropIdle() {
	if s.own {
		_ = s.client.Close()
	}
}

// wrap adds context to a client error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("memcached: %s: %w", op, err)
}

// Fetch implements querycache.Store: one multi-get reads the entry and
// every version; a missing version is then created with add (re-read when
// another process added it first), and one that holds something else
// than a token (another program's value) is replaced with compare-and-swap.
func (s *Store) Fetch(ctx context.Context, key string, versions []string) ([]byte, []uint64, error) {
	if err := s.ready(ctx); err != nil {
		return nil, nil, err
	}
	mkeys := make([]string, 0, len(versions)+1)
	var ekey string
	if key != "" {
		ekey = s.mkey('e', key)
		mkeys = append(mkeys, ekey)
	}
	vkeys := make([]string, len(versions))
	for i, v := range versions {
		vkeys[i] = s.mkey('v', v)
		mkeys = append(mkeys, vkeys[i])
	}
	var items map[string]*memcache.Item
	if len(mkeys) > 0 {
		err := s.retry(func() (err error) {
			items, err = s.client.GetMulti(mkeys)
			return err
		})
		if err != nil {
			return nil, nil, wrap("get", err)
		}
	}
	var value []byte
	if it := items[ekey]; key != "" && it != nil && len(it.Value) > 0 {
		// An empty value reads as nothing, as in the other stores
		// (querycache.Swapper: old nil matches it).
		value = it.Value
	}
	tokens := make([]uint64, len(versions))
	for i, vk := range vkeys {
		it := items[vk]
		if it != nil {
			if t, ok := parseToken(it.Value); ok {
				tokens[i] = t
				continue
			}
		}
		t, err := s.settle(ctx, vk, it)
		if err != nil {
			return nil, nil, err
		}
		tokens[i] = t
		// A name listed twice reads one token.
		items[vk] = &memcache.Item{Key: vk, Value: tokenBytes(t)}
	}
	return value, tokens, nil
}

// settleAttempts bounds the loop of settle: each turn lost to another
// process means that process changed the version, so a few turns suffice
// unless the server evicts the key as fast as it is written.
const settleAttempts = 16

// settle returns the token of version key vk, which the multi-get found
// missing (it nil) or holding something other than a token. A missing
// version is created with add: of racing creators one stores, the others
// get NOT_STORED and read its token. Garbage is replaced by
// compare-and-swap, so racing repairers agree too.
func (s *Store) settle(ctx context.Context, vk string, it *memcache.Item) (uint64, error) {
	for range settleAttempts {
		if err := s.ready(ctx); err != nil {
			return 0, err
		}
		if it != nil {
			if t, ok := parseToken(it.Value); ok {
				return t, nil
			}
		}
		t := querycache.NewToken()
		var err error
		if it == nil {
			// Retried on a stale connection: an add that did run answers
			// NOT_STORED the second time, and we read our own token.
			err = s.retry(func() error { return s.client.Add(&memcache.Item{Key: vk, Value: tokenBytes(t)}) })
		} else {
			err = s.do(func() error {
				return s.client.CompareAndSwap(&memcache.Item{Key: vk, Value: tokenBytes(t), CasID: it.CasID})
			})
		}
		switch {
		case err == nil:
			return t, nil
		case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrCacheMiss):
			// Another process created or replaced it first (or it was
			// evicted under us): read what is there now.
		default:
			return 0, wrap("creating a version", err)
		}
		err = s.retry(func() (err error) {
			it, err = s.client.Get(vk)
			return err
		})
		if errors.Is(err, memcache.ErrCacheMiss) {
			it = nil
		} else if err != nil {
			return 0, wrap("reading a version", err)
		}
	}
	return 0, fmt.Errorf("memcached: version %q changed or vanished %d times while it was being read; the server may be evicting as fast as it stores", vk, settleAttempts)
}

// tooLarge reports whether an item of value under mkey exceeds the item
// limit.
func (s *Store) tooLarge(mkey string, value []byte) error {
	if n := len(mkey) + len(value) + itemOverhead; n > s.opts.MaxItemBytes {
		return fmt.Errorf("memcached: %w: a %d-byte value with its key and header is %d bytes, over the item limit of %d (memcached -I; Options.MaxItemBytes)", querycache.ErrTooLargeForStore, len(value), n, s.opts.MaxItemBytes)
	}
	return nil
}

// serverTooLarge reports the server's own refusal of a large item, for
// servers started with a smaller -I than MaxItemBytes says.
func serverTooLarge(err error) bool {
	return err != nil && strings.Contains(err.Error(), "too large")
}

// Put implements querycache.Store. A ttl <= 0 stores nothing. Memcached
// counts TTLs in whole seconds: ttl is rounded up to the next second.
// Versions need no extending: they are stored with no expiry.
func (s *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	if ttl <= 0 {
		return nil
	}
	ek := s.mkey('e', key)
	if err := s.tooLarge(ek, value); err != nil {
		s.drop(ek)
		return err
	}
	item := &memcache.Item{Key: ek, Value: value, Expiration: expiration(ttl)}
	err := s.retry(func() error { return s.client.Set(item) })
	if serverTooLarge(err) {
		// Memcached has already unlinked the old item; say why clearly.
		return fmt.Errorf("memcached: %w: the server refused a %d-byte value (%v); lower Options.MaxItemBytes to the servers' -I", querycache.ErrTooLargeForStore, len(value), err)
	}
	return wrap("set", err)
}

// drop deletes what mkey holds, best effort: after a refused Put the old
// value must not be served in place of the new one.
func (s *Store) drop(mkey string) {
	_ = s.do(func() error { return s.client.Delete(mkey) })
}

// Bump implements querycache.Store: every version is set to a fresh
// token, one round trip per version (the client does not pipeline). A
// replacement the server does not answer in Timeout is sent again until
// the invalidation's deadline (Options.InvalidateTimeout, invalidateBy).
func (s *Store) Bump(ctx context.Context, versions []string) error {
	deadline := s.invalidateBy(time.Now())
	healing := false
	defer func() {
		if healing {
			s.brk.healing.Store(false)
		}
	}()
	for _, v := range versions {
		err := s.ready(ctx)
		for errors.Is(err, querycache.ErrStoreUnavailable) {
			// An invalidation does not wait for the breaker's next probe:
			// another process, back in use already, would serve what this
			// write changed until then. It runs the probe itself, one at
			// a time (querycache's breaker.heal is the same rule): the
			// first closes the breaker when the server answers, the others
			// wait for it until their deadline.
			if healing || s.brk.healing.CompareAndSwap(false, true) {
				healing = true
				if err = s.untilAnswered(ctx, deadline, s.recover); err != nil {
					// Still down: unavailable, as a lookup would be told
					// (the cache counts a bypass, not a store error, and
					// keeps the invalidation pending).
					err = fmt.Errorf("memcached: the server did not answer the probe of the open breaker: %w (%w)", querycache.ErrStoreUnavailable, err)
				}
				break
			}
			if ctx.Err() != nil || !time.Now().Before(deadline) {
				break
			}
			time.Sleep(2 * time.Millisecond)
			err = s.ready(ctx)
		}
		if err != nil {
			return err
		}
		item := &memcache.Item{Key: s.mkey('v', v), Value: tokenBytes(querycache.NewToken())}
		err = s.untilAnswered(ctx, deadline, func() error { return s.retry(func() error { return s.client.Set(item) }) })
		if serverRefused(err) {
			// A full server (-M) refuses the set, and the old token would
			// stay current for as long as it stays full: the version is
			// deleted instead, which takes no memory. A reader then
			// creates a new random token (or, refused too, fails open),
			// so what recorded the old one misses
			// (TestHostile50StoresMemcachedFullServerBumpLeavesOldToken).
			err = s.untilAnswered(ctx, deadline, func() error {
				err := s.retry(func() error { return s.client.Delete(item.Key) })
				if errors.Is(err, memcache.ErrCacheMiss) {
					return nil
				}
				return err
			})
		}
		if err != nil {
			return wrap("replacing a version", err)
		}
	}
	return nil
}

// invalidateBy is the deadline of an invalidation that begins at now:
// InvalidateTimeout later, as a Redis invalidation waits for its answer;
// while the breaker is open, InvalidateTimeout after it opened, so that an
// old outage costs a write one probe (of Timeout) and a young one, which
// may be a stall that ends in a moment, is waited out. The ordering the
// wait prevents (TestHostile36MemcachedStallWriteServedStaleByIdleProcess):
//
//  1. the server stalls; W's calls time out (and its breaker may open,
//     a busy W's does); R is idle and its breaker stays closed
//  2. W writes a row: the version's replacement times out, the
//     invalidation is kept pending and the write returns
//  3. the server resumes; R reads the row's entry (same server, same
//     versions), stale, until W's engine retries (RetryInterval, 1 s)
func (s *Store) invalidateBy(now time.Time) time.Time {
	if s.brk.openUntil.Load() != 0 {
		return time.Unix(0, s.brk.openedAt.Load()).Add(s.opts.InvalidateTimeout)
	}
	return now.Add(s.opts.InvalidateTimeout)
}

// untilAnswered runs call, and again while it times out (the server
// holds the request unanswered) before deadline. Any other outcome, an
// answer, a refused connection or ctx ending, is returned at once.
func (s *Store) untilAnswered(ctx context.Context, deadline time.Time, call func() error) error {
	for {
		err := call()
		if err == nil || !timedOut(err) || ctx.Err() != nil || !time.Now().Before(deadline) {
			return err
		}
	}
}

// timedOut reports an error of a call the server did not answer in
// Timeout: it may be stalled, and may answer the next one.
func timedOut(err error) bool {
	if errors.As(err, new(*memcache.ConnectTimeoutError)) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// CompareAndSwap implements querycache.Swapper with Memcached's own
// primitives: add when old is nil (it stores only if the key holds
// nothing, and an expired item is nothing; an empty value also counts as
// nothing and is replaced by cas), otherwise gets, a byte comparison, and
// cas with the unique id gets returned (it stores only if nobody wrote the
// key since). Versions need no extending: they are stored with no expiry.
func (s *Store) CompareAndSwap(ctx context.Context, key string, old, value []byte, ttl time.Duration, versions []string) (bool, error) {
	if err := s.ready(ctx); err != nil {
		return false, err
	}
	if ttl <= 0 {
		return false, nil
	}
	ek := s.mkey('e', key)
	if err := s.tooLarge(ek, value); err != nil {
		return false, err
	}
	exp := expiration(ttl)
	if old != nil && len(old) == 0 {
		// An empty value counts as nothing: no key holds it.
		return false, nil
	}
	var err error
	if old == nil {
		err = s.swapFromNothing(ek, value, exp)
	} else {
		var it *memcache.Item
		err = s.retry(func() (err error) {
			it, err = s.client.Get(ek)
			return err
		})
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			return false, nil
		case err != nil:
			return false, wrap("get", err)
		case !bytes.Equal(it.Value, old):
			return false, nil
		}
		err = s.do(func() error {
			return s.client.CompareAndSwap(&memcache.Item{Key: ek, Value: value, Expiration: exp, CasID: it.CasID})
		})
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCASConflict), errors.Is(err, memcache.ErrCacheMiss):
		return false, nil
	case serverTooLarge(err):
		return false, fmt.Errorf("memcached: %w: the server refused a %d-byte value (%v); lower Options.MaxItemBytes to the servers' -I", querycache.ErrTooLargeForStore, len(value), err)
	default:
		return false, wrap("compare-and-swap", err)
	}
}

// swapFromNothing stores value under ek if ek holds nothing or an empty
// value (which counts as nothing): add, and when that finds an item, a cas
// from it if it is empty. It returns nil when it stored, ErrNotStored when
// ek holds a value.
func (s *Store) swapFromNothing(ek string, value []byte, exp int32) error {
	for range settleAttempts {
		err := s.do(func() error { return s.client.Add(&memcache.Item{Key: ek, Value: value, Expiration: exp}) })
		if !errors.Is(err, memcache.ErrNotStored) {
			return err
		}
		var it *memcache.Item
		err = s.retry(func() (err error) {
			it, err = s.client.Get(ek)
			return err
		})
		switch {
		case errors.Is(err, memcache.ErrCacheMiss):
			continue // gone since the add: add again
		case err != nil:
			return err
		case len(it.Value) > 0:
			return memcache.ErrNotStored
		}
		err = s.do(func() error {
			return s.client.CompareAndSwap(&memcache.Item{Key: ek, Value: value, Expiration: exp, CasID: it.CasID})
		})
		if !errors.Is(err, memcache.ErrCASConflict) && !errors.Is(err, memcache.ErrCacheMiss) && !errors.Is(err, memcache.ErrNotStored) {
			return err
		}
		// Written or dropped since we read it: look again.
	}
	return fmt.Errorf("memcached: key %q changed %d times during one compare-and-swap", ek, settleAttempts)
}

// Close implements querycache.Store: every later call returns ErrClosed,
// and the idle connections of a client New made are closed. A client
// passed in Options.Client is left open. Closing twice does nothing.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.stop != nil {
		close(s.stop)
	}
	if !s.own || s.client == nil {
		return nil
	}
	_ = s.client.Close()
	return nil
}
