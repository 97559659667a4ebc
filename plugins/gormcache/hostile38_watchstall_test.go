package gormcache_test

import (
	"syscall"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile38OtherProcessDDLHiddenWhenPreReadStalls: cfd7f50 reads the
// watched tokens before an own bump so that another process's catalog
// change is told apart from the own one. When that read fails (the store
// stalls for a moment: the read times out after Timeout, the bump waits
// up to InvalidateTimeout and gets its answer), the old behaviour comes
// back: B's migration is told as A's own and never reaches otherDDL.
//
//  1. A caches the children of parent 1 (facts: no dependents)
//  2. B adds an AFTER DELETE trigger (bumps the catalog)
//  3. A deletes parent 1 (judged by old facts)
//  4. Redis stalls (SIGSTOP) ~600 ms; A runs unrelated DDL meanwhile:
//     lockWatches' Fetch times out (before=nil), the Bump waits and succeeds
//  5. after A's next poll, A lists the children of parent 1
func TestHostile38OtherProcessDDLHiddenWhenPreReadStalls(t *testing.T) {
	for _, dbk := range h35Databases() {
		for _, stall := range []bool{true, false} {
			name := dbk.name
			if !stall {
				name += "/control-no-stall"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel() // own Redis server, database and prefix; it mostly sleeps
				srv := testenv.StartRedis(t)
				d := dbk.make(t)
				prefix := testenv.TestPrefix(t)
				watch := gormcache.CatalogWatch(2 * time.Second)
				ro := querycache.RedisOptions{Timeout: 250 * time.Millisecond, InvalidateTimeout: 4 * time.Second}
				a := h35Open(t, d, srv.Client(0), prefix, false, false, ro, watch)
				b := h35Open(t, d, srv.Client(0), prefix, false, false, ro, watch)
				must(t, a.db.AutoMigrate(&H35Parent{}, &H35Child{}))
				must(t, a.db.Create(&[]H35Parent{{ID: 1}, {ID: 2}}).Error)
				must(t, a.db.Create(&[]H35Child{{ID: 1, ParentID: 1, Name: "a"}, {ID: 2, ParentID: 1, Name: "b"}, {ID: 3, ParentID: 2, Name: "c"}}).Error)
				must(t, a.db.Model(&H35Parent{ID: 2}).Update("v", 1).Error)
				children := func() []H35Child {
					var cs []H35Child
					must(t, a.db.Scopes(gormcache.Cacheable()).Where("parent_id = ?", 1).Order("id").Find(&cs).Error)
					return cs
				}
				trigger := `CREATE TRIGGER h38_cascade AFTER DELETE ON h35_parents BEGIN DELETE FROM h35_children WHERE parent_id = OLD.id; END`
				if dbk.name == "postgres" {
					must(t, b.db.Exec(`CREATE FUNCTION h38_cascade_f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN DELETE FROM h35_children WHERE parent_id = OLD.id; RETURN OLD; END $$`).Error)
					trigger = `CREATE TRIGGER h38_cascade AFTER DELETE ON h35_parents FOR EACH ROW EXECUTE FUNCTION h38_cascade_f()`
				}
				must(t, b.db.Exec(trigger).Error)
				children()
				hits := a.cache.Stats().Hits
				if cs := children(); len(cs) != 2 || a.cache.Stats().Hits == hits {
					t.Fatalf("children of parent 1 not cached: %d rows", len(cs))
				}
				must(t, a.db.Delete(&H35Parent{ID: 1}).Error)
				if stall {
					pid := srv.Pid()
					must(t, syscall.Kill(pid, syscall.SIGSTOP))
					done := make(chan struct{})
					go func() { time.Sleep(600 * time.Millisecond); syscall.Kill(pid, syscall.SIGCONT); close(done) }()
					t.Cleanup(func() { <-done })
				}
				start := time.Now()
				must(t, a.db.Exec(`CREATE TABLE h38_unrelated (id integer PRIMARY KEY)`).Error)
				t.Logf("A's DDL took %v; errors %d", time.Since(start), a.cache.Stats().Errors)
				time.Sleep(2600 * time.Millisecond)
				if cs := children(); len(cs) != 0 {
					t.Errorf("A lists %d children of parent 1 after deleting it; B's trigger deleted them all (B's DDL told to A as its own)", len(cs))
				}
			})
		}
	}
}
