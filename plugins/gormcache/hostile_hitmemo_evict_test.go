package gormcache_test

import (
	"fmt"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostileHitMemoHotRowsEvicted: a small working set of rows read by
// primary key all the time, beside a stream of one-off cached queries, on
// a memory store that holds a few hundred entries. The store's policy
// (W-TinyLFU) is there to keep such a working set through a stream of
// one-off entries; it learns how hot an entry is from its reads of the
// entry (otter's GetIfPresent, memHit's lookup).
//
// A first version of the hit memo also kept the store's entry and served
// it again without reading it from the store's table (a "Rehit"): to the
// policy the hot rows were then as cold as the one-offs, and the stream
// pushed them out (16 hot reads went to the database, 0 without it).
// Reading one Rehit in 8 from the table kept the hot rows but still made
// ~300 fewer hits in this workload (5073 against 5371-5374), so the memo
// keeps keys only, and every hit reads the store's table as before.
func TestHostileHitMemoHotRowsEvicted(t *testing.T) {
	small := storeKind{name: "memory-small", open: func(t *testing.T) querycache.Store {
		return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 96 << 10})
	}}
	eachEnvOf(t, true, []storeKind{small}, func(t *testing.T, e *env) {
		const nhot = 8
		ids := make([]uint, nhot)
		for i := range ids {
			p := Post{Title: fmt.Sprintf("hot %d", i), Views: i}
			must(t, e.db.Create(&p).Error)
			ids[i] = p.ID
		}
		hot := func() {
			for _, id := range ids {
				var p Post
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&p, id).Error)
			}
		}
		hot()
		hot()
		var hotMisses int64
		const rounds = 600
		for i := 0; i < rounds; i++ {
			hotMisses += e.statements(hot)
			for j := 0; j < 2; j++ { // a one-off query: filled, then hit once
				var ps []Post
				must(t, e.db.Scopes(gormcache.Cacheable()).Where("views <> ?", -1-i).Limit(1).Find(&ps).Error)
			}
		}
		st := e.cache.Stats()
		t.Logf("%d rounds: %d hot reads went to the database; %d evictions, %d hits", rounds, hotMisses, st.Evictions, st.Hits)
		if hotMisses > 0 {
			t.Fatalf("the %d hot rows, read %d times each, went to the database %d times: the store evicted them with the one-off entries", nhot, rounds, hotMisses)
		}
		// With the memo off this workload makes 5371-5374 hits (565-572
		// evictions): every hot read, and all but a few one-offs' second
		// reads. Rehits seen by the store one time in 8 kept the hot rows,
		// but the policy then evicted ~300 one-offs before their second
		// read (5070-5078 hits, 862-874 evictions).
		if st.Hits < 5300 {
			t.Fatalf("%d hits (%d evictions) where the same reads through lookups make 5371-5374 (565-572): the store's policy, seeing a sample of the Rehits, keeps less of what is read", st.Hits, st.Evictions)
		}
	})
}
