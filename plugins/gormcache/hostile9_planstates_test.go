package gormcache_test

import (
	"fmt"
	"runtime"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile9WritePlansPinOldCatalogStates: a GORM write's plan
// (factsPlan, kept on its text's inspection) holds the catalog state it
// was made in, and so everything that state learned: every table's facts
// and, on PostgreSQL, what pg_proc says of every function name (about
// 2,700 names on a stock server). A state is replaced on every DDL the
// plugin runs or sees, on every schema-changing commit, and every
// catalogMaxAge; the replaced one stays alive as long as any remembered
// inspection's plan points at it. Texts written once each between two
// catalog changes pin one old state each, outside every budget of the
// memory table (the inspections' weigher counts the text and its
// sqlinspect.Statement only; the front keeps 256 more). The heap grows
// by about a state's size per text. (Pre-existing since the write plan,
// d30605c; the inspection front, 7062d27, adds up to 256 holders.)
func TestHostile9WritePlansPinOldCatalogStates(t *testing.T) {
	e := newEnv(t, databases[1], memoryStore, querycache.Options{})
	must(t, e.db.Create(&Author{ID: 1, Name: "one"}).Error)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	round := func(i int) {
		// A read calling a function: the state learns pg_proc's names.
		var n int64
		must(t, e.db.Scopes(gormcache.Cacheable()).Model(&Author{}).Count(&n).Error)
		// A write of a text of its own: its plan holds this state.
		must(t, e.db.Model(&Author{ID: 1}).Where(fmt.Sprintf("%d = %d", i, i)).Update("name", fmt.Sprint("n", i)).Error)
		// A DDL: the plugin forgets, a new state begins.
		must(t, e.db.Exec(fmt.Sprintf("COMMENT ON TABLE authors IS 'c%d'", i)).Error)
	}
	for i := 0; i < 20; i++ { // warm up: pools, otter, GORM's caches
		round(-1 - i)
	}
	base := heap()
	const texts = 300
	for i := 0; i < texts; i++ {
		round(i)
	}
	grown := int64(heap()) - int64(base)
	runtime.KeepAlive(e)
	t.Logf("%d write texts, one catalog state each: live heap grew by %.1f MiB", texts, float64(grown)/(1<<20))
	// The memory table's bounds for what this touches: 2 MiB of
	// inspections (plus 0.5 MiB of front), catalog facts of 4096 tables
	// (a few hundred bytes each). 8 MiB is generous.
	if grown > 8<<20 {
		t.Fatalf("%d write texts keep %.1f MiB alive: old catalog states are pinned by their write plans", texts, float64(grown)/(1<<20))
	}
}
