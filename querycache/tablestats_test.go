package querycache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Per table: misses by reason, store errors and evictions, besides hits,
// misses and invalidations.
func TestTableStatsReasonsErrorsEvictions(t *testing.T) {
	ctx := context.Background()

	t.Run("miss reasons", func(t *testing.T) {
		c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{})})
		k := tableKey(c, "users", "SELECT * FROM users")
		expectMiss(t, c, k, "a") // absent
		if err := c.InvalidateTables(ctx, "users"); err != nil {
			t.Fatal(err)
		}
		expectMiss(t, c, k, "b") // stale
		other := tableKey(c, "users", "SELECT 2")
		other.TTL = time.Millisecond
		expectMiss(t, c, other, "c") // absent
		time.Sleep(5 * time.Millisecond)
		expectMiss(t, c, other, "d") // absent: the memory store drops an entry past its deadline
		got := c.Stats().Tables["users"].MissReasons
		want := TableMissReasons{Absent: 3, Stale: 1}
		if got != want {
			t.Errorf("users' miss reasons %+v; want %+v", got, want)
		}
		if m := got.Map(); len(m) != 2 || m[MissStale] != 1 || m[MissAbsent] != 3 {
			t.Errorf("Map() = %v", m)
		}
	})

	t.Run("store errors", func(t *testing.T) {
		st := newFaultyStore()
		c := newTestCache(t, Options{Store: st})
		k := tableKey(c, "users", "SELECT * FROM users")
		st.failFetch.Store(true)
		expectMiss(t, c, k, "a")
		st.failFetch.Store(false)
		st.failPut.Store(true)
		expectMiss(t, c, k, "b")
		st.failPut.Store(false)
		st.failBump.Store(true)
		if err := c.InvalidateTables(ctx, "orders"); err == nil {
			t.Fatal("invalidation with the store failing succeeded")
		}
		st.failBump.Store(false)
		s := c.Stats()
		if u, o := s.Tables["users"].Errors, s.Tables["orders"].Errors; u != 2 || o != 1 {
			t.Errorf("errors: users %d, orders %d; want 2 (a fetch, a put) and 1 (a bump)", u, o)
		}
	})

	t.Run("evictions", func(t *testing.T) {
		c := newTestCache(t, Options{Store: NewMemoryStore(MemoryOptions{MaxBytes: 64 << 10}), DefaultTTL: time.Hour})
		big := make([]byte, 2<<10)
		for i := range 200 {
			k := tableKey(c, "users", fmt.Sprint("SELECT ", i))
			_, _, m := c.Lookup(ctx, k, LookupOptions{})
			m.Store(big)
		}
		c.mem.Bytes() // otter's pending maintenance
		s := c.Stats()
		if ev := s.Tables["users"].Evictions; ev == 0 || ev > s.Evictions {
			t.Errorf("users' evictions %d; want some, at most the store's %d", ev, s.Evictions)
		}
	})
}
