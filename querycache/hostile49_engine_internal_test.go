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
