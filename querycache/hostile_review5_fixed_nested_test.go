package querycache_test

import (
	"context"
	"testing"

	"querycache.dev/querycache"
)

// TestHostileReview5PageMissesSetOfNestedFragment: a page (captured) that
// renders a fragment (captured) which missed and was filled depends on
// the fragment's dependencies, but not on the fragment's own value
// version; a Set or Delete of the fragment then leaves the page showing
// the old fragment. (A page whose fragment was a hit does record it:
// read() records the value version only when the value is alive.)
//
// Order of events: page misses; fragment misses (read() records nothing
// of it on a miss), renders "v1" and is stored; the page is stored
// against the epoch only; Set("frag", "v2") replaces the
// fragment's value version; the page is a hit showing "v1".
//
// Fixed: GetOrSetCaptured records the value version read before the fill
// (shownVersion, as getOrSet does: "served or filled here") in the
// caller's captures on a miss too.
func TestHostileReview5PageMissesSetOfNestedFragment(t *testing.T) {
	for _, op := range []string{"set", "delete"} {
		t.Run(op, func(t *testing.T) {
			forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
				kv := c.KV()
				frag := "v1"
				page := func() string {
					v, _, err := kv.GetOrSetCaptured(bg, "page", func(ctx context.Context) ([]byte, error) {
						f, _, err := kv.GetOrSetCaptured(ctx, "frag", func(context.Context) ([]byte, error) {
							return []byte(frag), nil
						})
						return append([]byte("page with "), f...), err
					})
					must(t, err)
					return string(v)
				}
				if got := page(); got != "page with v1" {
					t.Fatalf("page = %q", got)
				}
				frag = "v2"
				switch op {
				case "set":
					must(t, kv.Set(bg, "frag", []byte("v2")))
				case "delete":
					if _, err := kv.Delete(bg, "frag"); err != nil {
						t.Fatal(err)
					}
				}
				if got := page(); got != "page with v2" {
					t.Errorf("after the fragment's %s returned, the page shows %q", op, got)
				}
			})
		})
	}
}
