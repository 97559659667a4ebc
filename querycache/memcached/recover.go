package memcached

import (
	"fmt"
	"log/slog"
	"slices"

	"querycache.dev/keys"
	"querycache.dev/querycache"

	"github.com/bradfitz/gomemcache/memcache"
)

// BindNamespace tells the store the namespace of a querycache.Cache using
// it (querycache.New calls it): a recovery replaces that namespace's epoch.
func (s *Store) BindNamespace(ns keys.Namespace) {
	s.startHeartbeat()
	s.recMu.Lock()
	defer s.recMu.Unlock()
	for _, n := range s.nss {
		if n == ns {
			return
		}
	}
	s.nss = append(s.nss, ns)
}

// OnRecover registers fn to run each time the breaker closes again (on a
// goroutine of its own). A nil fn is ignored ("go fn()" of it ended the
// process, on the goroutine of the query that found the server back), and
// a panic in fn is logged (slog.Default), not left to end the process.
// A function registered here stays for the store's life; querycache.New
// registers its cache's through OnRecoverFor, taken back by its Close.
func (s *Store) OnRecover(fn func()) { s.OnRecoverFor(nil, fn) }

// OnRecoverFor is OnRecover for owner, whose functions DropRecover takes
// back: querycache.New registers the delivery, first thing, of the
// invalidations its cache could not deliver meanwhile, and the cache's
// Close drops it (kept, a store shared by caches made and closed over a
// process's life held every closed cache, and called it at each recovery).
func (s *Store) OnRecoverFor(owner any, fn func()) {
	if fn == nil {
		return
	}
	s.recMu.Lock()
	s.recoverFns = append(s.recoverFns, ownedFn{owner, fn})
	s.recMu.Unlock()
}

// DropRecover removes the functions owner registered with OnRecoverFor
// (a nil owner's, those of OnRecover, are never removed).
func (s *Store) DropRecover(owner any) {
	if owner == nil {
		return
	}
	s.recMu.Lock()
	s.recoverFns = slices.DeleteFunc(s.recoverFns, func(r ownedFn) bool { return r.owner == owner })
	s.recMu.Unlock()
}

// ownedFn is a recovery function and who registered it (nil: OnRecover).
type ownedFn struct {
	owner any
	fn    func()
}

// probeVersion is the version a probe replaces when no cache is bound.
const probeVersion = "querycache:probe"

// recover is the breaker's probe: it replaces the epoch of every bound
// namespace (a write: a server that answers is one that stores) and, when
// every one is replaced, closes the breaker and starts the recovery
// functions. The epochs are replaced before any lookup reaches the server
// again because an outage may have hidden invalidations this process never
// saw fail: another process's, which stayed pending while it was cut off
// and this one was not, would otherwise be served stale here until that
// process's retry (its RetryInterval, a second), as the Redis store does.
// Before, the breaker closed on any answer and a reader served a value
// another process's write had changed for about that second after a
// partition healed (TestHostile25MemcachedAllCutOffThenHealed).
func (s *Store) recover() error {
	s.recMu.Lock()
	names := make([]string, 0, len(s.nss))
	for _, ns := range s.nss {
		names = append(names, ns.Epoch())
	}
	fns := slices.Clone(s.recoverFns)
	s.recMu.Unlock()
	if len(names) == 0 {
		names = append(names, probeVersion)
	}
	for _, n := range names {
		item := &memcache.Item{Key: s.mkey('v', n), Value: tokenBytes(querycache.NewToken())}
		// retry feeds the breaker; an answer does not close it (only
		// close below does), so the epochs are all replaced first.
		if err := s.retry(func() error { return s.client.Set(item) }); err != nil {
			return err
		}
	}
	s.brk.close()
	for _, r := range fns {
		go runRecovery(r.fn)
	}
	return nil
}

// runRecovery runs an OnRecover function on a goroutine of its own, where
// no caller can recover a panic: it is logged instead.
func runRecovery(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			slog.Default().Error("querycache/memcached: an OnRecover function panicked", "panic", fmt.Sprint(r))
		}
	}()
	fn()
}
