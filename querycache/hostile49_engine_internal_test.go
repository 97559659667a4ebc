package querycache

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// h49WaitFollowers waits until n callers have joined a fill of kv's flight
// group (no sleeping: the group counts them).
func h49WaitFollowers(t *testing.T, g *fillGroup, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for flightWaiters(g) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d callers joined the fill", flightWaiters(g), n)
		}
		runtime.Gosched()
	}
}

// A KV.GetOrSet fill that read inside a transaction that wrote (the GORM
// plugin calls UncommittedRead for such a read) is not stored (C3), but
// it is handed to every caller outside the transaction that joined the
// flight: they are served rows of a transaction that has not committed,
// and here rolls back. GetOrSetCaptured refuses to share such a fill
// (capturedFill.shareable); GetOrSet and Remember do not.
func TestHostile49EngineGetOrSetSharesUncommittedFill(t *testing.T) {
	c := newTestCache(t, Options{})
	kv := c.KV()
	ctx := context.Background()

	h := &holderOf{tables: []string{"users"}}
	c.HoldWrites(h) // the transaction wrote users and is open

	release := make(chan struct{})
	leaderDone := make(chan []byte)
	go func() {
		v, _, err := kv.GetOrSet(ctx, "user-count", func(ctx context.Context) ([]byte, error) {
			// The fill's query ran through the open transaction: it saw
			// the row the transaction inserted.
			UncommittedRead(ctx)
			<-release
			return []byte("count=2 (uncommitted insert)"), nil
		}, DependsOn("users"))
		if err != nil {
			t.Error(err)
		}
		leaderDone <- v
	}()
	for c.Stats().Fills == 0 {
		runtime.Gosched()
	}

	followerDone := make(chan []byte)
	go func() {
		// A request outside any transaction.
		v, _, err := kv.GetOrSet(ctx, "user-count", func(ctx context.Context) ([]byte, error) {
			return []byte("count=1"), nil // what the database holds, committed
		}, DependsOn("users"))
		if err != nil {
			t.Error(err)
		}
		followerDone <- v
	}()
	h49WaitFollowers(t, &kv.flight, 1)
	close(release)
	<-leaderDone
	got := <-followerDone
	c.ReleaseRolledBack(h) // the transaction rolls back

	if string(got) != "count=1" {
		t.Fatalf("a caller outside the transaction was served %q, read inside a transaction that rolled back; want the committed %q", got, "count=1")
	}
	if v, ok, _ := kv.Get(ctx, "user-count", DependsOn("users")); ok {
		t.Fatalf("stored %q from a transaction's read", v)
	}
}

// Remember, the typed form, shares the same way.
func TestHostile49EngineRememberSharesUncommittedFill(t *testing.T) {
	c := newTestCache(t, Options{})
	kv := c.KV()
	ctx := context.Background()

	release := make(chan struct{})
	leaderDone := make(chan int)
	go func() {
		n, err := Remember(ctx, kv, "users:count", time.Minute, func(ctx context.Context) (int, error) {
			UncommittedRead(ctx)
			<-release
			return 2, nil
		}, DependsOn("users"))
		if err != nil {
			t.Error(err)
		}
		leaderDone <- n
	}()
	for c.Stats().Fills == 0 {
		runtime.Gosched()
	}
	followerDone := make(chan int)
	go func() {
		n, err := Remember(ctx, kv, "users:count", time.Minute, func(ctx context.Context) (int, error) {
			return 1, nil
		}, DependsOn("users"))
		if err != nil {
			t.Error(err)
		}
		followerDone <- n
	}()
	h49WaitFollowers(t, &kv.flight, 1)
	close(release)
	<-leaderDone
	if got := <-followerDone; got != 1 {
		t.Fatalf("Remember outside the transaction returned %d, the leader's uncommitted read; want the committed 1", got)
	}
}

// Cache.GetOrSet: a fill that says its value must not be cached
// (Fill.NoStore, e.g. "transaction": read through a transaction that
// wrote) is handed to every caller that joined the flight, as if it were
// theirs. Only the leader's caller may see it: the others did not read
// inside that transaction. (Lookup gets this right: a follower of a fill
// whose leader stores nothing gets a Miss of its own.)
func TestHostile49EngineCacheGetOrSetSharesNoStoreFill(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	k := tableKey(c, "users", "SELECT count(*) FROM users")

	release := make(chan struct{})
	leaderDone := make(chan []byte)
	missesBefore := c.Stats().Misses
	go func() {
		v, _, err := c.GetOrSet(ctx, k, func(ctx context.Context) (Fill, error) {
			<-release
			return Fill{Value: []byte("dirty"), NoStore: "transaction"}, nil
		})
		if err != nil {
			t.Error(err)
		}
		leaderDone <- v
	}()
	followerDone := make(chan []byte)
	go func() {
		for c.Stats().Misses == missesBefore {
			runtime.Gosched()
		}
		v, _, err := c.GetOrSet(ctx, k, func(ctx context.Context) (Fill, error) {
			return Fill{Value: []byte("committed")}, nil
		})
		if err != nil {
			t.Error(err)
		}
		followerDone <- v
	}()
	waitJoined(t, c, missesBefore, 2)
	close(release)
	<-leaderDone
	if got := <-followerDone; string(got) != "committed" {
		t.Fatalf("a caller that joined was served %q, a fill its leader marked NoStore %q; want its own %q", got, "transaction", "committed")
	}
}

// A fill that asks for its own key again (a Remember whose function calls
// a helper that Remembers the same key: recursion through a cache layer)
// joins its own flight and waits for itself for ever: the call never
// returns, its goroutine and the flight entry leak, and every later caller
// of the key with the same versions hangs behind it.
func TestHostile49EngineReentrantGetOrSetDeadlocks(t *testing.T) {
	c := newTestCache(t, Options{})
	kv := c.KV()
	done := make(chan error, 1)
	go func() {
		var fill func(ctx context.Context) ([]byte, error)
		depth := 0
		fill = func(ctx context.Context) ([]byte, error) {
			depth++
			if depth > 1 {
				return []byte("inner"), nil
			}
			v, _, err := kv.GetOrSet(ctx, "k", fill, DependsOn("users"))
			return append([]byte("outer+"), v...), err
		}
		_, _, err := kv.GetOrSet(context.Background(), "k", fill, DependsOn("users"))
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("KV.GetOrSet whose fill calls GetOrSet of the same key has not returned in 5 s (%d callers wait in the flight): deadlock", flightWaiters(&kv.flight))
	}
}
