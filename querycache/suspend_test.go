package querycache_test

import (
	"context"
	"testing"

	"querycache.dev/querycache"
)

// A suspended table is neither served nor filled until resumed; other
// tables keep their hits; suspensions nest.
func TestSuspend(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	ns := c.Namespace()
	posts := querycache.Key{Name: "q:posts", Versions: []string{ns.TableVersion("posts")}}
	byID := querycache.Key{Name: "o:posts:1", Versions: []string{ns.ObjectVersion("posts", "1"), ns.BulkVersion("posts")}}
	users := querycache.Key{Name: "q:users", Versions: []string{ns.TableVersion("users")}}
	for _, k := range []querycache.Key{posts, byID, users} {
		if _, _, err := c.GetOrSet(ctx, k, valueFill("v", nil)); err != nil {
			t.Fatal(err)
		}
	}
	hit := func(k querycache.Key) bool {
		_, hit, err := c.GetOrSet(ctx, k, valueFill("v", nil))
		if err != nil {
			t.Fatal(err)
		}
		return hit
	}
	r1 := c.Suspend(querycache.Change{Tables: []string{"public.Posts"}})
	r2 := c.Suspend(querycache.Change{Tables: []string{"posts"}})
	if hit(posts) || hit(byID) {
		t.Fatal("a suspended table was served")
	}
	if !hit(users) {
		t.Fatal("an unrelated table lost its hits")
	}
	r1()
	r1() // idempotent
	if hit(posts) {
		t.Fatal("served while another suspension still holds the table")
	}
	r2()
	if !hit(posts) || !hit(byID) {
		t.Fatal("no hits after resume (the bypass must not have dropped the entries)")
	}
	if got := c.Stats().Bypasses["suspended"]; got == 0 {
		t.Fatalf("suspended bypasses not counted: %v", c.Stats().Bypasses)
	}
	if c.Stats().Pending != 0 {
		t.Fatal("a suspension counted as a pending invalidation")
	}
	all := c.Suspend(querycache.Change{All: true})
	if hit(users) {
		t.Fatal("served under a suspension of everything")
	}
	all()
	if !hit(users) {
		t.Fatal("no hit after resuming everything")
	}
}
