package gormcache_test

import (
	"context"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

func h50rReadName(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var it h50rItem
	if err := db.Scopes(gormcache.Cacheable()).First(&it, 1).Error; err != nil {
		t.Fatal(err)
	}
	return it.Name
}

// TestHostile50ReplicaManualInvalidateNotFenced: a write the plugin cannot
// see (another program, a raw connection) followed by
// cache.InvalidateTables, the remedy the README gives for such writes. The
// invalidation returns, yet the next cached read is routed by dbresolver to
// the lagging standby, whose old row is stored under the new versions and
// served from the cache even after the standby has caught up (until the
// TTL, an hour here). InvalidateTables goes straight to the Cache and
// never records a replica fence (Plugin.apply -> fenceWrite is the only
// place one is recorded). With ReplicaCheckPrimary it holds (subtest),
// but neither the option's doc nor the README's InvalidateTables advice
// says a manual invalidation needs it.
func TestHostile50ReplicaManualInvalidateNotFenced(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	for _, check := range []bool{false, true} {
		name := "default"
		if check {
			name = "ReplicaCheckPrimary"
		}
		t.Run(name, func(t *testing.T) { h50rManualInvalidate(t, r, check) })
	}
}

func h50rManualInvalidate(t *testing.T, r *testenv.PGReplica, check bool) {
	pdsn, sdsn := r.Schema(t)
	schema := schemaOf(pdsn)
	db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
	must(t, db.Exec("INSERT INTO h50_items VALUES (1, 'old')").Error)
	r.WaitReplayed(t)
	var opts []gormcache.Option
	if check {
		opts = append(opts, gormcache.ReplicaCheckPrimary())
	}
	plugin := gormcache.New(newReplicaCache(t), opts...)
	useInOrder(t, db, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), plugin)
	if got := h50rReadName(t, db); got != "old" {
		t.Fatalf("first read %q", got)
	}
	r.PauseReplay(t)
	defer r.ResumeReplay(t)
	// The write the plugin does not see, then the manual invalidation.
	if _, err := r.Primary().Exec("UPDATE " + schema + ".h50_items SET name = 'new' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := plugin.Cache().InvalidateTables(context.Background(), "h50_items"); err != nil {
		t.Fatal(err)
	}
	if got := h50rReadName(t, db); got != "new" {
		t.Errorf("the read after the write and InvalidateTables returned %q (%+v)", got, plugin.ReplicaStats())
	}
	r.ResumeReplay(t)
	r.WaitReplayed(t)
	if got := h50rReadName(t, db); got != "new" {
		t.Errorf("after the standby replayed the write the cache still serves %q (hits %d)", got, plugin.Cache().Stats().Hits)
	}
}

// TestHostile50ReplicaSiblingWriterNotFenced: two *gorm.DB of one process
// share one *querycache.Cache (a writer handle without replicas, a reader
// handle with dbresolver). The writer's Update returns, the reader's next
// cached read goes to the lagging standby and caches the old row under the
// versions the write just replaced: it is served after the standby has
// caught up. DESIGN: "A fill must never store a result older than a write
// the cache has already applied: this also covers reads served by a
// lagging replica"; the README says "a write this process applied". The
// fence is per plugin (Plugin.rf); sibling plugins of one cache share
// their catalog forgetting (forgetSiblings) but not their fences.
// (TestReplicaOtherWriter shows the same with two dbresolver handles and
// calls it the documented cross-process limit.)
func TestHostile50ReplicaSiblingWriterNotFenced(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	pdsn, sdsn := r.Schema(t)
	shared := newReplicaCache(t)
	writer, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	must(t, writer.Use(gormcache.New(shared)))
	reader, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	rp := gormcache.New(shared)
	useInOrder(t, reader, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), rp)
	must(t, writer.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
	must(t, writer.Create(&h50rItem{ID: 1, Name: "old"}).Error)
	r.WaitReplayed(t)
	if got := h50rReadName(t, reader); got != "old" {
		t.Fatalf("first read %q", got)
	}
	r.PauseReplay(t)
	defer r.ResumeReplay(t)
	must(t, writer.Model(&h50rItem{ID: 1}).Update("name", "new").Error)
	if got := h50rReadName(t, reader); got != "new" {
		t.Errorf("the reader's read after the writer's Update returned %q (%+v)", got, rp.ReplicaStats())
	}
	r.ResumeReplay(t)
	r.WaitReplayed(t)
	if got := h50rReadName(t, reader); got != "new" {
		t.Errorf("after the standby replayed the write the cache still serves %q", got)
	}
}
