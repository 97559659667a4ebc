package querycache_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// l1pgOpen opens a cache on a PostgresStore of schema through addr (nil:
// directly).
func l1pgOpen(t *testing.T, schema string, proxy *testenv.Proxy, prefix string) (*querycache.Cache, *querycache.PostgresStore) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	must(t, err)
	if proxy != nil {
		host, port, _ := net.SplitHostPort(proxy.Addr())
		cfg.ConnConfig.Host = host
		p, _ := strconv.Atoi(port)
		cfg.ConnConfig.Port = uint16(p)
	}
	cfg.ConnConfig.ConnectTimeout = time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	t.Cleanup(pool.Close)
	st := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema})
	must(t, st.EnsureSchema(context.Background()))
	c, err := querycache.New(querycache.Options{Store: st, Prefix: prefix})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return c, st
}

// TestHostileL1PgInvalidationAfterCloseNotSent: the PostgreSQL store's
// version of TestHostileL1InvalidationAfterCloseNotSentOnceRedisIsBack:
// heal's probe runs on the store's life, which Close cancelled.
func TestHostileL1PgInvalidationAfterCloseNotSent(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	must(t, err)
	if err := pingPostgres(cfg); err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	dsn := testenv.PostgresSchema(t)
	schema := dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
	proxy := testenv.StartProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	w, wst := l1pgOpen(t, schema, proxy, "l1p:")
	r, _ := l1pgOpen(t, schema, nil, "l1p:")
	if got := l1read(t, r, "old"); got != "old" {
		t.Fatalf("first read %q", got)
	}
	proxy.Cut()
	waitUntil(t, "W's breaker opens", 10*time.Second, wst.BreakerOpen)
	proxy.Restore()
	must(t, w.Close())
	time.Sleep(100 * time.Millisecond)
	err = w.InvalidateTables(context.Background(), "users") // "new" committed
	t.Logf("invalidation after Close, PostgreSQL answering: %v", err)
	if got := l1read(t, r, "new"); got != "new" {
		t.Fatalf("R read %q after W's write returned: the invalidation after Close was not sent (%v)", got, err)
	}
}

// TestHostileL1PgCloseHeldByPendingRetry: Cache.Close waits for its retry
// loop, whose delivery of a pending invalidation is bounded by the
// store's InvalidateTimeout (and 5 × RetryInterval) only. A lock held on
// a version's row (README: a stalled backend, a transaction that locked
// it) holds the write's replacement, which falls back to the epoch and
// is kept pending; the breaker stays closed (reads answer), so the retry
// waits on the lock too, and Close waits for it: a shutdown held by the
// outage, what closeWait (1 s) was added to end for the store's own
// goroutines (TestCloseDuringProbeOfStoppedRedis, InvalidateTimeout "30 s
// if so configured").
func TestHostileL1PgCloseHeldByPendingRetry(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	must(t, err)
	if err := pingPostgres(cfg); err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	dsn := testenv.PostgresSchema(t)
	schema := dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	t.Cleanup(pool.Close)
	const invalidate = 10 * time.Second
	st := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, InvalidateTimeout: invalidate})
	must(t, st.EnsureSchema(context.Background()))
	w, err := querycache.New(querycache.Options{Store: st, Prefix: "l1q:"})
	must(t, err)
	t.Cleanup(func() { w.Close() })
	l1read(t, w, "old")
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	must(t, err)
	defer tx.Rollback(ctx)
	name := w.Namespace().TableVersion("users")
	var n int
	must(t, tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+pgxIdent(schema)+`.querycache_versions WHERE name = $1 FOR UPDATE) x`, []byte(name)).Scan(&n))
	if n != 1 {
		t.Fatalf("locked %d rows", n)
	}
	err = w.InvalidateTables(ctx, "users")
	t.Logf("W's invalidation returned: %v; pending %d, breaker open %v", err, w.Stats().Pending, st.BreakerOpen())
	if w.Stats().Pending == 0 {
		t.Fatal("delivered past the lock?")
	}
	time.Sleep(200 * time.Millisecond) // the retry (20 ms after the failure) waits on the lock
	done := make(chan time.Duration, 1)
	start := time.Now()
	go func() { w.Close(); done <- time.Since(start) }()
	select {
	case d := <-done:
		t.Logf("Close took %v", d)
		if d > 3*time.Second {
			t.Fatalf("Close took %v: held by the retry of a pending invalidation waiting on a row lock (InvalidateTimeout %v)", d, invalidate)
		}
	case <-time.After(invalidate + 5*time.Second):
		t.Fatal("Close did not return")
	}
}

func pgxIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
