package querycache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"querycache.dev/querycache"
)

// TestKVJoinedFillHonoursItsOwnContext: a caller that joined another's fill
// of the same key (GetOrSet, GetOrSetCaptured) returns its own context's
// error as soon as that context ends, while the fill goes on; the fill's
// value is still stored and served to the callers that stayed. With
// singleflight's Do, every request for a page whose render hung stayed
// until it ended, those whose clients had left too.
func TestKVJoinedFillHonoursItsOwnContext(t *testing.T) {
	for _, captured := range []bool{false, true} {
		t.Run(map[bool]string{false: "GetOrSet", true: "GetOrSetCaptured"}[captured], func(t *testing.T) {
			c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
			must(t, err)
			defer c.Close()
			kv := c.KV()
			getOrSet := kv.GetOrSet
			if captured {
				getOrSet = kv.GetOrSetCaptured
			}
			started, release := make(chan struct{}), make(chan struct{})
			leader := make(chan string, 1)
			go func() {
				v, _, err := getOrSet(bg, "page", func(context.Context) ([]byte, error) {
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
				_, _, err := getOrSet(ctx, "page", func(context.Context) ([]byte, error) {
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
			kvMustGet(t, kv, "page", "rendered")
		})
	}
}
