package querycache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// TestGetOrSetJoinedFillHonoursItsOwnContext: Cache.GetOrSet's callers
// that joined another's fill return their own context's error when it
// ends, as the low-level API's do (TestKVJoinedFillHonoursItsOwnContext);
// the fill goes on and is stored.
func TestGetOrSetJoinedFillHonoursItsOwnContext(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer c.Close()
	k := querycache.Key{Name: "q", Tables: []string{"t"}, Versions: []string{"v:t"}, TTL: time.Minute}
	started, release := make(chan struct{}), make(chan struct{})
	leader := make(chan string, 1)
	go func() {
		v, _, err := c.GetOrSet(bg, k, func(context.Context) (querycache.Fill, error) {
			close(started)
			<-release
			return querycache.Fill{Value: []byte("rows")}, nil
		})
		if err != nil {
			leader <- "error: " + err.Error()
			return
		}
		leader <- string(v)
	}()
	<-started
	ctx, cancel := context.WithCancel(bg)
	follower := make(chan error, 1)
	go func() {
		_, _, err := c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
			t.Error("the follower ran a fill of its own")
			return querycache.Fill{}, errors.New("no")
		})
		follower <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it join
	cancel()
	select {
	case err := <-follower:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the follower returned %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a caller whose context ended still waits for another's fill")
	}
	close(release)
	if got := <-leader; got != "rows" {
		t.Fatalf("the leader got %q", got)
	}
	v, hit, err := c.GetOrSet(bg, k, func(context.Context) (querycache.Fill, error) {
		return querycache.Fill{Value: []byte("again")}, nil
	})
	if err != nil || !hit || string(v) != "rows" {
		t.Fatalf("after the fill: %q hit=%v err=%v; want the stored rows", v, hit, err)
	}
}

// TestGetOrSetPanicStaysWithItsCaller: a fill that panics panics in its
// own caller only; the callers that joined it fill on their own. With
// singleflight's Do, every joined caller panicked with it (each request
// of a server waiting on one failing query would abort).
func TestGetOrSetPanicStaysWithItsCaller(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer c.Close()
	k := querycache.Key{Name: "q", Tables: []string{"t"}, Versions: []string{"v:t"}, TTL: time.Minute}
	started, release := make(chan struct{}), make(chan struct{})
	leaderPanicked := make(chan any, 1)
	go func() {
		defer func() { leaderPanicked <- recover() }()
		_, _, _ = c.GetOrSet(bg, k, func(context.Context) (querycache.Fill, error) {
			close(started)
			<-release
			panic("boom")
		})
	}()
	<-started
	type result struct {
		v        string
		err      error
		panicked any
	}
	follower := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.panicked = recover()
			follower <- r
		}()
		v, _, err := c.GetOrSet(bg, k, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte("own")}, nil
		})
		r.v, r.err = string(v), err
	}()
	time.Sleep(20 * time.Millisecond) // let it join
	close(release)
	if p := <-leaderPanicked; p != "boom" {
		t.Errorf("the panicking fill's own caller recovered %v, want boom", p)
	}
	r := <-follower
	if r.panicked != nil {
		t.Fatalf("a caller that joined the panicking fill panicked too: %v", r.panicked)
	}
	if r.err != nil || r.v != "own" {
		t.Fatalf("the joined caller got %q, %v; want its own fill's value", r.v, r.err)
	}
}
