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

// TestHostile50ReplicaPreparedAndSources: the fence with PrepareStmt (the
// replica's pool wrapped in gorm's PreparedStmtDB), with a PrepareStmt
// session, and with dbresolver Sources naming the primary again (writes on
// a pool the plugin does not manage), in both registration orders.
func TestHostile50ReplicaPreparedAndSources(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	for _, tc := range []struct {
		name     string
		prepared bool
		session  bool
		sources  bool
		order    string
	}{
		{"PrepareStmt", true, false, false, "dbresolver first"},
		{"PrepareStmt gormcache first", true, false, false, "gormcache first"},
		{"PrepareStmt session", false, true, false, "dbresolver first"},
		{"Sources", false, false, true, "dbresolver first"},
		{"Sources PrepareStmt gormcache first", true, false, true, "gormcache first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pdsn, sdsn := r.Schema(t)
			db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard, PrepareStmt: tc.prepared})
			if err != nil {
				t.Fatal(err)
			}
			must(t, db.Exec("CREATE TABLE h50_items (id bigint PRIMARY KEY, name text)").Error)
			must(t, db.Exec("INSERT INTO h50_items VALUES (1, 'old')").Error)
			r.WaitReplayed(t)
			cfg := dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}
			if tc.sources {
				cfg.Sources = []gorm.Dialector{postgres.Open(pdsn)}
			}
			plugin := gormcache.New(newReplicaCache(t))
			useInOrder(t, db, tc.order, dbresolver.Register(cfg), plugin)
			h := db
			if tc.session {
				h = db.Session(&gorm.Session{PrepareStmt: true})
			}
			if got := h50rReadName(t, h); got != "old" {
				t.Fatalf("first read %q", got)
			}
			r.PauseReplay(t)
			defer r.ResumeReplay(t)
			must(t, h.Model(&h50rItem{ID: 1}).Update("name", "new").Error)
			for i := range 2 {
				if got := h50rReadName(t, h); got != "new" {
					t.Errorf("read %d after the write: %q (%+v)", i, got, plugin.ReplicaStats())
				}
			}
			must(t, h.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&h50rItem{ID: 1}).Update("name", "newer").Error
			}))
			if got := h50rReadName(t, h); got != "newer" {
				t.Errorf("after the transaction: %q", got)
			}
			r.ResumeReplay(t)
			r.WaitReplayed(t)
			if got := h50rReadName(t, h); got != "newer" {
				t.Errorf("after catching up: %q", got)
			}
		})
	}
}
