package gormcache_test

import (
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// TestHostileReplicaWriteDuringActivation: a write commits and applies
// its invalidation while the fence is being switched on (after the
// activation read the primary's position, before writes record fences).
// The write saw the fence off, so it recorded no fence of its own; the
// activation's position must therefore be read after the switch-on, or
// it is older than the write and a later fill of the written row goes to
// the lagging standby and caches the old row under the new versions.
func TestHostileReplicaWriteDuringActivation(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	pdsn, sdsn := r.Schema(t)
	db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&replicaItem{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&replicaItem{ID: 1, Name: "old"}).Error; err != nil {
		t.Fatal(err)
	}
	cache := newReplicaCache(t)
	plugin := gormcache.New(cache)
	useInOrder(t, db, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), plugin)
	paused := false
	defer func() {
		if paused {
			r.ResumeReplay(t)
		}
	}()
	gormcache.SetReplicaActivationHookForTest(plugin, func() {
		// The standby has replayed everything up to now (past the
		// position the activation just read), then stops; the write
		// commits on the primary only.
		r.WaitReplayed(t)
		r.PauseReplay(t)
		paused = true
		if err := db.Model(&replicaItem{ID: 1}).Update("name", "new").Error; err != nil {
			t.Error(err)
		}
	})
	// The first replica fill switches the fence on; it read the versions
	// before the write, so whatever it returns is not served later.
	_ = readItem(t, db)
	if got := readItem(t, db); got != "new" {
		t.Errorf("a read after the write returned %q from the lagging standby (%+v)", got, plugin.ReplicaStats())
	}
	if got := readItem(t, db); got != "new" {
		t.Errorf("the second read after the write returned %q: the old row was cached", got)
	}
	var onStandby string
	if err := r.Standby().QueryRow("SELECT name FROM " + schemaOf(sdsn) + ".replica_items WHERE id = 1").Scan(&onStandby); err != nil || onStandby != "old" {
		t.Fatalf("the paused standby reads %q (%v): the lag is not certain", onStandby, err)
	}
	t.Logf("%+v", plugin.ReplicaStats())
}

// TestHostileReplicaUnknownFenceResolvedByOlderRead: write B's fence is
// unknown (the pool was exhausted: no position read), and a concurrent
// write A, whose position was read before B committed, records its
// position after B's unknown fence. That position does not cover B: it
// must not resolve B's unknown fence, or a fill of B's row goes to a
// standby that has replayed A but not B, and caches the old row.
func TestHostileReplicaUnknownFenceResolvedByOlderRead(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	db, plugin := openReplicated(t, r, "dbresolver first", []replicaItem{{ID: 1, Name: "old"}, {ID: 2, Name: "a0"}}, nil)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	if got := readItem(t, db); got != "old" { // switches the fence on
		t.Fatalf("first read: %q", got)
	}
	paused := false
	defer func() {
		if paused {
			r.ResumeReplay(t)
		}
	}()
	fired := false
	gormcache.SetReplicaWriteReadHookForTest(plugin, func() {
		if fired {
			return
		}
		fired = true
		// A's position is read. The standby replays up to here and stops;
		// then B commits while its rows hold the pool's only connection.
		r.WaitReplayed(t)
		r.PauseReplay(t)
		paused = true
		rows, err := db.Raw("UPDATE replica_items SET name = 'new' WHERE id = 1 RETURNING id").Rows()
		if err != nil {
			t.Error(err)
			return
		}
		for rows.Next() {
		}
		rows.Close()
	})
	if err := db.Model(&replicaItem{ID: 2}).Update("name", "a1").Error; err != nil { // A
		t.Fatal(err)
	}
	if !fired {
		t.Fatal("the hook did not run")
	}
	if got := readItem(t, db); got != "new" {
		t.Errorf("a read after write B returned %q from the lagging standby (%+v)", got, plugin.ReplicaStats())
	}
	if got := readItem(t, db); got != "new" {
		t.Errorf("the second read after write B returned %q: the old row was cached", got)
	}
	t.Logf("%+v", plugin.ReplicaStats())
}

// TestHostileReplicaTransactionOnStandby: dbresolver can begin a
// transaction on a replica (Clauses(dbresolver.Read).Begin()). A read in
// it sees the standby's old row; that is what the user asked for, but it
// must not be cached where a plain read after the write finds it.
func TestHostileReplicaTransactionOnStandby(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	db, plugin := openReplicated(t, r, "dbresolver first", &replicaItem{ID: 1, Name: "old"}, nil)
	if got := readItem(t, db); got != "old" {
		t.Fatalf("first read: %q", got)
	}
	r.PauseReplay(t)
	defer r.ResumeReplay(t)
	if err := db.Model(&replicaItem{ID: 1}).Update("name", "new").Error; err != nil {
		t.Fatal(err)
	}
	tx := db.Clauses(dbresolver.Read).Begin()
	if tx.Error != nil {
		t.Fatal(tx.Error)
	}
	var it replicaItem
	if err := tx.Scopes(gormcache.Cacheable()).First(&it, 1).Error; err != nil {
		t.Fatal(err)
	}
	t.Logf("read in the standby's transaction: %q", it.Name)
	var it2 replicaItem
	if err := tx.Scopes(gormcache.Cacheable()).Where("name <> ?", "x").First(&it2, 1).Error; err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit().Error; err != nil {
		t.Fatal(err)
	}
	if got := readItem(t, db); got != "new" {
		t.Errorf("a read after the write and the standby's transaction returned %q (%+v)", got, plugin.ReplicaStats())
	}
	var it3 replicaItem
	if err := db.Scopes(gormcache.Cacheable()).Where("name <> ?", "x").First(&it3, 1).Error; err != nil || it3.Name != "new" {
		t.Errorf("a list read after the standby's transaction returned %q %v", it3.Name, err)
	}
}

// TestHostileReplicaDedicatedConnection: reads inside db.Connection, on
// the resolver's read side and on the default, after a write the paused
// standby has not replayed: none returns (or caches, for later plain
// reads) the old row as if it came from the primary.
func TestHostileReplicaDedicatedConnection(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	db, plugin := openReplicated(t, r, "dbresolver first", &replicaItem{ID: 1, Name: "old"}, nil)
	if got := readItem(t, db); got != "old" {
		t.Fatalf("first read: %q", got)
	}
	r.PauseReplay(t)
	defer r.ResumeReplay(t)
	if err := db.Model(&replicaItem{ID: 1}).Update("name", "new").Error; err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		name string
		db   *gorm.DB
	}{{"read clause", db.Clauses(dbresolver.Read)}, {"default", db}} {
		err := side.db.Connection(func(c *gorm.DB) error {
			var it replicaItem
			if err := c.Scopes(gormcache.Cacheable()).First(&it, 1).Error; err != nil {
				return err
			}
			t.Logf("%s: read in Connection: %q", side.name, it.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := readItem(t, db); got != "new" {
			t.Errorf("%s: a plain read after the Connection read returned %q (%+v)", side.name, got, plugin.ReplicaStats())
		}
	}
}
