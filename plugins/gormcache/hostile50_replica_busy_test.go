package gormcache_test

import (
	"context"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// TestHostile50ReplicaBusyPoolReadInsideRowsHangs: the primary's pool has
// one connection (SetMaxOpenConns(1)); a raw writing statement's rows are
// open on it (Raw("UPDATE ... RETURNING").Rows()) and, while iterating
// them, the application reads through dbresolver, which sends the read to
// the standby: without the plugin (or with NoCache) that read returns at
// once. With the plugin the write's fence is unknown (the position read
// was skipped: pool exhausted, fenceWrite), routeFill cannot read a
// position either and sends the fill to the primary's pool (rf.outer),
// where it waits for the connection its own caller holds: it hangs until
// the context ends (forever without a deadline). The fence avoids that
// very self-wait for its position read (poolExhausted) but not for the
// fill it reroutes.
func TestHostile50ReplicaBusyPoolReadInsideRowsHangs(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	pdsn, sdsn := r.Schema(t)
	db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
	must(t, db.Exec("INSERT INTO h50_items VALUES (1, 'old'), (2, 'two')").Error)
	r.WaitReplayed(t)
	plugin := gormcache.New(newReplicaCache(t))
	useInOrder(t, db, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), plugin)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	read := func(mark func(*gorm.DB) *gorm.DB) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var it h50rItem
		return db.WithContext(ctx).Scopes(mark).First(&it, 2).Error
	}
	must(t, read(gormcache.Cacheable())) // the fence is on
	for _, mark := range []struct {
		name string
		f    func(*gorm.DB) *gorm.DB
	}{{"NoCache", gormcache.NoCache()}, {"Cacheable", gormcache.Cacheable()}} {
		rows, err := db.Raw("UPDATE h50_items SET name = 'new' WHERE id = 1 RETURNING id").Rows()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = read(mark.f)
		rows.Close()
		if err != nil {
			t.Errorf("%s read of another row while the write's rows are open: %v after %v (%+v)", mark.name, err, time.Since(start).Round(time.Millisecond), plugin.ReplicaStats())
		}
	}
}
