package gormcache_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/dbresolver"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type replicaItem struct {
	ID   int
	Name string
}

func newReplicaCache(t *testing.T) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{
		Store:      querycache.NewMemoryStore(querycache.MemoryOptions{}),
		DefaultTTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// useInOrder registers dbresolver and the plugin in the order named.
func useInOrder(t *testing.T, db *gorm.DB, order string, resolver, plugin gorm.Plugin) {
	t.Helper()
	uses := []gorm.Plugin{resolver, plugin}
	if order == "gormcache first" {
		uses = []gorm.Plugin{plugin, resolver}
	}
	for _, u := range uses {
		if err := db.Use(u); err != nil {
			t.Fatalf("db.Use(%s): %v", u.Name(), err)
		}
	}
}

func readItem(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var it replicaItem
	if err := db.Scopes(gormcache.Cacheable()).First(&it, 1).Error; err != nil {
		t.Fatal(err)
	}
	return it.Name
}

// openReplicated opens a new schema of r's primary holding rows (created
// with GORM), waits until the standby has replayed them, and registers a
// plugin on a fresh memory cache together with dbresolver reading from the
// standby, in order (useInOrder). configure, when not nil, sees the
// plugin before it is registered.
func openReplicated(t *testing.T, r *testenv.PGReplica, order string, rows any, configure func(*gormcache.Plugin)) (*gorm.DB, *gormcache.Plugin) {
	t.Helper()
	pdsn, sdsn := r.Schema(t)
	db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&replicaItem{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(rows).Error; err != nil {
		t.Fatal(err)
	}
	r.WaitReplayed(t)
	plugin := gormcache.New(newReplicaCache(t))
	if configure != nil {
		configure(plugin)
	}
	useInOrder(t, db, order, dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), plugin)
	return db, plugin
}

// TestReplicaPostgres is the replica test: GORM with dbresolver
// (reads to a real streaming standby whose replay is paused, so it
// certainly lags), a cached query, a write through GORM: the read after the
// write neither returns nor caches the old row. Once replay resumes, the
// query is filled from the standby again and served from the cache. Both
// registration orders; and with either half of the fence broken the old
// row is served (the test catches each).
func TestReplicaPostgres(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	writes := map[string]func(db *gorm.DB, name string) error{
		"update": func(db *gorm.DB, name string) error {
			return db.Model(&replicaItem{ID: 1}).Update("name", name).Error
		},
		"transaction": func(db *gorm.DB, name string) error {
			return db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&replicaItem{ID: 1}).Update("name", name).Error
			})
		},
		"exec": func(db *gorm.DB, name string) error {
			return db.Exec("UPDATE replica_items SET name = ? WHERE id = 1", name).Error
		},
	}
	for _, tc := range []struct{ order, write, broken string }{
		{"dbresolver first", "update", ""},
		{"gormcache first", "update", ""},
		{"dbresolver first", "transaction", ""},
		{"gormcache first", "exec", ""},
		{"dbresolver first", "update", "replica_fence"},
		{"dbresolver first", "update", "replica_route"},
	} {
		name := tc.order + "/" + tc.write
		if tc.broken != "" {
			name += "/broken " + tc.broken
		}
		write := writes[tc.write]
		t.Run(name, func(t *testing.T) {
			db, plugin := openReplicated(t, r, tc.order, &replicaItem{ID: 1, Name: "old"}, func(p *gormcache.Plugin) {
				if tc.broken != "" {
					gormcache.BreakForTest(p, tc.broken)
				}
			})
			cache := plugin.Cache()

			if got := readItem(t, db); got != "old" {
				t.Fatalf("first read: %q", got)
			}
			if got, hits := readItem(t, db), cache.Stats().Hits; got != "old" || hits != 1 {
				t.Fatalf("second read: %q, %d hits", got, hits)
			}
			if st := plugin.ReplicaStats(); tc.broken == "" && (st.ReplicaFills != 1 || st.Mode != "wal") {
				t.Fatalf("the first fill did not come from the standby: %+v", st)
			}

			r.PauseReplay(t)
			if err := write(db, "new"); err != nil {
				t.Fatal(err)
			}
			stale := 0
			if got := readItem(t, db); got != "new" {
				stale++
				if tc.broken == "" {
					t.Errorf("the read after the write returned %q from the lagging standby", got)
				}
			}
			if got := readItem(t, db); got != "new" {
				stale++
				if tc.broken == "" {
					t.Errorf("the second read after the write returned %q: the old row was cached", got)
				}
			}
			var onStandby string
			if err := r.Standby().QueryRow("SELECT name FROM " + schemaOf(db.Dialector.(*postgres.Dialector).DSN) + ".replica_items WHERE id = 1").Scan(&onStandby); err != nil || onStandby != "old" {
				t.Fatalf("the paused standby reads %q (%v): the lag is not certain", onStandby, err)
			}
			st := plugin.ReplicaStats()
			t.Logf("after the write: %+v", st)
			if tc.broken != "" {
				if stale == 0 {
					t.Errorf("with %s broken the old row was not served: the test does not catch its absence", tc.broken)
				}
				r.ResumeReplay(t)
				return
			}
			if st.PrimaryFills != 1 {
				t.Errorf("the fill after the write was not routed to the primary: %+v", st)
			}

			r.ResumeReplay(t)
			r.WaitReplayed(t)
			if got := readItem(t, db); got != "new" {
				t.Errorf("after replay resumed: %q", got)
			}
			// Caching from the standby works again: a write it has replayed
			// is filled from it.
			if err := write(db, "newer"); err != nil {
				t.Fatal(err)
			}
			r.WaitReplayed(t)
			before := plugin.ReplicaStats()
			if got := readItem(t, db); got != "newer" {
				t.Errorf("after the standby replayed the second write: %q", got)
			}
			hits := cache.Stats().Hits
			if got := readItem(t, db); got != "newer" || cache.Stats().Hits != hits+1 {
				t.Errorf("the refill was not served from the cache: %q", got)
			}
			after := plugin.ReplicaStats()
			if after.ReplicaFills != before.ReplicaFills+1 || after.PrimaryFills != before.PrimaryFills {
				t.Errorf("the fill after the standby caught up did not come from it: before %+v after %+v", before, after)
			}
			t.Logf("end: %+v", after)
		})
	}
}

