package querycache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"
)

// A Redis server can lose writes without restarting: DEBUG RELOAD of an
// older dump, FLUSHALL followed by a restore of a backup, a master made a
// replica of a lagging node and promoted back. Its run_id stays, its
// pooled connections stay, and the marker that identity checks comes back
// equal to that run_id; the version tokens our invalidations replaced come
// back with the entries recorded against them. The ordering it prevents:
//
//  1. process A caches row 1 (entry E against token T1 of v:obj:1)
//  2. the dataset is saved (a dump, a backup, a replica's copy)
//  3. process B writes row 1 and replaces v:obj:1 with T2
//  4. the dataset is rolled back to step 2: v:obj:1 = T1 again
//  5. A (or anyone) looks up row 1: E matches T1, the old row is served
//
// (TestRedisRollback*, found by a hostile run.) So every bump of this
// store also increments a counter of its own, a key that no other process
// writes: INCR answers one more than the last answer this store saw,
// unless the data went back. Read back every rollbackEvery, a
// counter lower than the highest seen (or gone) means the step-3 bump may
// be lost: the epoch of every bound namespace is replaced, with a
// broadcast for the two-level stores, and counted as a server change.
//
// It detects what the bumps of this process lost, within rollbackEvery of
// the rollback (a bump's own INCR that answers low wakes the check at
// once); a rollback that lost only the bumps of a process gone since goes
// unseen, and so does one on a Cluster (its counter would live on one
// node of many). An evicted counter is taken for a rollback: an epoch
// change, never a stale hit.
type rollbackCheck struct {
	key  atomic.Pointer[string] // this store's counter; nil until a namespace is bound
	max  atomic.Int64           // the highest value of the counter seen
	kick chan struct{}          // a bump's INCR answered low: check now
	once sync.Once              // starts the check
}

// rollbackEvery is how often the counter is read back.
const rollbackEvery = time.Second

// counterTTL is how long a counter outlives the last check or bump that
// touched it: a minute after its process stopped, it is gone (a command
// run per request leaves none behind for a day). A live process whose
// checks stopped for that long (its breaker open) finds it gone: an epoch
// change, which the breaker's recovery makes anyway.
const counterTTL = time.Minute

// bindRollback names the counter under the first namespace bound, and
// starts its check; a Cluster has none.
func (s *RedisStore) bindRollback(prefix string) {
	if s.cluster || s.err != nil {
		return
	}
	s.roll.once.Do(func() {
		k := prefix + "rollback:" + tokenString(NewToken())
		kick := make(chan struct{}, 1)
		s.roll.kick = kick
		s.roll.key.Store(&k)
		// The loop holds the store weakly, and is not one of the store's
		// goroutines that Close waits for (goLive's would hold it): it
		// keeps no store dropped without Close alive, nor, through the
		// store's recovery functions, its Cache and the entries in it.
		go rollbackLoop(weak.Make(s), s.closed, kick)
	})
}

// countBump queues the counter's INCR, and its TTL, in a bump's pipeline;
// nil when there is no counter.
func (s *RedisStore) countBump(ctx context.Context, p redis.Pipeliner) (*redis.IntCmd, *redis.BoolCmd) {
	k := s.roll.key.Load()
	if k == nil {
		return nil, nil
	}
	return p.Incr(ctx, *k), p.PExpire(ctx, *k, counterTTL)
}

// counted takes the INCR's answer of a bump that succeeded. An INCR that
// failed (the counter overwritten with something else) wakes the check
// too: it reads the garbage as a counter gone.
func (s *RedisStore) counted(incr *redis.IntCmd) {
	if incr.Err() != nil || !s.roll.saw(incr.Val()) {
		select {
		case s.roll.kick <- struct{}{}:
		default:
		}
	}
}

// saw raises max to v; false when v is not above it (only this store
// increments the counter: the data went back).
func (r *rollbackCheck) saw(v int64) bool {
	for {
		m := r.max.Load()
		if v <= m {
			return false
		}
		if r.max.CompareAndSwap(m, v) {
			return true
		}
	}
}

// rollbackGap is the least time between two checks: concurrent bumps'
// answers reach saw out of order (6 before 5), and each late one kicks a
// check that finds nothing.
const rollbackGap = 50 * time.Millisecond

// rollbackLoop reads the counter of the store w back until the store is
// closed or collected.
func rollbackLoop(w weak.Pointer[RedisStore], closed, kick <-chan struct{}) {
	t := time.NewTicker(rollbackEvery)
	defer t.Stop()
	// Close cancels a check in flight rather than wait for its timeout.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-closed:
			return
		case <-t.C:
		case <-kick:
		}
		s := w.Value()
		if s == nil {
			return
		}
		s.checkRollback(ctx) // s is not held past this: not while waiting
		select {
		case <-closed:
			return
		case <-time.After(rollbackGap):
		}
	}
}

// checkRollback reads the counter once and replaces the epochs when it
// went back. The highest value is read before the counter is: a bump
// that raises both meanwhile cannot make an unchanged counter look low.
func (s *RedisStore) checkRollback(ctx context.Context) {
	k := s.roll.key.Load()
	m := s.roll.max.Load()
	if k == nil || m == 0 {
		return // nothing bumped yet: nothing to lose
	}
	if s.brk.open.Load() {
		return // Redis is not answering; the recovery replaces the epoch
	}
	// Not through the breaker: a check that fails says nothing a call of
	// the application's would not, and counted, the checks of an idle
	// process opened its breaker on their own.
	rctx, cancel := context.WithTimeout(ctx, s.opts.InvalidateTimeout)
	defer cancel()
	p := s.client.Pipeline()
	get := p.Get(rctx, *k)
	p.PExpire(rctx, *k, counterTTL)
	_, _ = p.Exec(rctx)
	if err := get.Err(); err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
		return // unanswered
	}
	cur, err := get.Int64()
	if err != nil {
		cur = 0 // gone, or not a counter: lower than anything seen
	}
	if cur >= m {
		return
	}
	if err := s.replaceEpochsFor(ctx, *k, cur, m); err != nil {
		return // the next check finds the counter low again
	}
	s.ident.mu.Lock()
	s.ident.changes++
	s.ident.mu.Unlock()
	s.logWarn("querycache: Redis lost writes without restarting (a reload, a restore, a resync); invalidated every entry",
		"counter", cur, "highest_seen", m)
}

// replaceEpochsFor replaces the epoch of every bound namespace, through
// Bump (a broadcast for the two-level stores' first levels), after
// setting the counter k, and the highest value seen, m, to cur (garbage
// over the counter becomes a counter again): the bump's own INCR then
// counts from there. Not replaced, m is seen again.
func (s *RedisStore) replaceEpochsFor(ctx context.Context, k string, cur, m int64) error {
	nss := s.ident.namespaces()
	epochs := make([]string, 0, len(nss))
	for _, ns := range nss {
		epochs = append(epochs, ns.Epoch())
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.InvalidateTimeout)
	defer cancel()
	s.roll.max.Store(cur)
	err := s.client.Set(ctx, k, cur, counterTTL).Err()
	if err == nil {
		err = s.Bump(ctx, epochs)
	}
	if err != nil {
		s.roll.saw(m)
		return err
	}
	return nil
}
