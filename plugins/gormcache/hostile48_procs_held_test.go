package gormcache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Round 48, several processes and Redis faults. Each "process" is its own
// *gorm.DB, its own Redis client and store, its own Cache and plugin, on a
// private redis-server and one PostgreSQL schema, sharing a prefix.

type H48Item struct {
	ID  uint
	N   int
	Pad string
}

type h48Proc struct {
	db    *gorm.DB
	cache *querycache.Cache
	rs    *querycache.RedisStore
}

func h48Client(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DB: 1,
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// h48Open opens one process; tiered puts a first level in front of Redis.
func h48Open(t *testing.T, dsn, addr, prefix string, tiered, strict bool) h48Proc {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	rs := querycache.NewRedisStore(h48Client(t, addr), querycache.RedisOptions{
		Timeout: 300 * time.Millisecond, InvalidateTimeout: 400 * time.Millisecond, BreakerProbe: 50 * time.Millisecond})
	var st querycache.Store = rs
	if tiered {
		st = querycache.NewTieredStore(rs, querycache.TieredOptions{Strict: strict, PingInterval: 200 * time.Millisecond})
	}
	c, err := querycache.New(querycache.Options{Store: st, Prefix: prefix, RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := db.Use(gormcache.New(c)); err != nil {
		t.Fatal(err)
	}
	return h48Proc{db: db, cache: c, rs: rs}
}

func (p h48Proc) row(t *testing.T, id int) int {
	t.Helper()
	var it H48Item
	must(t, p.db.Scopes(gormcache.Cacheable()).First(&it, id).Error)
	return it.N
}

func (p h48Proc) list(t *testing.T) map[uint]int {
	t.Helper()
	var all []H48Item
	must(t, p.db.Scopes(gormcache.Cacheable()).Order("id").Find(&all).Error)
	m := map[uint]int{}
	for _, it := range all {
		m[it.ID] = it.N
	}
	return m
}

func (p h48Proc) truth(t *testing.T) map[uint]int {
	t.Helper()
	var all []H48Item
	must(t, p.db.Scopes(gormcache.NoCache()).Order("id").Find(&all).Error)
	m := map[uint]int{}
	for _, it := range all {
		m[it.ID] = it.N
	}
	return m
}

// waitFor polls until cond holds (the first level's broadcast delay), for
// at most 10 s.
func h48WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHostile48ProcsTieredRestartFromSnapshot: A and B each run a
// two-level store. Both cache rows at 0, Redis saves an RDB, A writes
// every row to 1, B sees 1 (from its first level, recorded against the
// new tokens). Redis is killed and restarted from the snapshot: the old
// entries and tokens are back. Neither process may ever show 0 again.
func TestHostile48ProcsTieredRestartFromSnapshot(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprint("strict=", strict), func(t *testing.T) {
			srv := testenv.StartRedis(t, "--save", "", "--dbfilename", "dump.rdb")
			dsn := testenv.PostgresSchema(t)
			prefix := testenv.TestPrefix(t)
			a := h48Open(t, dsn, srv.Addr(), prefix, true, strict)
			b := h48Open(t, dsn, srv.Addr(), prefix, true, strict)
			must(t, a.db.AutoMigrate(&H48Item{}))
			const rows = 8
			for i := 1; i <= rows; i++ {
				must(t, a.db.Create(&H48Item{ID: uint(i)}).Error)
			}
			for _, p := range []h48Proc{a, b} {
				for i := 1; i <= rows; i++ {
					p.row(t, i)
					p.row(t, i)
				}
				p.list(t)
				p.list(t)
			}
			admin := srv.Client(1)
			ctx := context.Background()
			must(t, admin.Save(ctx).Err())
			for i := 1; i <= rows; i++ {
				must(t, a.db.Model(&H48Item{ID: uint(i)}).Update("n", 1).Error)
			}
			for _, p := range []h48Proc{a, b} {
				h48WaitFor(t, "new rows visible", func() bool {
					for i := 1; i <= rows; i++ {
						if p.row(t, i) != 1 {
							return false
						}
					}
					for _, n := range p.list(t) {
						if n != 1 {
							return false
						}
					}
					return true
				})
			}
			srv.Kill()
			srv.Restart()
			stale := 0
			end := time.Now().Add(1500 * time.Millisecond)
			for time.Now().Before(end) {
				for pi, p := range []h48Proc{a, b} {
					for i := 1; i <= rows; i++ {
						if n := p.row(t, i); n != 1 {
							stale++
							if stale < 5 {
								t.Errorf("process %d row %d after the restart: %d, want 1", pi, i, n)
							}
						}
					}
					for id, n := range p.list(t) {
						if n != 1 {
							stale++
							if stale < 5 {
								t.Errorf("process %d list row %d after the restart: %d, want 1", pi, id, n)
							}
						}
					}
				}
			}
			t.Logf("server changes A %d B %d; hits A %d B %d", a.rs.ServerChanges(), b.rs.ServerChanges(), a.cache.Stats().Hits, b.cache.Stats().Hits)
			if stale > 0 {
				t.Fatalf("%d stale reads after the restart from the snapshot", stale)
			}
		})
	}
}

// TestHostile48ProcsEvictedVersionsTwoProcs: a tiny maxmemory with
// allkeys-lru evicts version keys while entries recorded against them may
// survive; A writes, B (plain Redis store, so no broadcast delay) must
// read the write once it returned.
func TestHostile48ProcsEvictedVersionsTwoProcs(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, "--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru", "--maxmemory-samples", "1")
	dsn := testenv.PostgresSchema(t)
	prefix := testenv.TestPrefix(t)
	a := h48Open(t, dsn, srv.Addr(), prefix, false, false)
	b := h48Open(t, dsn, srv.Addr(), prefix, false, false)
	must(t, a.db.AutoMigrate(&H48Item{}))
	const rows = 60
	pad := strings.Repeat("x", 20000)
	for i := 1; i <= rows; i++ {
		must(t, a.db.Create(&H48Item{ID: uint(i), Pad: pad}).Error)
	}
	cur := make([]int, rows+1)
	stale := 0
	for round := 0; round < 6; round++ {
		for i := 1; i <= rows; i++ {
			b.row(t, i)
			b.row(t, i)
			var some []H48Item
			must(t, b.db.Scopes(gormcache.Cacheable()).Where("id BETWEEN ? AND ?", i, i+2).Order("id").Find(&some).Error)
		}
		for i := 1; i <= rows; i += 3 {
			cur[i]++
			must(t, a.db.Model(&H48Item{ID: uint(i)}).Update("n", cur[i]).Error)
			if n := b.row(t, i); n != cur[i] {
				stale++
				t.Errorf("round %d: B read row %d = %d after A wrote %d", round, i, n, cur[i])
			}
			var some []H48Item
			must(t, b.db.Scopes(gormcache.Cacheable()).Where("id BETWEEN ? AND ?", i, i+2).Order("id").Find(&some).Error)
			for _, it := range some {
				if it.N != cur[it.ID] {
					stale++
					t.Errorf("round %d: B range read row %d = %d, want %d", round, it.ID, it.N, cur[it.ID])
				}
			}
		}
	}
	info, _ := srv.Client(1).Info(context.Background(), "stats").Result()
	t.Logf("evicted_keys: %q; hits B %d", infoFieldH48(info, "evicted_keys"), b.cache.Stats().Hits)
	if stale > 0 {
		t.Fatalf("%d stale reads", stale)
	}
}

