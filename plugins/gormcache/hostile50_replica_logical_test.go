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

// TestHostile50ReplicaNotInRecoveryTrusted: a dbresolver replica that is
// not a physical standby, such as a logical-replication subscriber (its
// pg_is_in_recovery() is false), is taken for a primary
// (replicaCaughtUp: primaryUntil) and every fill routed to it runs there
// unfenced, whatever it lags, with no ReplicaWindow either. The
// subscriber is stood in for here by a second schema of the local server
// whose copy of the table is brought up to date by hand (so its lag is
// certain): the write through GORM returns, the next cached read caches
// the copy's old row under the new versions, and that row is still served
// after the copy has caught up. ReplicaCheckPrimary does not help: the
// replica is not asked its position once found not in recovery.
func TestHostile50ReplicaNotInRecoveryTrusted(t *testing.T) {
	for _, check := range []bool{false, true} {
		name := "default"
		if check {
			name = "ReplicaCheckPrimary"
		}
		t.Run(name, func(t *testing.T) { h50rNotInRecovery(t, check) })
	}
}

func h50rNotInRecovery(t *testing.T, check bool) {
	pdsn := testenv.PostgresSchema(t)
	rdsn := testenv.PostgresSchema(t)
	db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	replica, err := gorm.Open(postgres.Open(rdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*gorm.DB{db, replica} {
		must(t, d.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
		must(t, d.Exec("INSERT INTO h50_items VALUES (1, 'old')").Error)
	}
	var opts []gormcache.Option
	if check {
		opts = append(opts, gormcache.ReplicaCheckPrimary())
	}
	plugin := gormcache.New(newReplicaCache(t), opts...)
	useInOrder(t, db, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(rdsn)}}), plugin)
	if got := h50rReadName(t, db); got != "old" {
		t.Fatalf("first read %q", got)
	}
	must(t, db.Model(&h50rItem{ID: 1}).Update("name", "new").Error)
	if got := h50rReadName(t, db); got != "new" {
		t.Errorf("the read after the Update returned %q from the lagging replica (%+v)", got, plugin.ReplicaStats())
	}
	// The subscriber applies the change.
	must(t, replica.Exec("UPDATE h50_items SET name = 'new' WHERE id = 1").Error)
	if got := h50rReadName(t, db); got != "new" {
		t.Errorf("after the replica caught up the cache still serves %q", got)
	}
}
