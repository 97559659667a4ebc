package querycache

import (
	"context"
	"sync"
)

// coalescer merges concurrent identical store calls, so that N goroutines
// missing one key make about one round trip instead of N (which, queued on
// the client's connection pool during a stampede, time out and open the
// breaker, sending all N to the database).
//
// A caller only ever joins a batch that has not been sent yet. Joining a
// call already in flight would be wrong; the ordering it prevents:
//
//  1. call L is sent and reads version v = T1
//  2. a writer commits and replaces v with T2; its Commit returns
//  3. caller C starts a lookup, joins L, and is handed T1 and the old
//     entry: a read that started after the commit returned sees the old
//     row (C1)
//
// So per key at most one batch is in flight and one more gathers callers;
// the gathering batch is sent when the one in flight ends, with every
// caller that arrived meanwhile.
type coalescer[T any] struct {
	mu sync.Mutex
	m  map[string]*coalesceSlot[T]
}

type coalesceSlot[T any] struct {
	running *coalesceBatch[T] // sent
	next    *coalesceBatch[T] // gathering callers, not sent yet
}

type coalesceBatch[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// do returns fn's result for a batch sent after the caller arrived. shared
// reports that another caller ran fn. Callers must not modify a shared
// value.
func (c *coalescer[T]) do(ctx context.Context, key string, fn func() (T, error)) (val T, err error, shared bool) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*coalesceSlot[T]{}
	}
	s := c.m[key]
	if s == nil {
		s = &coalesceSlot[T]{}
		c.m[key] = s
	}
	if s.running == nil {
		b := &coalesceBatch[T]{done: make(chan struct{})}
		s.running = b
		c.mu.Unlock()
		return c.run(key, s, b, fn)
	}
	if b := s.next; b != nil {
		c.mu.Unlock()
		select {
		case <-b.done:
			return b.val, b.err, true
		case <-ctx.Done():
			return val, ctx.Err(), false
		}
	}
	b := &coalesceBatch[T]{done: make(chan struct{})}
	s.next = b
	prev := s.running
	c.mu.Unlock()
	// Lead the next batch once the one in flight ends. Not on ctx: the
	// callers who joined this batch wait for it.
	<-prev.done
	c.mu.Lock()
	s.running, s.next = b, nil
	c.mu.Unlock()
	return c.run(key, s, b, fn)
}

func (c *coalescer[T]) run(key string, s *coalesceSlot[T], b *coalesceBatch[T], fn func() (T, error)) (T, error, bool) {
	b.val, b.err = fn()
	c.mu.Lock()
	if s.next == nil {
		delete(c.m, key)
	}
	// Otherwise the next batch's leader, waiting for b.done, takes the
	// slot over.
	c.mu.Unlock()
	close(b.done)
	return b.val, b.err, false
}
