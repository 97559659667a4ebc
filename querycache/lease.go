package querycache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Leaser is a shared store that grants fill leases: short locks, one per
// entry key, that let one process query the database after a miss while
// the other processes wait for the value it stores (DESIGN.md,
// "Stampedes"). Within one process the engine's singleflight already
// makes concurrent misses share one fill; a lease does the same across
// processes. RedisStore implements it.
//
// A lease is an optimisation, never a correctness device: consistency
// comes from the versions each entry records. A lease that expires, is
// lost or cannot be taken costs extra database queries, never a stale hit.
type Leaser interface {
	// Lease tries to take the fill lease of the entry key for ttl. held
	// reports whether the caller got it; token identifies this holding
	// for PutLeased and ReleaseLease. held false with no error means
	// another filler holds it.
	Lease(ctx context.Context, key string, ttl time.Duration) (token string, held bool, err error)
	// PutLeased is PutFor for the holder of a lease: it stores value
	// under key for ttl, extends the versions like PutFor, and releases
	// the lease. It stores nothing, and returns ErrLeaseLost, when the
	// lease is now held by another filler (ours expired while we stalled
	// and someone took it over) or the store already holds an entry filled
	// after ours (it started later, so its result is not older).
	PutLeased(ctx context.Context, key string, value []byte, ttl time.Duration, versions []string, token string) error
	// ReleaseLease gives up a lease without storing (the fill failed or
	// was abandoned), so that waiting processes need not wait for it to
	// expire. It does nothing if the lease is no longer held with token.
	ReleaseLease(ctx context.Context, key, token string) error
}

// ErrLeaseLost is returned by PutLeased when the value was not stored
// because a newer fill superseded it. The engine counts it as a refusal
// ("lease_lost"), not as a store error.
var ErrLeaseLost = errors.New("querycache: fill lease lost to a newer fill; entry not stored")

// leaseGetter is a Leaser that can also read the entry in the round trip
// that takes the lease (RedisStore). The engine needs that read: a fill
// that completed between our probe and our lease (its holder stored and
// released just then) must be served, not run again. A Leaser without it
// costs one more Fetch per lease taken.
type leaseGetter interface {
	leaseAndGet(ctx context.Context, key string, ttl time.Duration) (token string, held bool, value []byte, err error)
}

// takeLease tries to take k's lease and, when held, returns the entry
// stored under k read after the lease was taken.
func (c *Cache) takeLease(ctx context.Context, k Key) (token string, held bool, raw []byte, err error) {
	if g, ok := c.stamp.leaser.(leaseGetter); ok {
		return g.leaseAndGet(ctx, k.Name, c.stamp.leaseTTL)
	}
	token, held, err = c.stamp.leaser.Lease(ctx, k.Name, c.stamp.leaseTTL)
	if err != nil || !held {
		return "", false, nil, err
	}
	raw, _, err = c.store.Fetch(ctx, k.Name, nil)
	if err != nil {
		// We hold the lease: fill, and let PutLeased fail if it must.
		return token, true, nil, nil
	}
	return token, true, raw, nil
}

// errNoLease is returned by a Leaser for a key it cannot lease (a Redis
// Cluster key whose lease would not share its slot). The engine fills
// without a lease, silently.
var errNoLease = errors.New("querycache: no lease for this key")

// LeaseMode says whether a Cache takes fill leases (Options.Lease).
type LeaseMode int

const (
	// LeaseAuto takes fill leases when the store implements Leaser.
	LeaseAuto LeaseMode = iota
	// LeaseOff never takes fill leases: each process fills on its own
	// (still once per key within the process).
	LeaseOff
)

// Defaults of the stampede options (documented on Options).
const (
	defaultLeaseTTL  = 2 * time.Second
	defaultLeaseWait = 200 * time.Millisecond
	// leasePollMin and leasePollMax bound the backoff between polls of a
	// waiting miss: short first (a fill often completes within a few
	// milliseconds), then no more than 50 polls a second per waiter.
	leasePollMin = 2 * time.Millisecond
	leasePollMax = 20 * time.Millisecond
)