func schemaOf(dsn string) string {
	_, s, _ := strings.Cut(dsn, "search_path=")
	return s
}

// TestReplicaSQLiteWindow is the variant without WAL positions: two SQLite
// files as dbresolver's source and replica. Nothing copies one to the
// other, so the replica lags forever: within ReplicaWindow of a write the
// tables it wrote are filled from the source; past the window the replica
// is used again, and (the documented limit) its old row can be cached.
func TestReplicaSQLiteWindow(t *testing.T) {
	for _, order := range []string{"dbresolver first", "gormcache first"} {
		t.Run(order, func(t *testing.T) {
			dir := t.TempDir()
			src, rep := filepath.Join(dir, "source.db"), filepath.Join(dir, "replica.db")
			open := func(window time.Duration) (*gorm.DB, *gormcache.Plugin, *querycache.Cache) {
				db, err := gorm.Open(sqlite.Open(src), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				cache := newReplicaCache(t)
				plugin := gormcache.New(cache, gormcache.ReplicaWindow(window))
				useInOrder(t, db, order, dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{sqlite.Open(rep)}}), plugin)
				t.Cleanup(func() {
					if d, err := db.DB(); err == nil {
						d.Close()
					}
				})
				return db, plugin, cache
			}
			seed, err := gorm.Open(sqlite.Open(src), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				t.Fatal(err)
			}
			if err := seed.AutoMigrate(&replicaItem{}); err != nil {
				t.Fatal(err)
			}
			seed.Create(&replicaItem{ID: 1, Name: "old"})
			if d, err := seed.DB(); err == nil {
				d.Close()
			}
			// The replica: a copy of the source as it is now.
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rep, b, 0o644); err != nil {
				t.Fatal(err)
			}

			// A window far longer than the test: every read after the
			// write is inside it.
			db, plugin, _ := open(time.Hour)
			if got := readItem(t, db); got != "old" {
				t.Fatalf("first read: %q", got)
			}
			if err := db.Model(&replicaItem{ID: 1}).Update("name", "new").Error; err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if got := readItem(t, db); got != "new" {
					t.Fatalf("read %d after the write: %q from the replica", i, got)
				}
			}
			if st := plugin.ReplicaStats(); st.Mode != "window" || st.ReplicaFills != 0 {
				t.Errorf("stats: %+v", st)
			}

			// A short window: once it has passed, fills use the replica
			// again, and a replica lagging past it is served: the bound the
			// user chose.
			db2, plugin2, cache2 := open(20 * time.Millisecond)
			if got := readItem(t, db2); got != "new" {
				t.Fatalf("read inside the window after activation: %q", got)
			}
			if err := db2.Model(&replicaItem{ID: 1}).Update("name", "newer").Error; err != nil {
				t.Fatal(err)
			}
			time.Sleep(40 * time.Millisecond)
			if got := readItem(t, db2); got != "old" {
				t.Errorf("past the window the fill should come from the (stale) replica, got %q", got)
			}
			if st := plugin2.ReplicaStats(); st.ReplicaFills != 1 {
				t.Errorf("stats past the window: %+v", st)
			}
			_ = cache2
		})
	}
}

