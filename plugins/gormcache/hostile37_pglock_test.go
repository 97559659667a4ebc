package gormcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// TestHostile37PluginPgStoreLockedVersionsWriteServedStale is the plugin's
// view of querycache's TestHostile37PgLockedVersionWriteServedStale: two
// processes (each its own *gorm.DB, pool, PostgresStore with every
// default, Cache and plugin with every default: the catalog watch on) on
// one PostgreSQL schema that holds both the rows and the store. Another
// session holds the store's version rows but the epoch's locked for 1.6 s
// (a stalled backend of a third process that was replacing them). B
// commits an UPDATE of row 1; its invalidation waits for the lock, gives
// up after InvalidateTimeout and is kept pending; Update returns. A, whose
// every lookup and catalog poll is answered (readers do not wait for row
// locks), reads row 1 after B's Update returned. C1: N=1. Failed 3 of 3
// (with every row locked) before B's store replaced the epoch when its
// invalidation timed out (PostgresStore.bumpOrEpochs).
//
// kind "pg" is the plain store; "tiered-pg-strict" the two-level store
// in strict mode (every L1 hit reads its versions from PostgreSQL).
// The control waits for B's delivery before A reads.
func TestHostile37PluginPgStoreLockedVersionsWriteServedStale(t *testing.T) {
	for _, kind := range []string{"pg", "tiered-pg-strict"} {
		for _, control := range []bool{false, true} {
			name := kind
			if control {
				name += "/control-wait-for-delivery"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel() // own schema and store; it mostly waits for a lock
				h37PluginLocked(t, kind, control)
			})
		}
	}
}

type h37Proc struct {
	db    *gorm.DB
	cache *querycache.Cache
	ps    *querycache.PostgresStore
}

func h37Pool(t *testing.T, n int32) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = n
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func h37OpenProc(t *testing.T, dsn, schema, kind string) *h37Proc {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		testenv.Unavailable(t, "postgres", err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	must(t, db.AutoMigrate(&H35Item{}))
	ps := querycache.NewPostgresStore(h37Pool(t, 4), querycache.PostgresOptions{Schema: schema})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, ps.EnsureSchema(ctx))
	var store querycache.Store = ps
	if kind == "tiered-pg-strict" {
		store = querycache.NewTieredPostgresStore(ps, querycache.TieredOptions{Strict: true})
	}
	c, err := querycache.New(querycache.Options{Store: store, Prefix: "h37:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	must(t, db.Use(gormcache.New(c)))
	return &h37Proc{db: db, cache: c, ps: ps}
}

func (p *h37Proc) read(t *testing.T, id uint) (int, bool) {
	t.Helper()
	before := p.cache.Stats().Hits
	var it H35Item
	must(t, p.db.Scopes(gormcache.Cacheable()).First(&it, id).Error)
	return it.N, p.cache.Stats().Hits > before
}

func h37PluginLocked(t *testing.T, kind string, control bool) {
	dsn := testenv.PostgresSchema(t)
	schema := pgSchemaName(dsn)
	a := h37OpenProc(t, dsn, schema, kind)
	b := h37OpenProc(t, dsn, schema, kind)
	must(t, a.db.Create(&[]H35Item{{ID: 1}, {ID: 2}}).Error)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, hit := a.read(t, 1)
		if hit && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A never served row 1 from the cache (%+v)", a.cache.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The lock: every version row there is now but the epoch's (another
	// process's stalled bump would hold those it replaces; one of
	// everything, which holds the epoch too, leaves the write pending as
	// before: README, "PostgreSQL store").
	ctx := context.Background()
	lock := h37Pool(t, 1)
	tx, err := lock.Begin(ctx)
	must(t, err)
	vt := pgx.Identifier{schema, "querycache_versions"}.Sanitize()
	_, err = tx.Exec(ctx, `SELECT 1 FROM `+vt+` WHERE name <> $1 FOR UPDATE`, []byte(a.cache.Namespace().Epoch()))
	must(t, err)
	locked := time.Now()
	timer := time.AfterFunc(1600*time.Millisecond, func() { _ = tx.Rollback(ctx) })
	defer timer.Stop()

	must(t, b.db.Model(&H35Item{ID: 1}).Update("n", 1).Error)
	returned := time.Now()
	t.Logf("B's Update returned %v after the lock; B pending %d; A's breaker open %v",
		returned.Sub(locked).Round(time.Millisecond), b.cache.Stats().Pending, a.ps.BreakerOpen())
	if control {
		deadline := time.Now().Add(10 * time.Second)
		for b.cache.Stats().Pending != 0 {
			if time.Now().After(deadline) {
				t.Fatal("B never delivered")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stale, reads := 0, 0
	var first, last time.Duration
	for i := 0; i < 20 || b.cache.Stats().Pending != 0; i++ {
		if time.Since(returned) > 10*time.Second {
			break
		}
		n, _ := a.read(t, 1)
		reads++
		if n != 1 {
			if stale == 0 {
				first = time.Since(returned)
			}
			stale++
			last = time.Since(returned)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if truth := h35Truth(t, a.db, 1); truth != 1 {
		t.Fatalf("the database holds N=%d; B committed 1", truth)
	}
	if stale > 0 {
		t.Errorf("A read row 1 as N=0 %d times of %d, from %v to %v after B's Update(n=1) returned; A's breaker openings %d",
			stale, reads, first.Round(time.Millisecond), last.Round(time.Millisecond), a.ps.Stats().BreakerOpenings)
	}
}
