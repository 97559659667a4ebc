package gormcache_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/plugins/gormcache"
)

// flatRow is a model whose fields are plain data: SharedResults may share
// a slice of it.
type flatRow struct {
	ID    uint
	Name  string
	Score float64
	At    time.Time
	Live  bool
	Rank  int16
}

// hookedRow is flat too, but GORM's AfterFind writes into the rows.
type hookedRow struct {
	ID    uint
	Name  string
	Found int `gorm:"-"`
}

func (r *hookedRow) AfterFind(*gorm.DB) error { r.Found++; return nil }

// bytesRow is not flat: its []byte is memory a caller could modify in place.
type bytesRow struct {
	ID   uint
	Data []byte
}

func seedFlatRows(t *testing.T, e *env) {
	t.Helper()
	must(t, e.db.AutoMigrate(&flatRow{}, &hookedRow{}, &bytesRow{}))
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		must(t, e.db.Create(&flatRow{ID: uint(i), Name: fmt.Sprintf("row %d", i), Score: float64(i) / 3, At: at.Add(time.Duration(i) * time.Hour), Live: i%2 == 0, Rank: int16(i)}).Error)
		must(t, e.db.Create(&hookedRow{ID: uint(i), Name: fmt.Sprintf("row %d", i)}).Error)
		must(t, e.db.Create(&bytesRow{ID: uint(i), Data: []byte{byte(i)}}).Error)
	}
}

func readFlat(t *testing.T, e *env) []flatRow {
	t.Helper()
	var rs []flatRow
	must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&rs).Error)
	return rs
}

func readFlatUncached(t *testing.T, e *env) []flatRow {
	t.Helper()
	var rs []flatRow
	must(t, e.db.Scopes(gormcache.NoCache()).Order("id").Find(&rs).Error)
	return rs
}

func sameArray[T any](a, b []T) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }

// Hits share the cached rows under SharedResults, and copy them without it.
func TestSharedResultsShareFlatRows(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		want := readFlatUncached(t, e)
		e.mustBeCached(t, "flat list", func() error { readFlat(t, e); return nil })
		a, b := readFlat(t, e), readFlat(t, e)
		if err := sameValue(a, want); err != nil {
			t.Fatal(err)
		}
		if !sameArray(a, b) {
			t.Fatal("two hits under SharedResults returned different arrays; they should share the cached rows")
		}
		if cap(a) != len(a) {
			t.Fatalf("a shared slice has capacity %d for length %d: a caller's append would write into the cache", cap(a), len(a))
		}
		// An append copies and leaves the shared rows (and sharing) alone.
		c := append(a, flatRow{ID: 99, Name: "appended"})
		c[0].Name = "changed after append"
		if got := readFlat(t, e); !sameArray(got, a) || sameValue(got, want) != nil {
			t.Fatalf("after a caller's append: shared %v, rows %v", sameArray(got, a), sameValue(got, want))
		}
		if n := e.cache.Stats().Refusals["shared_result_modified"]; n != 0 {
			t.Fatalf("an append was taken for a modification (%d)", n)
		}
	}, gormcache.SharedResults())
}

func TestWithoutSharedResultsHitsCopy(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		e.mustBeCached(t, "flat list", func() error { readFlat(t, e); return nil })
		if a, b := readFlat(t, e), readFlat(t, e); sameArray(a, b) {
			t.Fatal("two hits share an array without SharedResults")
		}
	})
}