// TestReplicaOptions: misconfiguration is an error that says how to fix it.
func TestReplicaOptions(t *testing.T) {
	cache := newReplicaCache(t)
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "a.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Use(gormcache.New(cache, gormcache.ReplicaWindow(0))); err == nil || !strings.Contains(err.Error(), "positive") {
		t.Errorf("ReplicaWindow(0): %v", err)
	}
	if err := db.Use(gormcache.New(cache, gormcache.ReplicaCheckPrimary())); err == nil || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Errorf("ReplicaCheckPrimary on SQLite: %v", err)
	}
	// A second handle opened with a copy of the config holding the plugin
	// would write without invalidating: refused.
	if err := db.Use(gormcache.New(cache)); err != nil {
		t.Fatal(err)
	}
	cfg := *db.Config
	if _, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "b.db")), &cfg); err == nil || !strings.Contains(err.Error(), "fresh gorm.Config") {
		t.Errorf("gorm.Open with a copied config: %v", err)
	}
}

// TestReplicaOtherWriter: a write made through another plugin sharing the
// store (another process, or the PostgreSQL listener reporting an outside
// write) bumps the versions without a fence in this plugin. By default a
// fill here can then store the standby's old row under the new versions
// (the documented limit, shown here); with ReplicaCheckPrimary the fill
// compares the standby with the primary's position and goes to the
// primary.
func TestReplicaOtherWriter(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	for _, check := range []bool{false, true} {
		name := "default"
		if check {
			name = "ReplicaCheckPrimary"
		}
		t.Run(name, func(t *testing.T) {
			pdsn, sdsn := r.Schema(t)
			shared := newReplicaCache(t)
			open := func(opts ...gormcache.Option) (*gorm.DB, *gormcache.Plugin) {
				db, err := gorm.Open(postgres.Open(pdsn), &gorm.Config{Logger: logger.Discard})
				if err != nil {
					t.Fatal(err)
				}
				plugin := gormcache.New(shared, opts...)
				useInOrder(t, db, "dbresolver first", dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(sdsn)}}), plugin)
				return db, plugin
			}
			var opts []gormcache.Option
			if check {
				opts = append(opts, gormcache.ReplicaCheckPrimary())
			}
			a, pa := open(opts...)
			b, _ := open()
			if err := a.AutoMigrate(&replicaItem{}); err != nil {
				t.Fatal(err)
			}
			if err := a.Create(&replicaItem{ID: 1, Name: "old"}).Error; err != nil {
				t.Fatal(err)
			}
			r.WaitReplayed(t)
			if got := readItem(t, a); got != "old" {
				t.Fatalf("first read: %q", got)
			}
			r.PauseReplay(t)
			defer r.ResumeReplay(t)
			if err := b.Model(&replicaItem{ID: 1}).Update("name", "new").Error; err != nil {
				t.Fatal(err)
			}
			got := readItem(t, a)
			t.Logf("A's read after B's write: %q; %+v", got, pa.ReplicaStats())
			if check && got != "new" {
				t.Errorf("with ReplicaCheckPrimary the read after another writer's write returned %q", got)
			}
			if !check && got != "old" {
				t.Logf("the documented limit did not show (the standby was not behind?)")
			}
		})
	}
}

// BenchmarkReplicaWrite measures what the fence costs a write once a
// replica read has switched it on: one pg_current_wal_insert_lsn() on the
// primary. The "replica" is the primary itself here (found not in
// recovery), which is enough to switch the fence on.
func BenchmarkReplicaWrite(b *testing.B) {
	for _, fence := range []bool{false, true} {
		name := "no replica"
		if fence {
			name = "fence on"
		}
		b.Run(name, func(b *testing.B) {
			dsn := testenv.PostgresSchema(b)
			db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
			if err != nil {
				b.Fatal(err)
			}
			if err := db.AutoMigrate(&replicaItem{}); err != nil {
				b.Fatal(err)
			}
			db.Create(&replicaItem{ID: 1, Name: "x"})
			c, _ := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
			defer c.Close()
			plugin := gormcache.New(c)
			if fence {
				if err := db.Use(dbresolver.Register(dbresolver.Config{Replicas: []gorm.Dialector{postgres.Open(dsn)}})); err != nil {
					b.Fatal(err)
				}
			}
			if err := db.Use(plugin); err != nil {
				b.Fatal(err)
			}
			var it replicaItem
			db.Scopes(gormcache.Cacheable()).First(&it, 1) // switches the fence on
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := db.Model(&replicaItem{ID: 1}).Update("name", strconv.Itoa(i)).Error; err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if st := plugin.ReplicaStats(); fence != (st.Mode == "wal") {
				b.Fatalf("fence %v but stats %+v", fence, st)
			}
		})
	}
}

