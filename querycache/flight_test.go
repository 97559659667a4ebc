package querycache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// getOrSetCall is one of the calls that fill through a flight, reduced to
// what the flight tests need: key, fill, value.
type getOrSetCall func(ctx context.Context, c *querycache.Cache, key string, fill func() ([]byte, error)) ([]byte, bool, error)

var getOrSetCalls = []struct {
	name string
	call getOrSetCall
}{
	{"Cache.GetOrSet", func(ctx context.Context, c *querycache.Cache, key string, fill func() ([]byte, error)) ([]byte, bool, error) {
		k := querycache.Key{Name: key, Tables: []string{"t"}, Versions: []string{"v:t"}, TTL: time.Minute}
		return c.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
			b, err := fill()
			return querycache.Fill{Value: b}, err
		})
	}},
	{"KV.GetOrSet", func(ctx context.Context, c *querycache.Cache, key string, fill func() ([]byte, error)) ([]byte, bool, error) {
		return c.KV().GetOrSet(ctx, key, func(context.Context) ([]byte, error) { return fill() })
	}},
	{"KV.GetOrSetCaptured", func(ctx context.Context, c *querycache.Cache, key string, fill func() ([]byte, error)) ([]byte, bool, error) {
		return c.KV().GetOrSetCaptured(ctx, key, func(context.Context) ([]byte, error) { return fill() })
	}},
}

// TestJoinedFillHonoursItsOwnContext: a caller that joined another's fill
// of the same key (Cache.GetOrSet, KV.GetOrSet, KV.GetOrSetCaptured)
// returns its own context's error as soon as that context ends, while the
// fill goes on; the fill's value is still stored and served afterwards.
// With singleflight's Do, every request for a page whose render hung
// stayed until it ended, those whose clients had left too.
func TestJoinedFillHonoursItsOwnContext(t *testing.T) {
	for _, tc := range getOrSetCalls {
		t.Run(tc.name, func(t *testing.T) {
			c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
			must(t, err)
			defer c.Close()
			started, release := make(chan struct{}), make(chan struct{})
			leader := make(chan string, 1)
			go func() {
				v, _, err := tc.call(bg, c, "page", func() ([]byte, error) {
					close(started)
					<-release
					return []byte("rendered"), nil
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
				_, _, err := tc.call(ctx, c, "page", func() ([]byte, error) {
					t.Error("the follower ran a fill of its own")
					return nil, errors.New("no")
				})
				follower <- err
			}()
			time.Sleep(20 * time.Millisecond) // let it join (if not yet, it finds its context ended)
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
			if got := <-leader; got != "rendered" {
				t.Fatalf("the leader got %q", got)
			}
			v, hit, err := tc.call(bg, c, "page", func() ([]byte, error) { return []byte("again"), nil })
			if err != nil || !hit || string(v) != "rendered" {
				t.Fatalf("after the fill: %q hit=%v err=%v; want the stored value", v, hit, err)
			}
		})
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
