package querycache

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRecentInvalidations: every applied change is remembered, newest
// first, with the cause its writer gave, its tables and its row count, and
// never its primary keys.
func TestRecentInvalidations(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	if got := c.RecentInvalidations(); len(got) != 0 {
		t.Fatalf("RecentInvalidations of a new cache = %v", got)
	}
	if err := c.Invalidate(ctx, Change{Rows: []Row{{Table: "Users", PK: "secret-pk-42"}}, Cause: "gorm update"}); err != nil {
		t.Fatal(err)
	}
	if err := c.InvalidateTables(ctx, "orders", "items"); err != nil {
		t.Fatal(err)
	}
	if err := c.InvalidateAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Invalidate(ctx, Change{}); err != nil { // empty: not recorded
		t.Fatal(err)
	}
	got := c.RecentInvalidations()
	if len(got) != 3 {
		t.Fatalf("RecentInvalidations = %d records; want 3: %+v", len(got), got)
	}
	if got[0].Cause != "manual InvalidateAll" || !got[0].All {
		t.Errorf("newest = %+v; want InvalidateAll", got[0])
	}
	if got[1].Cause != "manual InvalidateTables" || strings.Join(got[1].Tables, ",") != "orders,items" || got[1].Rows != 0 {
		t.Errorf("second = %+v; want InvalidateTables of orders, items", got[1])
	}
	if got[2].Cause != "gorm update" || strings.Join(got[2].Tables, ",") != "users" || got[2].Rows != 1 || got[2].Versions != 2 {
		t.Errorf("oldest = %+v; want the gorm update of one users row (normalised), 2 versions", got[2])
	}
	for _, r := range got {
		if r.Pending || r.Retried || r.Error != "" {
			t.Errorf("delivered change reported as %+v", r)
		}
		if r.Time.IsZero() {
			t.Errorf("record without a time: %+v", r)
		}
		if strings.Contains(fmt.Sprintf("%+v", r), "secret-pk-42") {
			t.Errorf("record shows a primary key: %+v", r)
		}
	}
}

// TestRecentInvalidationTimes: a record's Time is when the change was
// applied, by the cache's clock: the real one (whose records keep an
// offset from the monotonic clock) or Options.Now's.
func TestRecentInvalidationTimes(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Options{})
	before := time.Now()
	if err := c.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if got := c.RecentInvalidations(); len(got) != 1 || got[0].Time.Before(before) || got[0].Time.After(after) {
		t.Fatalf("record %+v; want its time between %v and %v", got, before, after)
	}
	clock := &fakeClock{now: time.Date(2031, 2, 3, 4, 5, 6, 7, time.UTC)}
	fc := newTestCache(t, Options{Now: clock.Now})
	clock.Advance(90 * time.Minute)
	if err := fc.InvalidateTables(ctx, "users"); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2031, 2, 3, 5, 35, 6, 7, time.UTC)
	if got := fc.RecentInvalidations(); len(got) != 1 || !got[0].Time.Equal(want) {
		t.Fatalf("record %+v under a fake clock; want its time %v", got, want)
	}
}

// TestRecentInvalidationsBounded: the ring keeps the newest
// RecentInvalidationsKept changes, under concurrent writers (-race).
func TestRecentInvalidationsBounded(t *testing.T) {
	c := newTestCache(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				_ = c.Invalidate(ctx, Change{Tables: []string{fmt.Sprintf("t%d_%d", w, i)}, Cause: "gorm create"})
				_ = c.RecentInvalidations()
			}
		}()
	}
	wg.Wait()
	if err := c.Invalidate(ctx, Change{Tables: []string{"last"}, Cause: "raw SQL: UPDATE"}); err != nil {
		t.Fatal(err)
	}
	got := c.RecentInvalidations()
	if len(got) != RecentInvalidationsKept {
		t.Fatalf("RecentInvalidations = %d records after 401 changes; want %d", len(got), RecentInvalidationsKept)
	}
	if got[0].Cause != "raw SQL: UPDATE" || got[0].Tables[0] != "last" {
		t.Errorf("newest = %+v; want the last change", got[0])
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time.After(got[i-1].Time) {
			t.Fatalf("record %d is newer than record %d", i, i-1)
		}
	}
}

