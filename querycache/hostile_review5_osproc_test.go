package querycache_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// Two OS processes on one Redis: this test binary re-executed as a child
// (TestHostileReview5OSProcChild) with its role in the environment, the
// parent standing for process A. The child's write has returned when it
// exits (or when it writes its "done" file).

const (
	r5RoleEnv   = "QUERYCACHE_R5_ROLE"
	r5RedisEnv  = "QUERYCACHE_R5_REDIS"
	r5PrefixEnv = "QUERYCACHE_R5_PREFIX"
	r5DirEnv    = "QUERYCACHE_R5_DIR"
)

func r5Cache(t *testing.T, url, prefix string) *querycache.Cache {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	c, err := querycache.New(querycache.Options{
		Store:     querycache.NewRedisStore(client, querycache.RedisOptions{Timeout: 5 * time.Second}),
		Prefix:    prefix,
		LeaseWait: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func r5Start(t *testing.T, role, url, prefix, dir string) *testenv.Child {
	t.Helper()
	return testenv.StartChild(t, "TestHostileReview5OSProcChild", r5RoleEnv+"="+role, r5RedisEnv+"="+url, r5PrefixEnv+"="+prefix, r5DirEnv+"="+dir)
}

func r5WaitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

// TestHostileReview5OSProcChild is the child's side; it does nothing when
// run by itself.
func TestHostileReview5OSProcChild(t *testing.T) {
	role := os.Getenv(r5RoleEnv)
	if role == "" {
		t.Skip("run by TestHostileReview5OSProc*")
	}
	c := r5Cache(t, os.Getenv(r5RedisEnv), os.Getenv(r5PrefixEnv))
	kv := c.KV()
	dir := os.Getenv(r5DirEnv)
	switch role {
	case "set":
		must(t, kv.Set(bg, "v", []byte("from-b")))
	case "incr":
		if _, err := kv.Incr(bg, "v", 1); err != nil {
			t.Fatal(err)
		}
	case "delete":
		if _, err := kv.Delete(bg, "v"); err != nil {
			t.Fatal(err)
		}
	case "hang-fill", "hang-fill-captured":
		get := kv.GetOrSet
		if role == "hang-fill-captured" {
			get = kv.GetOrSetCaptured
		}
		_, _, _ = get(bg, "slow", func(context.Context) ([]byte, error) {
			must(t, os.WriteFile(filepath.Join(dir, "filling"), nil, 0o644))
			select {} // killed here
		})
	case "fill-race":
		r5WaitFile(t, filepath.Join(dir, "go"))
		v, _, err := kv.GetOrSet(bg, "race", func(context.Context) ([]byte, error) {
			time.Sleep(50 * time.Millisecond)
			return []byte("b"), nil
		})
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "b-got"), v, 0o644))
	default:
		t.Fatalf("role %q", role)
	}
}

// TestHostileReview5OSProcPageSeesOtherProcessWrite: process A renders a
// page (GetOrSetCaptured reading the low-level value "v"); process B
// changes "v" (Set, Incr, Delete) and exits; A's next request for the page
// must not show the value from before B's write.
func TestHostileReview5OSProcPageSeesOtherProcessWrite(t *testing.T) {
	if os.Getenv(r5RoleEnv) != "" {
		t.Skip("child")
	}
	url := testenv.SharedRedis(t)
	for _, op := range []string{"set", "incr", "delete", "set", "incr"} {
		prefix := testenv.TestPrefix(t) + op
		a := r5Cache(t, url, prefix).KV()
		must(t, a.Set(bg, "v", []byte("41")))
		page := func() (string, bool) {
			b, hit, err := a.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
				v, ok, err := a.Get(ctx, "v")
				if !ok {
					v = []byte("none")
				}
				return append([]byte("page:"), v...), err
			})
			must(t, err)
			return string(b), hit
		}
		if got, _ := page(); got != "page:41" {
			t.Fatalf("page = %q", got)
		}
		if got, hit := page(); got != "page:41" || !hit {
			t.Fatalf("page = %q hit %v; want a hit", got, hit)
		}
		r5Start(t, op, url, prefix, t.TempDir()).Wait(t, op, 60*time.Second)
		want := map[string]string{"set": "page:from-b", "incr": "page:42", "delete": "page:none"}[op]
		if got, _ := page(); got != want {
			t.Errorf("after process B's %s returned, process A's page = %q; want %q", op, got, want)
		}
	}
}

// TestHostileReview5OSProcFillerKilled: process B starts filling a key
// (holding its lease) and is killed mid-fill; process A's GetOrSet of the
// key must return its own value (after the lease lapses at worst) and
// store it, not hang or fail.
func TestHostileReview5OSProcFillerKilled(t *testing.T) {
	if os.Getenv(r5RoleEnv) != "" {
		t.Skip("child")
	}
	url := testenv.SharedRedis(t)
	for _, role := range []string{"hang-fill", "hang-fill-captured"} {
		prefix := testenv.TestPrefix(t) + role
		dir := t.TempDir()
		c := r5Start(t, role, url, prefix, dir)
		r5WaitFile(t, filepath.Join(dir, "filling"))
		c.Kill()
		a := r5Cache(t, url, prefix).KV()
		get := a.GetOrSet
		if role == "hang-fill-captured" {
			get = a.GetOrSetCaptured
		}
		ctx, cancel := context.WithTimeout(bg, 30*time.Second)
		v, hit, err := get(ctx, "slow", func(context.Context) ([]byte, error) { return []byte("a"), nil })
		cancel()
		if err != nil || hit || string(v) != "a" {
			t.Fatalf("%s: after the filler was killed, GetOrSet = %q %v %v", role, v, hit, err)
		}
		kvMustGet(t, a, "slow", "a")
	}
}

// TestHostileReview5OSProcFillRace: two processes fill one absent key at
// once; each gets a value, and what is stored is one of theirs, served to
// both afterwards.
func TestHostileReview5OSProcFillRace(t *testing.T) {
	if os.Getenv(r5RoleEnv) != "" {
		t.Skip("child")
	}
	url := testenv.SharedRedis(t)
	for round := range 3 {
		prefix := testenv.TestPrefix(t) + strconv.Itoa(round)
		dir := t.TempDir()
		a := r5Cache(t, url, prefix).KV()
		c := r5Start(t, "fill-race", url, prefix, dir)
		time.Sleep(200 * time.Millisecond) // the child connects
		must(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))
		v, _, err := a.GetOrSet(bg, "race", func(context.Context) ([]byte, error) {
			time.Sleep(50 * time.Millisecond)
			return []byte("a"), nil
		})
		must(t, err)
		c.Wait(t, "fill-race", 60*time.Second)
		bv, err := os.ReadFile(filepath.Join(dir, "b-got"))
		must(t, err)
		stored, ok := kvGet(t, a, "race")
		if !ok || (stored != "a" && stored != "b") {
			t.Fatalf("round %d: stored %q %v", round, stored, ok)
		}
		if string(v) != "a" && string(v) != "b" || string(bv) != "a" && string(bv) != "b" {
			t.Fatalf("round %d: a got %q, b got %q", round, v, bv)
		}
	}
}