// stampede holds a Cache's lease and early-refresh settings and state.
type stampede struct {
	leaser    Leaser // nil: no leases
	leaseTTL  time.Duration
	leaseWait time.Duration
	beta      float64 // <= 0: no early refresh

	// own counts the leases this process holds, by entry key. A miss that
	// finds the lease held by this very process does not wait for it:
	// either the singleflight already joined what could be joined, or the
	// holder is a streaming lookup whose caller's code is now looking the
	// same key up (waiting would wait for ourselves).
	mu  sync.Mutex
	own map[string]int

	// refreshing holds the keys this process is refreshing early (or
	// another process is), each with the time until which no other hit
	// here starts a refresh (xfetch.go); gates counts them.
	refreshing sync.Map
	gates      atomic.Int64
}

func (s *stampede) init(opts Options) error {
	switch {
	case opts.Lease != LeaseAuto && opts.Lease != LeaseOff:
		return fmt.Errorf("Options.Lease is %d; use querycache.LeaseAuto (the default) or querycache.LeaseOff", opts.Lease)
	case opts.LeaseTTL < 0:
		return fmt.Errorf("Options.LeaseTTL is %v; use a positive duration, or 0 for 2 seconds", opts.LeaseTTL)
	case opts.LeaseWait < 0:
		return fmt.Errorf("Options.LeaseWait is %v; use a positive duration, or 0 for 200ms", opts.LeaseWait)
	case math.IsNaN(opts.EarlyRefreshBeta) || math.IsInf(opts.EarlyRefreshBeta, 0):
		return fmt.Errorf("Options.EarlyRefreshBeta is %v; use a positive number (1 is the usual choice), 0 for 1, or -1 to disable early refresh", opts.EarlyRefreshBeta)
	}
	if l, ok := opts.Store.(Leaser); ok && opts.Lease == LeaseAuto {
		s.leaser = l
	}
	s.leaseTTL = opts.LeaseTTL
	if s.leaseTTL == 0 {
		s.leaseTTL = defaultLeaseTTL
	}
	s.leaseWait = opts.LeaseWait
	if s.leaseWait == 0 {
		s.leaseWait = defaultLeaseWait
	}
	s.beta = opts.EarlyRefreshBeta
	if s.beta == 0 {
		s.beta = 1
	}
	return nil
}

func (s *stampede) hold(key string) {
	s.mu.Lock()
	if s.own == nil {
		s.own = map[string]int{}
	}
	s.own[key]++
	s.mu.Unlock()
}

func (s *stampede) drop(key string) {
	s.mu.Lock()
	if s.own[key] <= 1 {
		delete(s.own, key)
	} else {
		s.own[key]--
	}
	s.mu.Unlock()
}

func (s *stampede) holds(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.own[key] > 0
}

// leased is what a miss learned from the lease: either a fresh value
// another process stored while we waited (found), or the versions to fill
// against and, when held, the lease token to store with.
type leased struct {
	token   string // the lease we hold; "" for none
	found   bool
	value   []byte
	tokens  []uint64  // the versions to record: read before we query
	created time.Time // when they were read
}