func infoFieldH48(info, f string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(l, f+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestHostile48ProcsTieredVersionGarbageAndFlush: B (two levels) caches
// rows; the version keys are overwritten with garbage by hand, then the
// database is flushed; A writes after each; B must converge to the new
// row and never return to an older one.
func TestHostile48ProcsTieredVersionGarbageAndFlush(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, "--save", "")
	dsn := testenv.PostgresSchema(t)
	prefix := testenv.TestPrefix(t)
	a := h48Open(t, dsn, srv.Addr(), prefix, true, false)
	b := h48Open(t, dsn, srv.Addr(), prefix, true, false)
	must(t, a.db.AutoMigrate(&H48Item{}))
	must(t, a.db.Create(&H48Item{ID: 1}).Error)
	admin := srv.Client(1)
	ctx := context.Background()
	for round := 1; round <= 6; round++ {
		b.row(t, 1)
		b.list(t)
		b.row(t, 1)
		switch round % 3 {
		case 0:
			keysv, err := admin.Keys(ctx, prefix+"v:*").Result()
			must(t, err)
			for _, k := range keysv {
				must(t, admin.Set(ctx, k, "garbage", 0).Err())
			}
		case 1:
			must(t, admin.FlushDB(ctx).Err())
		case 2:
			must(t, admin.FlushAll(ctx).Err())
		}
		b.row(t, 1)
		must(t, a.db.Model(&H48Item{ID: 1}).Update("n", round).Error)
		h48WaitFor(t, fmt.Sprint("round ", round), func() bool { return b.row(t, 1) == round && b.list(t)[1] == round })
		for k := 0; k < 20; k++ {
			if n := b.row(t, 1); n != round {
				t.Fatalf("round %d: B went back to %d", round, n)
			}
			if n := a.row(t, 1); n != round {
				t.Fatalf("round %d: A read %d", round, n)
			}
		}
	}
}
