package gormcache_test

import (
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// H35Parent and H35Child: a child row names its parent; the schema has
// no foreign key or trigger until process B's migration adds one.
type H35Parent struct {
	ID uint
	V  int
}

func (H35Parent) TableName() string { return "h35_parents" }

type H35Child struct {
	ID       uint
	ParentID uint
	Name     string
}

func (H35Child) TableName() string { return "h35_children" }

// TestHostile35OtherProcessDDLWindowLeavesPermanentStale: DDL run through
// the plugin in another process sharing the store is followed within the
// catalog watch's period (100 ms). A write made inside that period was
// attributed by the schema learned before: the invalidation it sent missed
// what the new schema made the database change, and the entry that covers
// it stayed stale after the watch caught up (1.5 s later, still served),
// until its TTL. Now the watch, seeing another process's catalog change
// after a write of this process began reading facts, invalidates
// everything (otherDDL), and a managed transaction open across it commits
// as a change of everything.
//
// Order of events:
//  1. A updates h35_parents (learns its facts: no dependents) and caches
//     the children of parent 1 (two rows).
//  2. B (its own *gorm.DB, plugin and store on the same Redis and prefix)
//     migrates: ON DELETE CASCADE foreign key (PostgreSQL), or an AFTER
//     DELETE trigger deleting the children (both databases; the PostgreSQL
//     one is two statements, which invalidate everything: announced).
//  3. A deletes parent 1 at once (within the watch period); in-transaction:
//     in a transaction that commits 400 ms later, after A cached the
//     children again outside it.
//  4. 1.5 s later, A lists the children of parent 1: the database has none.
//
// The control waits 1.5 s between 2 and 3 (what TestHostile21OtherProcess
// DDLOnSharedStore does).
func TestHostile35OtherProcessDDLWindowLeavesPermanentStale(t *testing.T) {
	type ddl struct {
		name, db, sql string
	}
	cases := []ddl{
		{"trigger", "sqlite", `CREATE TRIGGER h35_cascade AFTER DELETE ON h35_parents BEGIN DELETE FROM h35_children WHERE parent_id = OLD.id; END`},
		{"trigger", "postgres", `CREATE FUNCTION h35_cascade_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM h35_children WHERE parent_id = OLD.id; RETURN OLD; END $$;
CREATE TRIGGER h35_cascade AFTER DELETE ON h35_parents FOR EACH ROW EXECUTE FUNCTION h35_cascade_f()`},
		{"fk-cascade", "postgres", `ALTER TABLE h35_children ADD CONSTRAINT h35_fk FOREIGN KEY (parent_id) REFERENCES h35_parents(id) ON DELETE CASCADE`},
	}
	for _, dbk := range h35Databases() {
		for _, c := range cases {
			if c.db != dbk.name {
				continue
			}
			for _, mode := range []string{"", "control-wait", "in-transaction"} {
				control, inTx := mode == "control-wait", mode == "in-transaction"
				name := dbk.name + "/" + c.name
				if mode != "" {
					name += "/" + mode
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel() // own database, prefix and processes; it mostly sleeps
					d := dbk.make(t)
					prefix := testenv.TestPrefix(t)
					a := h35Open(t, d, redisClient(t), prefix, false, false, tableRedisOptions)
					b := h35Open(t, d, redisClient(t), prefix, false, false, tableRedisOptions)
					must(t, a.db.AutoMigrate(&H35Parent{}, &H35Child{}))
					must(t, a.db.Create(&[]H35Parent{{ID: 1}, {ID: 2}}).Error)
					must(t, a.db.Create(&[]H35Child{{ID: 1, ParentID: 1, Name: "a"}, {ID: 2, ParentID: 1, Name: "b"}, {ID: 3, ParentID: 2, Name: "c"}}).Error)
					// 1. A learns h35_parents' facts through a write, and caches
					// the children of parent 1.
					must(t, a.db.Model(&H35Parent{ID: 2}).Update("v", 1).Error)
					children := func() []H35Child {
						var cs []H35Child
						must(t, a.db.Scopes(gormcache.Cacheable()).Where("parent_id = ?", 1).Order("id").Find(&cs).Error)
						return cs
					}
					children()
					before := a.cache.Stats().Hits
					if cs := children(); len(cs) != 2 || a.cache.Stats().Hits == before {
						t.Fatalf("children of parent 1 not cached: %d rows, hits %d -> %d", len(cs), before, a.cache.Stats().Hits)
					}
					// 2. B's migration.
					must(t, b.db.Exec(c.sql).Error)
					if control {
						time.Sleep(1500 * time.Millisecond)
					}
					// B's DDL invalidated what its tables' entries (and a
					// trigger body's) cover: A caches the children again.
					ddlDone := time.Now()
					// A's watch may see B's DDL only now, and invalidate
					// everything A cached meanwhile (a loaded machine
					// delays it past the first fill): read until served.
					for deadline := time.Now().Add(5 * time.Second); ; {
						children()
						cached := a.cache.Stats().Hits
						children()
						if a.cache.Stats().Hits != cached {
							break
						}
						if time.Now().After(deadline) {
							t.Fatal("children of parent 1 not cached again after the migration")
						}
					}
					// 3. A deletes parent 1.
					t.Logf("A deletes parent 1 %v after B's migration returned", time.Since(ddlDone))
					if !inTx {
						must(t, a.db.Delete(&H35Parent{ID: 1}).Error)
					} else {
						// In a transaction that commits after the watch
						// followed B's migration: what A cached meanwhile
						// (the children, as the database still shows them
						// outside the transaction) is stale at the commit.
						tx := a.db.Begin()
						must(t, tx.Error)
						must(t, tx.Delete(&H35Parent{ID: 1}).Error)
						time.Sleep(400 * time.Millisecond)
						if cs := children(); len(cs) != 2 {
							t.Fatalf("outside the open transaction, A lists %d children of parent 1, want the 2 not yet deleted", len(cs))
						}
						must(t, tx.Commit().Error)
					}
					var truth int64
					must(t, a.db.Scopes(gormcache.NoCache()).Model(&H35Child{}).Where("parent_id = ?", 1).Count(&truth).Error)
					if truth != 0 {
						t.Fatalf("the database still holds %d children of parent 1: the migration did not take", truth)
					}
					// 4. Long after the watch period.
					time.Sleep(1500 * time.Millisecond)
					if cs := children(); len(cs) != 0 {
						t.Errorf("1.5 s after A deleted parent 1 (and B's migration made that delete its children), A lists %d children of parent 1 (%+v); the database has none", len(cs), cs)
					}
				})
			}
		}
	}
}
