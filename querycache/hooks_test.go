package querycache_test

import (
	"context"
	"testing"

	"querycache.dev/querycache"
)

// TestOnInvalidateHook: every way of invalidating a Cache calls its hooks
// with the change, normalised, before the versions are replaced (the
// entry is still served inside the hook) and before the call returns;
// remove stops the calls. The GORM plugin's replica fence relies on that
// order (TestHostile50ReplicaManualInvalidateNotFenced).
func TestOnInvalidateHook(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	ns := c.Namespace()
	k := querycache.Key{Name: "hook:items:1", Versions: []string{ns.ObjectVersion("items", "1"), ns.BulkVersion("items")}}
	var got []querycache.Change
	var servedInside []bool
	remove := c.OnInvalidate(func(ctx context.Context, ch querycache.Change) {
		got = append(got, ch)
		_, ok, err := c.Get(ctx, k)
		servedInside = append(servedInside, ok && err == nil)
	})
	calls := []struct {
		name string
		f    func() error
		want func(querycache.Change) bool
	}{
		{"Invalidate", func() error {
			return c.Invalidate(ctx, querycache.Change{Rows: []querycache.Row{{Table: "items", PK: "1"}}})
		}, func(ch querycache.Change) bool { return len(ch.Rows) == 1 && ch.Rows[0].Table == "items" }},
		{"InvalidateTables", func() error { return c.InvalidateTables(ctx, `public."Items"`) },
			func(ch querycache.Change) bool { return len(ch.Tables) == 1 && ch.Tables[0] == "items" }},
		{"InvalidateObject", func() error { return c.InvalidateObject(ctx, "items", 1) },
			func(ch querycache.Change) bool { return len(ch.Rows) == 1 && ch.Rows[0].PK == "1" }},
		{"InvalidateAll", func() error { return c.InvalidateAll(ctx) }, func(ch querycache.Change) bool { return ch.All }},
	}
	for _, call := range calls {
		got, servedInside = nil, nil
		if _, _, err := c.GetOrSet(ctx, k, fillWith("v")); err != nil {
			t.Fatal(err)
		}
		if err := call.f(); err != nil {
			t.Fatalf("%s: %v", call.name, err)
		}
		if len(got) != 1 || !call.want(got[0]) {
			t.Errorf("%s: hook saw %+v", call.name, got)
			continue
		}
		if !servedInside[0] {
			t.Errorf("%s: the hook ran after the versions were replaced", call.name)
		}
		if _, ok, _ := c.Get(ctx, k); ok {
			t.Errorf("%s: still served after the call", call.name)
		}
	}
	remove()
	remove()
	got = nil
	if err := c.InvalidateTables(ctx, "items"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("a removed hook was called: %+v", got)
	}
}
