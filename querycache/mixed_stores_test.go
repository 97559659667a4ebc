package querycache

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
)

// TestPlainRedisWriterReachesTieredReader: a process on the plain Redis
// store (a worker) and one on the two-level store (a web server) share a
// prefix. The reader serves a value from its memory; the plain writer
// invalidates it; the reader hears the write (the plain store announces
// its bumps on the namespace's channel) and does not serve the old value
// afterwards. Without the announcement it served its copy until
// L1VersionTTL (a minute) and this times out.
func TestPlainRedisWriterReachesTieredReader(t *testing.T) {
	prefix := testenv.TestPrefix(t)
	reader := newTieredProc(t, tieredProcOpts{prefix: prefix})
	reader.waitSubscribed(t)
	opt, err := redis.ParseURL(testenv.SharedRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	writer, err := New(Options{Store: NewRedisStore(client, RedisOptions{Timeout: testenv.StoreTimeout}), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })

	old, _ := reader.get(t, "users", "q", "one")
	hits := reader.store.Stats().L1Hits
	if v, hit := reader.get(t, "users", "q", "x"); !hit || v != old || reader.store.Stats().L1Hits != hits+1 {
		t.Fatalf("the reader's second read: %q hit=%v, not from its memory", v, hit)
	}
	seen := reader.store.Stats().Broadcasts
	if err := writer.InvalidateTables(context.Background(), "users"); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "the reader to hear the plain store's write", func() bool { return reader.store.Stats().Broadcasts > seen })
	if v, _ := reader.get(t, "users", "q", "two"); v != "two" {
		t.Fatalf("after the plain store's write was announced the reader served %q", v)
	}
}

// TestPlainPostgresWriterReachesTieredReader is the same for the
// PostgreSQL store and its two-level form.
func TestPlainPostgresWriterReachesTieredReader(t *testing.T) {
	schema := pgTestSchema(t)
	reader := newPgTieredProc(t, schema, "mx:", pgTieredOpts{})
	reader.waitSubscribed(t)
	writer, err := New(Options{Store: newPgTestStore(t, pgTestPool(t, "", 2), schema, PostgresOptions{}), Prefix: "mx:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })
	k := tableKey(reader.cache, "users", "SELECT * FROM users")
	if v, _ := reader.get(t, k, "one"); v != "one" {
		t.Fatalf("fill: %q", v)
	}
	hits := reader.store.Stats().L1Hits
	if v, hit := reader.get(t, k, "x"); !hit || v != "one" || reader.store.Stats().L1Hits != hits+1 {
		t.Fatalf("the reader's second read: %q hit=%v, not from its memory", v, hit)
	}
	seen := reader.store.Stats().Broadcasts
	if err := writer.InvalidateTables(context.Background(), "users"); err != nil {
		t.Fatal(err)
	}
	tieredWait(t, "the reader to hear the plain store's write", func() bool { return reader.store.Stats().Broadcasts > seen })
	if v, _ := reader.get(t, k, "two"); v != "two" {
		t.Fatalf("after the plain store's write was announced the reader served %q", v)
	}
}