// lease runs after a miss, once this caller knows it would query the
// database (it leads the in-process fill, or runs alone): it tries the
// lease and, when another process holds it, waits for that process's
// value, polling the store, for at most LeaseWait. tokens are the versions
// the miss read at created; a wait reads them again, and a fill after a
// wait records the newest ones. valid is Lookup's check of a found value.
//
// Every failure fails open: the caller queries the database (and, if the
// store failed, its fill is probably not stored either).
func (c *Cache) lease(ctx context.Context, k Key, names []string, tokens []uint64, created time.Time, valid func([]byte) bool) leased {
	r := leased{tokens: tokens, created: created}
	if c.stamp.leaser == nil {
		return r
	}
	token, held, raw, err := c.takeLease(ctx, k)
	if err != nil {
		c.leaseFailed(ctx, err, k)
		return r
	}
	if held {
		return c.leaseTaken(ctx, k, r, token, raw, valid, false)
	}
	if c.stamp.holds(k.Name) {
		return r
	}
	c.stats.leaseWaits.Add(1)
	deadline := time.Now().Add(c.stamp.leaseWait)
	pause := leasePollMin
	timer := time.NewTimer(pause)
	defer timer.Stop()
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.stats.leaseTimeouts.Add(1)
			return r
		}
		timer.Reset(min(pause, left))
		select {
		case <-ctx.Done():
			// The caller gave up: its query will fail the same way.
			return r
		case <-timer.C:
		}
		pause = min(2*pause, leasePollMax)

		if c.pending.covers(names, c.ns.Epoch()) {
			// An invalidation failed while we waited: what the other
			// process stores may be older than it. Query, store nothing.
			return r
		}
		raw, cur, err := c.store.Fetch(ctx, k.Name, names)
		if err != nil {
			c.storeFailed(ctx, k.Tables, "querycache: store fetch failed while waiting for a fill lease; querying the database", err, "key", c.label(k))
			return r
		}
		at := c.now()
		if raw != nil {
			if e, derr := decodeEntryAt(k.Name, raw); derr == nil && e.fresh(at, cur) && (valid == nil || valid(e.payload)) {
				c.stats.leaseWaitHits.Add(1)
				c.stats.shared.Add(1)
				r.found, r.value = true, e.payload
				return r
			}
		}
		// Still nothing we may serve: the versions just read are the
		// newest ones to fill against. If the holder is gone (it failed,
		// stored nothing, or stored against versions a write has since
		// replaced), take over instead of waiting for nobody.
		r.tokens, r.created = cur, at
		token, held, raw, err := c.takeLease(ctx, k)
		if err != nil {
			c.leaseFailed(ctx, err, k)
			return r
		}
		if held {
			return c.leaseTaken(ctx, k, r, token, raw, valid, true)
		}
	}
}

// leaseTaken: we hold k's lease (token) and raw is the entry stored under
// k just after we took it. If that entry is fresh against the versions
// we read (its filler stored and released the lease between our read and
// ours), it is served and the lease given back (after a wait, that is a
// wait hit: the holder stored between our last poll and our lease);
// otherwise we fill.
//
// Serving it is safe: it recorded the tokens we read, so its filler read
// them too before querying, after every write whose versions they
// reflect; it is what a hit at our read would have served.
func (c *Cache) leaseTaken(ctx context.Context, k Key, r leased, token string, raw []byte, valid func([]byte) bool, waited bool) leased {
	c.leaseHeld(k.Name)
	if raw != nil {
		if e, derr := decodeEntryAt(k.Name, raw); derr == nil && e.fresh(c.now(), r.tokens) && (valid == nil || valid(e.payload)) {
			c.releaseLease(ctx, k, token)
			if waited {
				c.stats.leaseWaitHits.Add(1)
			}
			c.stats.shared.Add(1)
			r.found, r.value = true, e.payload
			return r
		}
	}
	r.token = token
	return r
}

func (c *Cache) leaseHeld(key string) {
	c.stats.leaseAcquired.Add(1)
	c.stamp.hold(key)
}

// leaseFailed counts a failed Lease call: an error of the store, unless
// it only says the key cannot be leased.
func (c *Cache) leaseFailed(ctx context.Context, err error, k Key) {
	if errors.Is(err, errNoLease) || errors.Is(err, ErrStoreUnavailable) || ctx.Err() != nil {
		return
	}
	c.stats.errors.Add(1)
	c.countTableErrors(k.Tables)
	c.warn(ctx, "querycache: fill lease failed; filling without one", err, "key", c.label(k))
}

// releaseLease gives up a lease held with token ("" does nothing). It
// runs even when ctx is cancelled (an abandoned fill must not hold the
// other processes back until the lease expires); the store's own timeout
// bounds it.
func (c *Cache) releaseLease(ctx context.Context, k Key, token string) {
	if token == "" {
		return
	}
	defer c.stamp.drop(k.Name)
	if err := c.stamp.leaser.ReleaseLease(context.WithoutCancel(ctx), k.Name, token); err != nil && !errors.Is(err, ErrStoreUnavailable) {
		// Harmless: the lease expires after LeaseTTL.
		c.warn(ctx, "querycache: releasing a fill lease failed; it will expire", err, "key", c.label(k))
	}
}
