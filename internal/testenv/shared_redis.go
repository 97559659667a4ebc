package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisTestDB is the logical database tests use on the shared Redis
// unless QUERYCACHE_REDIS_TEST_DB says otherwise.
const DefaultRedisTestDB = 11

// RedisTestDB returns the logical database for tests on the shared Redis:
// QUERYCACHE_REDIS_TEST_DB, or DefaultRedisTestDB. DB 0 (everyone's default)
// and DB 9 are never allowed, so a test cannot touch data it does not own;
// asking for them fails the test.
func RedisTestDB(t testing.TB) int {
	t.Helper()
	db := DefaultRedisTestDB
	if v := os.Getenv("QUERYCACHE_REDIS_TEST_DB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("QUERYCACHE_REDIS_TEST_DB=%q is not a database number", v)
		}
		db = n
	}
	if db == 0 || db == 9 {
		t.Fatalf("QUERYCACHE_REDIS_TEST_DB=%d: tests never use Redis DB 0 or 9", db)
	}
	return db
}

// SharedRedis returns the URL of the shared Redis (RedisURL) with its
// logical database replaced by RedisTestDB, after checking that the server
// answers PING; if it does not, Unavailable skips (or fails) the test.
// Tests share this database: keep to keys under TestPrefix, never FLUSHDB.
func SharedRedis(t testing.TB) string {
	t.Helper()
	raw := RedisURL()
	db := RedisTestDB(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("QUERYCACHE_REDIS_URL %q: %v", raw, err)
	}
	u.Path = "/" + strconv.Itoa(db)
	u.RawPath = ""
	q := u.Query()
	if q.Has("db") { // go-redis also reads ?db=; it must not undo the override
		q.Del("db")
		u.RawQuery = q.Encode()
	}
	testURL := u.String()

	opt, err := redis.ParseURL(testURL)
	if err != nil {
		t.Fatalf("QUERYCACHE_REDIS_URL %q: %v", raw, err)
	}
	if opt.DB != db {
		t.Fatalf("QUERYCACHE_REDIS_URL %q resolves to DB %d, want test DB %d", raw, opt.DB, db)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		Unavailable(t, "Redis", err)
	}
	return testURL
}

// TestPrefix returns a key prefix unique to this call, "qct:<16 hex>:", for
// keys a test writes on the shared Redis (SharedRedis, so the test is
// skipped if that is down). When the test ends, every key matching the
// prefix in the test database is deleted (SCAN MATCH, then DEL), and nothing
// else: other tests' keys have other prefixes.
func TestPrefix(t testing.TB) string {
	t.Helper()
	u := SharedRedis(t)
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "qct:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		if err := deleteMatching(u, prefix+"*"); err != nil {
			t.Logf("cleaning keys %s* on %s: %v", prefix, u, err)
		}
	})
	return prefix
}

func deleteMatching(u, pattern string) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			// UNLINK, not DEL: same effect for the test, freed off-thread.
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("unlink: %w", err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
