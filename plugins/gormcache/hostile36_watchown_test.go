package gormcache_test

import (
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
)

// TestHostile36OtherProcessDDLHiddenByOwnBump: the catalog watch tells
// another process's DDL from this process's own by whether its Cache
// bumped the watched versions itself (querycache's watch.go). When both
// fall in one watch period, the own bump's change was told as Own alone:
// another process's migration never reached otherDDL, and what this
// process wrote in between, judged by the old schema, stayed stale until
// its TTL (TestHostile35OtherProcessDDLWindowLeavesPermanentStale's
// window, with an own DDL of A's closing it). Now the own bump reads the
// tokens first: a change since the last read is another process's, told
// before the own one; a watched name the bump did not replace that
// changed meanwhile likewise.
//
// Order of events (A's watch period 1 s, so that no poll falls between
// them on a machine that is not overloaded; one that does makes this the
// control):
//  1. A updates h35_parents (learns its facts: no dependents) and caches
//     the children of parent 1
//  2. B adds an AFTER DELETE trigger on h35_parents deleting the children
//  3. A deletes parent 1 (invalidates h35_parents' row by the old facts)
//  4. A runs DDL of its own on an unrelated table (bumps the catalog)
//  5. A lists the children of parent 1, within the period and after it
//
// The control has no step 4: A's watch follows B's migration at its poll.
func TestHostile36OtherProcessDDLHiddenByOwnBump(t *testing.T) {
	for _, dbk := range h35Databases() {
		for _, control := range []bool{false, true} {
			name := dbk.name
			if control {
				name += "/control-no-own-ddl"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel() // own database and prefix; it mostly sleeps
				d := dbk.make(t)
				prefix := testenv.TestPrefix(t)
				watch := gormcache.CatalogWatch(time.Second)
				a := h35Open(t, d, redisClient(t), prefix, false, false, tableRedisOptions, watch)
				b := h35Open(t, d, redisClient(t), prefix, false, false, tableRedisOptions, watch)
				must(t, a.db.AutoMigrate(&H35Parent{}, &H35Child{}))
				must(t, a.db.Create(&[]H35Parent{{ID: 1}, {ID: 2}}).Error)
				must(t, a.db.Create(&[]H35Child{{ID: 1, ParentID: 1, Name: "a"}, {ID: 2, ParentID: 1, Name: "b"}, {ID: 3, ParentID: 2, Name: "c"}}).Error)
				// 1.
				must(t, a.db.Model(&H35Parent{ID: 2}).Update("v", 1).Error)
				children := func() []H35Child {
					var cs []H35Child
					must(t, a.db.Scopes(gormcache.Cacheable()).Where("parent_id = ?", 1).Order("id").Find(&cs).Error)
					return cs
				}
				// 2. B's migration, then A caches the children again (B's
				// DDL invalidated what the trigger's tables cover).
				trigger := `CREATE TRIGGER h36_cascade AFTER DELETE ON h35_parents BEGIN DELETE FROM h35_children WHERE parent_id = OLD.id; END`
				if dbk.name == "postgres" {
					must(t, b.db.Exec(`CREATE FUNCTION h36_cascade_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM h35_children WHERE parent_id = OLD.id; RETURN OLD; END $$`).Error)
					trigger = `CREATE TRIGGER h36_cascade AFTER DELETE ON h35_parents FOR EACH ROW EXECUTE FUNCTION h36_cascade_f()`
				}
				must(t, b.db.Exec(trigger).Error)
				children()
				hits := a.cache.Stats().Hits
				if cs := children(); len(cs) != 2 || a.cache.Stats().Hits == hits {
					t.Fatalf("children of parent 1 not cached after B's migration: %d rows, hits %d -> %d", len(cs), hits, a.cache.Stats().Hits)
				}
				// 3.
				must(t, a.db.Delete(&H35Parent{ID: 1}).Error)
				// 4.
				if !control {
					must(t, a.db.Exec(`CREATE TABLE h36_unrelated (id integer PRIMARY KEY)`).Error)
				}
				var truth int64
				must(t, a.db.Scopes(gormcache.NoCache()).Model(&H35Child{}).Where("parent_id = ?", 1).Count(&truth).Error)
				if truth != 0 {
					t.Fatalf("the database still holds %d children of parent 1: the trigger did not fire", truth)
				}
				// 5. After A's next poll (the control needs it).
				time.Sleep(1400 * time.Millisecond)
				if cs := children(); len(cs) != 0 {
					t.Errorf("A lists %d children of parent 1 (%+v) after deleting it; B's trigger deleted them all", len(cs), cs)
				}
			})
		}
	}
}
