package querycache_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHeartbeatIdleProcessAfterStall: Redis stalls for longer than
// InvalidateTimeout (SIGSTOP of a private server). Writer W's
// invalidation is not delivered and W's call returns with it pending.
// Reader R makes no call during the stall. When Redis resumes, every read
// R starts must see the write (C1): R's heartbeat failed during the stall
// and opened its breaker, so R replaces the epoch before it uses Redis
// again. Without the heartbeat R served its entry from before the write,
// in about half of such stalls, until W's retry delivered (a hostile run,
// issue 8's forty-first session).
func TestHeartbeatIdleProcessAfterStall(t *testing.T) {
	srv := testenv.StartRedis(t)
	open := func() (*querycache.Cache, *querycache.RedisStore) {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second})
		t.Cleanup(func() { client.Close() })
		st := querycache.NewRedisStore(client, querycache.RedisOptions{}) // every default: Heartbeat 100 ms
		c, err := querycache.New(querycache.Options{Store: st, Prefix: "hb:"})
		must(t, err)
		t.Cleanup(func() { c.Close() })
		return c, st
	}
	w, _ := open()
	r, rst := open()
	ctx := context.Background()
	k := querycache.Key{Name: "hb:row1", Versions: []string{r.Namespace().TableVersion("users")}, Tables: []string{"users"}}
	value := "old"
	read := func() string {
		v, _, err := r.GetOrSet(ctx, k, func(context.Context) (querycache.Fill, error) {
			return querycache.Fill{Value: []byte(value)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	if got := read(); got != "old" {
		t.Fatalf("first read %q", got)
	}

	pid := srv.Pid()
	must(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	// The write: committed to the database (value), its invalidation
	// not delivered within InvalidateTimeout.
	value = "new"
	_ = w.InvalidateTables(ctx, "users")
	if w.Stats().Pending == 0 {
		t.Fatal("W's invalidation was delivered to a stopped Redis")
	}
	// R has made no call; the stall goes on past its heartbeat's
	// failures.
	deadline := time.Now().Add(10 * time.Second)
	for !rst.BreakerOpen() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !rst.BreakerOpen() {
		t.Fatal("R's breaker did not open during a stall of several seconds: no heartbeat")
	}
	must(t, syscall.Kill(pid, syscall.SIGCONT))
	resumed = true
	for i := 0; i < 50; i++ {
		if got := read(); got != "new" {
			t.Fatalf("read %d after the stall: %q, from before the write that had returned", i, got)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestHeartbeatOff: RedisOptions.Heartbeat -1 turns the heartbeat off (an
// idle process's breaker stays closed through a stall), and a negative
// period other than -1 is refused.
func TestHeartbeatOff(t *testing.T) {
	srv := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	st := querycache.NewRedisStore(client, querycache.RedisOptions{Heartbeat: -1})
	c, err := querycache.New(querycache.Options{Store: st, Prefix: "hb-off:"})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	must(t, syscall.Kill(srv.Pid(), syscall.SIGSTOP))
	time.Sleep(time.Second)
	open := st.BreakerOpen()
	must(t, syscall.Kill(srv.Pid(), syscall.SIGCONT))
	if open {
		t.Error("with Heartbeat -1, an idle cache's breaker opened")
	}
	bad := querycache.NewRedisStore(client, querycache.RedisOptions{Heartbeat: -time.Second})
	if _, err := querycache.New(querycache.Options{Store: bad}); err == nil {
		t.Error("RedisOptions.Heartbeat -1s was accepted")
	}
}

// TestHeartbeatPostgresStore: an idle cache on a PostgresStore whose
// server stops answering (a cut proxy) opens its breaker by its
// heartbeat, and closes it again once the server answers.
func TestHeartbeatPostgresStore(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	must(t, err)
	if err := pingPostgres(cfg); err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	dsn := testenv.PostgresSchema(t)
	schema := dsn[strings.LastIndex(dsn, "search_path=")+len("search_path="):]
	proxy := testenv.StartProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(proxy.Addr())
	cfg.ConnConfig.Host = host
	p, _ := strconv.Atoi(port)
	cfg.ConnConfig.Port = uint16(p)
	cfg.ConnConfig.ConnectTimeout = time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	must(t, err)
	t.Cleanup(pool.Close)
	st := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, BreakerProbe: 50 * time.Millisecond})
	must(t, st.EnsureSchema(context.Background()))
	c, err := querycache.New(querycache.Options{Store: st})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	proxy.Cut()
	waitUntil(t, "the breaker opens while the cache is idle", 10*time.Second, st.BreakerOpen)
	proxy.Restore()
	waitUntil(t, "the breaker closes once PostgreSQL answers", 10*time.Second, func() bool { return !st.BreakerOpen() })
}

func pingPostgres(cfg *pgxpool.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg.Copy())
	if err != nil {
		return err
	}
	defer pool.Close()
	return pool.Ping(ctx)
}

func waitUntil(t *testing.T, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v: %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