// TestReplicaConcurrent: readers loop on a cached query while a writer
// updates the row, with the standby's replay paused and resumed between
// writes. A read that starts after a write returned never sees an older
// value (whether it hits, fills from the standby, or is sent to the
// primary). Run with -race.
func TestReplicaConcurrent(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	db, plugin := openReplicated(t, r, "dbresolver first", &replicaItem{ID: 1, Name: "0"}, nil)

	var committed atomic.Int64 // the last value whose write has returned
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stale, reads atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := committed.Load()
				var it replicaItem
				if err := db.Scopes(gormcache.Cacheable()).First(&it, 1).Error; err != nil {
					t.Error(err)
					return
				}
				reads.Add(1)
				if v, _ := strconv.ParseInt(it.Name, 10, 64); v < floor {
					stale.Add(1)
					t.Errorf("read %d after write %d had returned", v, floor)
				}
			}
		}()
	}
	for i := int64(1); i <= 30; i++ {
		paused := i%3 != 0
		if paused {
			r.PauseReplay(t)
		}
		if err := db.Model(&replicaItem{ID: 1}).Update("name", strconv.FormatInt(i, 10)).Error; err != nil {
			t.Fatal(err)
		}
		committed.Store(i)
		time.Sleep(5 * time.Millisecond) // let readers run against the paused standby
		if paused {
			r.ResumeReplay(t)
		}
		if i%5 == 0 {
			r.WaitReplayed(t) // readers fill from the standby again
			time.Sleep(5 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	st := plugin.ReplicaStats()
	t.Logf("%d reads, %d stale; %+v; cache %d hits", reads.Load(), stale.Load(), st, plugin.Cache().Stats().Hits)
	if st.ReplicaFills == 0 || st.PrimaryFills == 0 {
		t.Errorf("both paths should have been taken: %+v", st)
	}
}

// TestReplicaBusyPool: a raw write whose rows are still open holds the
// primary pool's only connection when its invalidation is applied; the
// fence does not wait for a connection (it would wait for the caller's
// own), it fences the table until a later position is read.
func TestReplicaBusyPool(t *testing.T) {
	r := testenv.StartPostgresReplica(t)
	db, plugin := openReplicated(t, r, "dbresolver first", &replicaItem{ID: 1, Name: "old"}, nil)
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	if got := readItem(t, db); got != "old" {
		t.Fatalf("first read: %q", got)
	}
	r.PauseReplay(t)
	defer r.ResumeReplay(t)
	before := plugin.ReplicaStats()
	rows, err := db.Raw("UPDATE replica_items SET name = 'new' WHERE id = 1 RETURNING id").Rows()
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	rows.Close()
	if after := plugin.ReplicaStats(); after.FenceReads != before.FenceReads {
		t.Errorf("the fence read a position with the pool exhausted: %+v -> %+v", before, after)
	}
	if got := readItem(t, db); got != "new" {
		t.Errorf("read after the raw write: %q", got)
	}
	// The unknown fence is resolved by the next fill's position read; once
	// the standby has replayed the write, fills use it again.
	r.ResumeReplay(t)
	r.WaitReplayed(t)
	if err := db.Exec("SELECT 1").Error; err != nil { // nothing to fence
		t.Fatal(err)
	}
	mid := plugin.ReplicaStats()
	var n int64
	if err := db.Scopes(gormcache.Cacheable()).Model(&replicaItem{}).Where("name = ?", "new").Count(&n).Error; err != nil || n != 1 {
		t.Fatalf("count: %d, %v", n, err)
	}
	if end := plugin.ReplicaStats(); end.ReplicaFills != mid.ReplicaFills+1 {
		t.Errorf("the table stayed fenced after the standby caught up: %+v -> %+v", mid, end)
	}
	t.Logf("%+v", plugin.ReplicaStats())
}
