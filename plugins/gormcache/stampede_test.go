package gormcache_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Stampede shape: stampedeProcs processes, each with stampedeGoroutines
// goroutines that all miss the same key at the same moment, for
// stampedeRounds rounds (a different row, so a different key, each).
const (
	stampedeProcs      = 4
	stampedeGoroutines = 200
	stampedeRounds     = 3
	// stampedeGap separates the rounds' start times: long enough for a
	// round to finish (a lease wait is bounded by LeaseWait, 200ms).
	stampedeGap = 700 * time.Millisecond
)

// TestStampedeAcrossProcesses is the stampede of DESIGN.md across
// processes: stampedeProcs OS processes sharing a SQLite file and the
// shared Redis each start stampedeGoroutines goroutines that miss one
// cached query at the same wall-clock moment. Each process counts the
// SELECTs that reached its database (below the plugin). Within a process
// the singleflight makes at most one; across processes the fill lease
// makes one process query while the others wait for its value, so the
// total should be 1. The assertion is at most one per process (a lease
// wait that times out under load is allowed, and costs a query, not a
// wrong result); the totals are logged.
func TestStampedeAcrossProcesses(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "" {
		t.Skip("in a child process")
	}
	redisURL := testenv.SharedRedis(t)
	prefix := testenv.TestPrefix(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "shared.db")
	seedSharedSQLite(t, dbPath)
	// Distinct values, so that a wrong row cannot pass for the right one.
	seed := openPlainSQLite(t, dbPath)
	for r := 1; r <= stampedeRounds; r++ {
		must(t, seed.Model(&Counter{ID: uint(r)}).Update("n", 1000+r).Error)
	}
	env := map[string]string{
		mpDirEnv: dir, mpDBEnv: dbPath, mpRedisEnv: redisURL, mpPrefixEnv: prefix, mpStoreEnv: "redis",
	}
	var ids, roles []string
	for i := range stampedeProcs {
		ids = append(ids, "p"+strconv.Itoa(i))
		roles = append(roles, "stampede")
	}
	kids := startChildren(t, "TestStampedeChild", env, ids, roles)
	releaseChildren(t, dir, kids, 200*time.Millisecond)
	waitChildren(t, kids, 60*time.Second)

	total := make([]int, stampedeRounds)
	var leases, waits, waitHits, timeouts float64
	for _, id := range ids {
		b, err := os.ReadFile(filepath.Join(dir, id+".rounds"))
		if err != nil {
			t.Fatal(err)
		}
		var per []int
		if err := json.Unmarshal(b, &per); err != nil {
			t.Fatal(err)
		}
		st := readChildStats(t, dir, id)
		leases += st.num("LeaseAcquired")
		waits += st.num("LeaseWaits")
		waitHits += st.num("LeaseWaitHits")
		timeouts += st.num("LeaseTimeouts")
		t.Logf("%s: SELECTs per round %v; hits %.0f, misses %.0f, shared %.0f, leases %.0f, lease waits %.0f (%.0f got the value, %.0f timed out); bypasses %v, refusals %v",
			id, per, st.num("Hits"), st.num("Misses"), st.num("Shared"), st.num("LeaseAcquired"), st.num("LeaseWaits"), st.num("LeaseWaitHits"), st.num("LeaseTimeouts"), st.Cache["Bypasses"], st.Cache["Refusals"])
		for r, n := range per {
			total[r] += n
		}
	}
	t.Logf("%d processes x %d goroutines missing one key at once: SELECTs reaching the database per round %v (leases taken %.0f, waits %.0f, waits served %.0f, timeouts %.0f)",
		stampedeProcs, stampedeGoroutines, total, leases, waits, waitHits, timeouts)
	for r, n := range total {
		if n < 1 || n > stampedeProcs {
			t.Errorf("round %d: %d SELECTs reached the database; want between 1 and %d (one per process at most)", r, n, stampedeProcs)
		}
	}
}

