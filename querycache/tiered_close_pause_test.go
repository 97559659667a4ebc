package querycache_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestTieredCloseDuringPause: Close of a two-level store whose
// subscription is reconnecting to a Redis under CLIENT PAUSE ALL returned
// only when go-redis gave up the connection's setup, about 5 s later
// (PubSub.Close waits for the Subscribe holding its lock): a shutdown
// held by the store. Found by a hostile run (issue 8, thirty-eighth
// session). Close now waits for the subscription at most
// RedisOptions.InvalidateTimeout; the subscription's goroutine ends on
// its own.
func TestTieredCloseDuringPause(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	ts := querycache.NewTieredStore(querycache.NewRedisStore(client, querycache.RedisOptions{}), querycache.TieredOptions{PingInterval: 200 * time.Millisecond})
	c, err := querycache.New(querycache.Options{Store: ts, Prefix: "app:"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := querycache.Key{Name: "app:q:1", Versions: []string{c.Namespace().TableVersion("t")}}
	if _, _, err := c.GetOrSet(ctx, k, valueFill("v", nil)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !ts.Subscribed() {
		if time.Now().After(deadline) {
			t.Fatal("never subscribed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer admin.Close()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", 20000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	defer admin.Do(context.Background(), "CLIENT", "UNPAUSE")
	// Unanswered PINGs make the subscription reconnect: its setup waits.
	for ts.Subscribed() {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the subscription never noticed the pause")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		c.Close()
		done <- time.Since(start)
	}()
	select {
	case d := <-done:
		t.Logf("Close took %v", d)
	case <-time.After(3 * time.Second):
		t.Fatalf("Close still blocked after 3 s of a 20 s pause")
	}
}
