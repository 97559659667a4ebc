package querycache

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestWatchVersionsFailedReadIsAStoreError: a read of the watched tokens
// that fails is counted among the store errors and logged, as every other
// failed store call is. The first read failing (a timeout on a loaded
// machine) makes the first read that succeeds call changed, and the
// plugin learn its catalog again: without the count, those catalog reads
// had no store error to explain them.
func TestWatchVersionsFailedReadIsAStoreError(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	log, logged := captureLogger()
	c, err := New(Options{
		Store:  NewRedisStore(client, RedisOptions{Timeout: time.Second}),
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop, err := c.WatchVersions([]string{c.Namespace().Epoch()}, time.Hour, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if st := c.Stats(); st.Errors != 1 {
		t.Errorf("Stats().Errors = %d after a watch's first read failed; want 1", st.Errors)
	}
	if st := c.Stats(); len(st.Bypasses) != 0 {
		t.Errorf("Stats().Bypasses = %v: a poll is no statement", st.Bypasses)
	}
	if !strings.Contains(logged.String(), "reading the watched versions failed") {
		t.Errorf("no warning logged for the failed read; log:\n%s", logged.String())
	}
}