// A caller that breaks the promise (assigns a field, sorts in place) is
// caught by the next hit of those rows: it and every later hit get the
// stored rows, copied; the warning is counted.
func TestSharedResultsModifiedRowsAreNotServed(t *testing.T) {
	for _, c := range []struct {
		name   string
		modify func([]flatRow)
	}{
		{"field", func(rs []flatRow) { rs[2].Name = "modified" }},
		{"bool", func(rs []flatRow) { rs[4].Live = !rs[4].Live }},
		{"small int", func(rs []flatRow) { rs[3].Rank++ }},
		{"time", func(rs []flatRow) { rs[0].At = rs[0].At.Add(time.Second) }},
		{"sorted", func(rs []flatRow) { sort.Slice(rs, func(i, j int) bool { return rs[i].ID > rs[j].ID }) }},
		{"through a pointer", func(rs []flatRow) { p := &rs[1]; p.Score = -1 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			forEachEnv(t, func(t *testing.T, e *env) {
				seedFlatRows(t, e)
				want := readFlatUncached(t, e)
				e.mustBeCached(t, "flat list", func() error { readFlat(t, e); return nil })
				shared := readFlat(t, e)
				c.modify(shared)
				got := readFlat(t, e)
				if err := sameValue(got, want); err != nil {
					t.Fatalf("the hit after a caller modified shared rows: %v", err)
				}
				if sameArray(got, shared) {
					t.Fatal("the modified rows were handed out again")
				}
				if n := e.cache.Stats().Refusals["shared_result_modified"]; n != 1 {
					t.Fatalf("refusal shared_result_modified counted %d times, want 1", n)
				}
				// Sharing is off for good: hits copy, and are still hits.
				e.mustBeCached(t, "flat list after the modification", func() error { readFlat(t, e); return nil })
				a, b := readFlat(t, e), readFlat(t, e)
				if sameArray(a, b) {
					t.Fatal("hits still share rows after a modification was found")
				}
				if err := sameValue(a, want); err != nil {
					t.Fatal(err)
				}
			}, gormcache.SharedResults())
		})
	}
}

// After sharing stops, a snapshot built to be shared that the same code
// modified earlier is still checked, and dropped, rather than copied out.
func TestSharedResultsOtherModifiedSnapshotsAreDropped(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		all := func() []flatRow { return readFlat(t, e) }
		few := func() []flatRow {
			var rs []flatRow
			must(t, e.db.Scopes(gormcache.Cacheable()).Where("id < ?", 4).Order("id").Find(&rs).Error)
			return rs
		}
		wantAll, wantFew := all(), few()
		wantAll, wantFew = append([]flatRow(nil), wantAll...), append([]flatRow(nil), wantFew...)
		a, f := all(), few() // hits, shared
		a[0].Name, f[0].Name = "modified", "modified"
		if err := sameValue(all(), wantAll); err != nil { // detects, stops sharing
			t.Fatal(err)
		}
		if err := sameValue(few(), wantFew); err != nil { // copying now, from a modified snapshot?
			t.Fatalf("after sharing stopped, another modified snapshot was copied out: %v", err)
		}
		if n := e.cache.Stats().Refusals["shared_result_modified"]; n != 2 {
			t.Fatalf("refusal shared_result_modified counted %d times, want 2 (one per modified snapshot)", n)
		}
	}, gormcache.SharedResults())
}

// What GORM writes into the rows after the query (an AfterFind hook) and
// rows holding memory of their own ([]byte) are never shared.
func TestSharedResultsNotForHooksOrReferences(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		hooked := func() []hookedRow {
			var rs []hookedRow
			must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&rs).Error)
			return rs
		}
		withBytes := func() []bytesRow {
			var rs []bytesRow
			must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&rs).Error)
			return rs
		}
		e.mustBeCached(t, "hooked", func() error { hooked(); return nil })
		e.mustBeCached(t, "bytes", func() error { withBytes(); return nil })
		h1, h2 := hooked(), hooked()
		if sameArray(h1, h2) {
			t.Fatal("rows of a model with an AfterFind hook were shared")
		}
		if h2[0].Found != 1 {
			t.Fatalf("AfterFind ran %d times on a hit's row, want 1", h2[0].Found)
		}
		b1, b2 := withBytes(), withBytes()
		if sameArray(b1, b2) || &b1[0].Data[0] == &b2[0].Data[0] {
			t.Fatal("rows holding a []byte were shared")
		}
		if n := e.cache.Stats().Refusals["shared_result_modified"]; n != 0 {
			t.Fatalf("refusal shared_result_modified counted %d times, want 0", n)
		}
	}, gormcache.SharedResults())
}

// Shared rows are invalidated like copied ones, and a caller holding the
// old rows keeps them as they were.
func TestSharedResultsInvalidation(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		e.mustBeCached(t, "flat list", func() error { readFlat(t, e); return nil })
		old := readFlat(t, e)
		must(t, e.db.Model(&flatRow{}).Where("id = ?", 3).Update("name", "renamed").Error)
		got := readFlat(t, e)
		if got[2].Name != "renamed" {
			t.Fatalf("after the update: %q", got[2].Name)
		}
		if old[2].Name != "row 3" {
			t.Fatalf("a caller's old shared rows changed: %q", old[2].Name)
		}
		e.mustBeCached(t, "flat list after the update", func() error { readFlat(t, e); return nil })
		if a, b := readFlat(t, e), readFlat(t, e); !sameArray(a, b) || a[2].Name != "renamed" {
			t.Fatalf("new rows: shared %v, %q", sameArray(a, b), a[2].Name)
		}
	}, gormcache.SharedResults())
}

