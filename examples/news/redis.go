package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// sharedRedis is the Redis the demo runs on: its client, and the prefix
// under which every key the demo writes lives.
type sharedRedis struct {
	client  *redis.Client
	url     string
	display string // url without its password, for the report
	prefix  string
}

// connectRedis parses rawURL and checks that the server answers. The store
// itself would fail open on a Redis that is not there (every read going to
// the database, which is what an application wants); a demo that claims to
// show Redis must say instead that it cannot.
func connectRedis(rawURL, prefix string) (*sharedRedis, error) {
	display := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		display = u.Redacted()
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("-redis %s: %v (use redis://host:port/db, e.g. redis://127.0.0.1:6379/1)", display, err)
	}
	// Probe once, without the client's retries (each would log a failed
	// dial before the message below says the same).
	probeOpt := *opt
	probeOpt.MaxRetries = -1
	probe := redis.NewClient(&probeOpt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = probe.Ping(ctx).Err()
	probe.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s: %v (start redis-server, fix -redis, or drop -redis to run on the in-process memory store)", display, err)
	}
	return &sharedRedis{client: redis.NewClient(opt), url: rawURL, display: display, prefix: prefix}, nil
}

// close deletes the demo's keys and closes the client. SCAN + UNLINK walks
// the whole logical database, which is fine for a demo; an application
// lets its keys expire (every key the store writes has a TTL).
func (s *sharedRedis) close(out io.Writer) {
	defer s.client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := deleteKeys(ctx, s.client, s.prefix)
	if err != nil {
		fmt.Fprintf(out, "deleting the demo's keys %s*: %v\n", s.prefix, err)
		return
	}
	fmt.Fprintf(out, "deleted the demo's %d keys under %s\n", n, s.prefix)
}

// deleteKeys unlinks every key that starts with prefix and returns how
// many there were.
func deleteKeys(ctx context.Context, c *redis.Client, prefix string) (int, error) {
	pattern := globEscape(prefix) + "*"
	n := 0
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += len(keys)
		}
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

// globEscape escapes the characters MATCH treats specially, so that a
// prefix holding one (say "a*") matches only keys that start with it.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