// TestStampedeChild is a child of TestStampedeAcrossProcesses; it does
// nothing unless started by it.
func TestStampedeChild(t *testing.T) {
	if os.Getenv(mpRoleEnv) != "stampede" {
		t.Skip("started by TestStampedeAcrossProcesses only")
	}
	db, cache, counter := openChild(t)
	// A running service has its Redis connections open (each new one runs
	// the server identity check): warm the pool with a query of another
	// shape, so round 0 measures the stampede, not cold connections.
	var warm []Counter
	for range 3 {
		if err := db.Scopes(gormcache.Cacheable()).Where("n < ?", 0).Find(&warm).Error; err != nil {
			t.Fatal(err)
		}
	}
	counter.mu.Lock()
	counter.keep = true
	counter.mu.Unlock()
	start := childBarrier(t)
	per := make([]int, stampedeRounds)
	for r := range stampedeRounds {
		row := r + 1
		time.Sleep(time.Until(start.Add(time.Duration(r) * stampedeGap)))
		counter.mu.Lock()
		counter.queries = nil
		counter.mu.Unlock()
		// Every goroutine is parked on go before any is released, so
		// that the misses come together.
		var ready, done sync.WaitGroup
		gate := make(chan struct{})
		errs := make(chan error, stampedeGoroutines)
		for range stampedeGoroutines {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				ready.Done()
				<-gate
				var c Counter
				if err := db.Scopes(gormcache.Cacheable()).First(&c, row).Error; err != nil {
					errs <- err
					return
				}
				if c.N != 1000+row {
					errs <- fmt.Errorf("row %d read n=%d, want %d", row, c.N, 1000+row)
				}
			}()
		}
		ready.Wait()
		close(gate)
		done.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		counter.mu.Lock()
		for _, q := range counter.queries {
			if strings.HasPrefix(strings.TrimSpace(strings.ToUpper(q)), "SELECT") && strings.Contains(q, "counters") {
				per[r]++
			}
		}
		counter.mu.Unlock()
	}
	b, err := json.Marshal(per)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(os.Getenv(mpDirEnv), os.Getenv(mpIDEnv)+".rounds"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	writeChildStats(t, cache)
}

// TestStampedeOneProcess is the in-process half of the stampede: on the
// Redis store, stampedeGoroutines goroutines of one process miss one
// cached query at once, a few rounds (a new key each). The singleflight
// must let one SELECT through per round.
func TestStampedeOneProcess(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d, storeKind{name: "redis", open: openRedisStore, shared: true}, querycache.Options{})
			// A bounded pool, as applications configure it: a burst that
			// gets past the cache queues here instead of opening hundreds
			// of PostgreSQL connections.
			sqlDB, err := e.db.DB()
			must(t, err)
			sqlDB.SetMaxOpenConns(20)
			for r := 1; r <= stampedeRounds; r++ {
				must(t, e.db.Create(&Counter{ID: uint(r), N: 1000 + r}).Error)
			}
			var per []int64
			for r := 1; r <= stampedeRounds; r++ {
				var ready, done sync.WaitGroup
				gate := make(chan struct{})
				for range stampedeGoroutines {
					ready.Add(1)
					done.Add(1)
					go func() {
						defer done.Done()
						ready.Done()
						<-gate
						var c Counter
						if err := e.db.Scopes(gormcache.Cacheable()).First(&c, r).Error; err != nil {
							t.Error(err)
						} else if c.N != 1000+r {
							t.Errorf("row %d read n=%d", r, c.N)
						}
					}()
				}
				ready.Wait()
				per = append(per, e.statements(func() {
					close(gate)
					done.Wait()
				}))
			}
			st := e.cache.Stats()
			t.Logf("%d goroutines missing one key at once: SELECTs per round %v; hits %d, misses %d, shared %d, errors %d, bypasses %v",
				stampedeGoroutines, per, st.Hits, st.Misses, st.Shared, st.Errors, st.Bypasses)
			for r, n := range per {
				if n != 1 {
					t.Errorf("round %d: %d SELECTs reached the database; want 1 (singleflight)", r, n)
				}
			}
		})
	}
}