// Many readers sharing rows while a writer changes them: every read is
// some committed state, and the race detector sees only reads of shared
// memory.
func TestSharedResultsConcurrentReadersAndWriter(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		errs := make(chan error, 16)
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					var rs []flatRow
					if err := e.db.Scopes(gormcache.Cacheable()).Order("id").Find(&rs).Error; err != nil {
						errs <- err
						return
					}
					if len(rs) != 5 || rs[0].Name != rs[1].Name && rs[0].Name != "row 1" {
						errs <- fmt.Errorf("an inconsistent read: %+v", rs)
						return
					}
				}
			}()
		}
		for i := 0; i < 40; i++ {
			if err := e.db.Model(&flatRow{}).Where("id IN ?", []int{1, 2}).Update("name", fmt.Sprintf("gen %d", i)).Error; err != nil {
				t.Error(err)
				break
			}
		}
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := sameValue(readFlat(t, e), readFlatUncached(t, e)); err != nil {
			t.Fatal(err)
		}
		if n := e.cache.Stats().Refusals["shared_result_modified"]; n != 0 {
			t.Fatalf("refusal shared_result_modified counted %d times, want 0", n)
		}
	}, gormcache.SharedResults())
}

// GORM scans into a non-empty destination's own array: reusing a variable
// a hit filled with shared rows, for Find or FindInBatches, must not write
// into the cache.
func TestSharedResultsReusedDestination(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		want := readFlatUncached(t, e)
		e.mustBeCached(t, "flat list", func() error { readFlat(t, e); return nil })
		rs := readFlat(t, e) // shared
		must(t, e.db.Scopes(gormcache.Cacheable()).Where("id > ?", 2).Order("id desc").Find(&rs).Error)
		must(t, e.db.Scopes(gormcache.NoCache()).Where("id > ?", 3).Order("id desc").Find(&rs).Error)
		if len(rs) != 2 || rs[0].ID != 5 {
			t.Fatalf("the reused destination holds %+v", rs)
		}
		var batches int
		var batch []flatRow
		must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").FindInBatches(&batch, 2, func(*gorm.DB, int) error { batches++; return nil }).Error)
		must(t, e.db.Scopes(gormcache.Cacheable()).Order("id").FindInBatches(&batch, 2, func(*gorm.DB, int) error { batches++; return nil }).Error)
		if batches != 6 {
			t.Fatalf("%d batches, want 6", batches)
		}
		if err := sameValue(readFlat(t, e), want); err != nil {
			t.Fatal(err)
		}
		if n := e.cache.Stats().Refusals["shared_result_modified"]; n != 0 {
			t.Fatalf("reusing a destination modified shared rows (%d)", n)
		}
		// A failing query leaves the destination as it was.
		keep := readFlat(t, e)
		if err := e.db.Scopes(gormcache.Cacheable()).Where("no_such_column = 1").Find(&keep).Error; err == nil {
			t.Fatal("a query on a missing column did not fail")
		}
		if err := sameValue(keep, want); err != nil {
			t.Fatalf("a failed query changed its destination: %v", err)
		}
	}, gormcache.SharedResults())
}

// Scan and ScanRows cannot be seen by the plugin (the destination is given
// after its callbacks ran): scanning into shared rows is the documented
// misuse, and the next hit catches it.
func TestSharedResultsScanIntoSharedRowsIsCaught(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		seedFlatRows(t, e)
		want := readFlatUncached(t, e)
		e.mustBeCached(t, "flat list", func() error { readFlat(t, e); return nil })
		rs := readFlat(t, e)
		must(t, e.db.Raw("SELECT * FROM flat_rows WHERE id > 3 ORDER BY id DESC").Scan(&rs).Error)
		if err := sameValue(readFlat(t, e), want); err != nil {
			t.Fatalf("the hit after Scan wrote into shared rows: %v", err)
		}
		if n := e.cache.Stats().Refusals["shared_result_modified"]; n != 1 {
			t.Fatalf("refusal shared_result_modified counted %d times, want 1", n)
		}
	}, gormcache.SharedResults())
}