// TestPendingInvalidationsListed: a change the store did not take is listed
// as pending (record and version names) until the retry delivers it, then
// as delivered after a retry.
func TestPendingInvalidationsListed(t *testing.T) {
	st := newFaultyStore()
	c := newTestCache(t, Options{Store: st, RetryInterval: 10 * time.Millisecond})
	ctx := context.Background()
	st.failBump.Store(true)
	_ = c.Invalidate(ctx, Change{Tables: []string{"users"}, Cause: "listener: outside write"})
	got := c.RecentInvalidations()
	if len(got) != 1 || !got[0].Pending || !got[0].Retried || !strings.Contains(got[0].Error, errInjected.Error()) {
		t.Fatalf("RecentInvalidations with the store down = %+v; want one pending record with the store's error", got)
	}
	want := []string{c.ns.BulkVersion("users"), c.ns.TableVersion("users")}
	if p := c.PendingInvalidations(); strings.Join(p, " ") != strings.Join(want, " ") {
		t.Fatalf("PendingInvalidations = %q; want %q", p, want)
	}
	st.failBump.Store(false)
	waitFor(t, "delivery", func() bool { return len(c.PendingInvalidations()) == 0 })
	got = c.RecentInvalidations()
	if len(got) != 1 || got[0].Pending || !got[0].Retried {
		t.Fatalf("RecentInvalidations after delivery = %+v; want delivered after a retry", got)
	}
}

// TestHeldInvalidations: versions held by Suspend are counted apart from
// those pending delivery.
func TestHeldInvalidations(t *testing.T) {
	c := newTestCache(t, Options{})
	resume := c.Suspend(Change{Tables: []string{"users"}})
	if n := c.HeldInvalidations(); n != 2 {
		t.Errorf("HeldInvalidations = %d; want 2 (table and bulk versions of users)", n)
	}
	if p := c.PendingInvalidations(); len(p) != 0 {
		t.Errorf("PendingInvalidations while only held = %q", p)
	}
	resume()
	if n := c.HeldInvalidations(); n != 0 {
		t.Errorf("HeldInvalidations after resume = %d", n)
	}
}

// TestMergeCause: a transaction's causes are listed once each, bounded.
func TestMergeCause(t *testing.T) {
	var ch Change
	ch.Merge(Change{Tables: []string{"a"}, Cause: "gorm update"})
	ch.Merge(Change{Tables: []string{"b"}, Cause: "gorm create"})
	ch.Merge(Change{Tables: []string{"a"}, Cause: "gorm update"})
	ch.Merge(Change{Tables: []string{"a"}})
	if ch.Cause != "gorm update; gorm create" {
		t.Errorf("merged Cause = %q", ch.Cause)
	}
	for i := range 100 {
		ch.Merge(Change{Cause: fmt.Sprintf("cause number %d", i)})
	}
	if len(ch.Cause) > maxCause+10 || !strings.HasSuffix(ch.Cause, "; ...") {
		t.Errorf("Cause after 100 distinct causes = %q (%d bytes); want it cut at about %d", ch.Cause, len(ch.Cause), maxCause)
	}
}

// BenchmarkRecentAdd is what remembering an invalidation adds to each
// one: the ring's lock and a clock read.
func BenchmarkRecentAdd(b *testing.B) {
	var r recentRing
	r.start(nil)
	rec := InvalidationRecord{Cause: "gorm update", Tables: []string{"users"}, Rows: 1, Versions: 2}
	b.ReportAllocs()
	for b.Loop() {
		r.add(rec, nil)
	}
}

// BenchmarkInvalidateRow is a whole invalidation of one row on the memory
// store, the ring included, for comparison with BenchmarkRecentAdd.
func BenchmarkInvalidateRow(b *testing.B) {
	c, err := New(Options{Store: NewMemoryStore(MemoryOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	ch := Change{Rows: []Row{{Table: "users", PK: "42"}}, Cause: "gorm update"}
	b.ReportAllocs()
	for b.Loop() {
		_ = c.Invalidate(ctx, ch)
	}
}
