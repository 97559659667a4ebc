package querycache_test

import (
	"errors"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestHostileKVRedisKeyOfAnotherType: another program's list or hash
// under a value's name is a miss for Get, GetOrSet and Incr, and Add and
// Set replace it (the compare-and-swap script reads it as no entry).
// (An attack that failed.) The timeout is generous: the default 100 ms
// ran out on a loaded CI machine, and timeouts are not what is tested.
func TestHostileKVRedisKeyOfAnotherType(t *testing.T) {
	t.Parallel()
	client := kvRedisClient(t)
	c, err := querycache.New(querycache.Options{Store: querycache.NewRedisStore(client, querycache.RedisOptions{Timeout: 2 * time.Second}), Prefix: testenv.TestPrefix(t)})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	for _, kind := range []string{"list", "hash", "set"} {
		name := c.Namespace().Value("", 1, kind)
		switch kind {
		case "list":
			must(t, client.LPush(bg, name, "x").Err())
		case "hash":
			must(t, client.HSet(bg, name, "f", "v").Err())
		case "set":
			must(t, client.SAdd(bg, name, "m").Err())
		}
		if v, ok, err := kv.Get(bg, kind); ok || err != nil {
			t.Fatalf("%s: Get = %q, %v, %v; want a plain miss", kind, v, ok, err)
		}
		if _, err := kv.Incr(bg, kind, 1); !errors.Is(err, querycache.ErrNotFound) {
			t.Fatalf("%s: Incr = %v; want ErrNotFound", kind, err)
		}
		if ok, err := kv.Add(bg, kind, []byte("mine")); err != nil || !ok {
			t.Fatalf("%s: Add over another program's key = %v, %v", kind, ok, err)
		}
		kvMustGet(t, kv, kind, "mine")
	}
}
