package gormcache_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func TestUnmarkedQueriesNeverTouchTheCache(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		before := e.cache.Stats()
		for i := 0; i < 3; i++ {
			if n := e.statements(func() { must(t, e.db.First(&Post{}, s.p1.ID).Error) }); n == 0 {
				t.Fatal("an unmarked query was served without the database")
			}
		}
		after := e.cache.Stats()
		if after.Hits != before.Hits || after.Misses != before.Misses || after.Fills != before.Fills {
			t.Fatalf("unmarked queries touched the cache: %+v -> %+v", before, after)
		}
	})
}

func TestCacheModelsOption(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		e.mustBeCached(t, "listed model, unmarked query", func() error { return e.db.First(&Post{}, s.p1.ID).Error })
		if n := e.statements(func() { must(t, e.db.Scopes(gormcache.NoCache()).First(&Post{}, s.p1.ID).Error) }); n == 0 {
			t.Fatal("NoCache did not opt a listed model out")
		}
		must(t, e.db.First(&Author{}, s.author.ID).Error)
		if n := e.statements(func() { must(t, e.db.First(&Author{}, s.author.ID).Error) }); n == 0 {
			t.Fatal("an unlisted model was cached")
		}
		must(t, e.db.Model(&Post{ID: s.p1.ID}).Update("title", "changed").Error)
		var p Post
		must(t, e.db.First(&p, s.p1.ID).Error)
		if p.Title != "changed" {
			t.Fatalf("listed model stale after update: %q", p.Title)
		}
	}, gormcache.CacheModels(&Post{}))
}

func TestContextMarkReachesPreloads(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		ctx := gormcache.WithCache(context.Background(), time.Minute)
		e.mustBeCached(t, "preload via context", func() error {
			var a Author
			return e.db.WithContext(ctx).Preload("Posts").Preload("Languages").First(&a, s.author.ID).Error
		})
		off := gormcache.WithoutCache(context.Background())
		e.mustBeCached(t, "author", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Author{}, s.author.ID).Error })
		if n := e.statements(func() { must(t, e.db.WithContext(off).First(&Author{}, s.author.ID).Error) }); n == 0 {
			t.Fatal("WithoutCache was served from the cache")
		}
		// An opt-out wins over a later mark.
		if n := e.statements(func() {
			must(t, e.db.WithContext(off).Scopes(gormcache.Cacheable()).First(&Author{}, s.author.ID).Error)
		}); n == 0 {
			t.Fatal("Cacheable overrode WithoutCache")
		}
		if n := e.statements(func() {
			must(t, e.db.WithContext(gormcache.WithCache(off, 0)).First(&Author{}, s.author.ID).Error)
		}); n == 0 {
			t.Fatal("WithCache overrode WithoutCache")
		}
		if n := e.statements(func() {
			must(t, e.db.Scopes(gormcache.NoCache(), gormcache.Cacheable()).First(&Author{}, s.author.ID).Error)
		}); n == 0 {
			t.Fatal("Cacheable overrode NoCache")
		}
	})
}

func TestLookupByPrimaryKeyDependsOnItsRowOnly(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		e.mustBeCached(t, "p1", func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error })
		e.mustBeCached(t, "list", func() error { return e.db.Scopes(cached).Find(&[]Post{}).Error })
		must(t, e.db.Model(&Post{ID: s.p2.ID}).Update("title", "other row").Error)
		if n := e.statements(func() { must(t, e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error) }); n != 0 {
			t.Error("a write to another row invalidated the lookup by primary key")
		}
		if n := e.statements(func() { must(t, e.db.Scopes(cached).Find(&[]Post{}).Error) }); n == 0 {
			t.Error("a write to the table did not invalidate the list query")
		}
		// Different selections of one row never share an entry.
		var full, titleOnly Post
		must(t, e.db.Scopes(cached).First(&full, s.p1.ID).Error)
		must(t, e.db.Scopes(cached).Select("id").First(&titleOnly, s.p1.ID).Error)
		if titleOnly.Title != "" || full.Title == "" {
			t.Errorf("Select(id) and the full row shared an entry: %q / %q", titleOnly.Title, full.Title)
		}
	})
}

func TestCompositePrimaryKey(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		must(t, e.db.Create(&[]Pair{{A: 1, B: "x", V: 1}, {A: 1, B: "y", V: 2}}).Error)
		cached := gormcache.Cacheable()
		get := func() Pair {
			var p Pair
			must(t, e.db.Scopes(cached).Where(&Pair{A: 1, B: "x"}).First(&p).Error)
			return p
		}
		e.mustBeCached(t, "pair", func() error { get(); return nil })
		must(t, e.db.Model(&Pair{A: 1, B: "y"}).Update("v", 20).Error)
		if n := e.statements(func() { get() }); n != 0 {
			t.Error("updating another pair invalidated this one")
		}
		must(t, e.db.Model(&Pair{A: 1, B: "x"}).Update("v", 10).Error)
		if p := get(); p.V != 10 {
			t.Fatalf("pair stale after update: %+v", p)
		}
	})
}

func TestTwoDatabasesNeverShareEntries(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer cache.Close()
	open := func(name string) *gorm.DB {
		db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), name+".db")), &gorm.Config{Logger: logger.Discard})
		must(t, err)
		must(t, db.Use(gormcache.New(cache)))
		must(t, db.AutoMigrate(&Post{}))
		must(t, db.Create(&Post{ID: 1, Title: name}).Error)
		return db
	}
	a, b := open("alpha"), open("beta")
	for i := 0; i < 2; i++ {
		var pa, pb Post
		must(t, a.Scopes(gormcache.Cacheable()).First(&pa, 1).Error)
		must(t, b.Scopes(gormcache.Cacheable()).First(&pb, 1).Error)
		if pa.Title != "alpha" || pb.Title != "beta" {
			t.Fatalf("databases shared an entry: %q, %q", pa.Title, pb.Title)
		}
	}
}

func TestRefusals(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		refused := func(reason string, q func(db *gorm.DB) error) {
			t.Helper()
			before := e.cache.Stats().Refusals[reason]
			for i := 0; i < 2; i++ {
				if n := e.statements(func() { must(t, q(e.db.Scopes(cached))) }); n == 0 {
					t.Errorf("%s: served from the cache", reason)
				}
			}
			if got := e.cache.Stats().Refusals[reason] - before; got != 2 {
				t.Errorf("%s: counted %d refusals; want 2", reason, got)
			}
		}
		refused("nondeterministic", func(db *gorm.DB) error {
			return db.Where("created_at < CURRENT_TIMESTAMP").Find(&[]Post{}).Error
		})
		refused("nondeterministic", func(db *gorm.DB) error { return db.Order("random()").Find(&[]Post{}).Error })
		if e.dialect == "postgres" {
			refused("locking", func(db *gorm.DB) error {
				return db.Clauses(clause.Locking{Strength: "UPDATE"}).Find(&[]Post{}).Error
			})
			refused("nondeterministic", func(db *gorm.DB) error { return db.Where("created_at < NOW()").Find(&[]Post{}).Error })
			refused("undetermined_tables", func(db *gorm.DB) error {
				var n []int
				return db.Raw("SELECT g FROM generate_series(1, 3) AS g").Scan(&n).Error
			})
		} else {
			refused("nondeterministic", func(db *gorm.DB) error {
				return db.Where("created_at < datetime('now')").Find(&[]Post{}).Error
			})
			refused("undetermined_tables", func(db *gorm.DB) error {
				var n []int
				return db.Raw("SELECT value FROM json_each('[1,2,3]')").Scan(&n).Error
			})
		}
		// Forcing a non-deterministic statement caches it.
		force := gormcache.CacheWith(gormcache.CacheOptions{AllowNondeterministic: true})
		e.mustBeCached(t, "forced", func() error {
			return e.db.Scopes(force).Where("created_at < CURRENT_TIMESTAMP").Find(&[]Post{}).Error
		})
		// Declaring the tables of an undetermined statement caches it, and
		// writes to a declared table invalidate it.
		declared := gormcache.CacheWith(gormcache.CacheOptions{Tables: []string{"posts"}})
		fn := "SELECT count(*) FROM json_each('[1,2]') WHERE (SELECT count(*) FROM posts) > ?"
		if e.dialect == "postgres" {
			fn = "SELECT count(*) FROM unnest(ARRAY[1, 2]) WHERE (SELECT count(*) FROM posts) > ?"
		}
		count := func() int64 {
			var n int64
			must(t, e.db.Scopes(declared).Raw(fn, 2).Scan(&n).Error)
			return n
		}
		e.mustBeCached(t, "declared tables", func() error { count(); return nil })
		if got := count(); got != 0 {
			t.Fatalf("declared: %d", got)
		}
		must(t, e.db.Create(&Post{AuthorID: s.author.ID, Title: "third"}).Error)
		if got := count(); got != 2 {
			t.Fatalf("declared dependency not invalidated: %d", got)
		}
	})
}

func TestTooLargeResultsAreNotStored(t *testing.T) {
	for _, d := range databases[:1] {
		e := newEnv(t, d, stores[0], querycache.Options{MaxEntryBytes: 256})
		s := seedData(t, e.db)
		for i := 0; i < 2; i++ {
			var ps []Post
			if n := e.statements(func() { must(t, e.db.Scopes(gormcache.Cacheable()).Find(&ps).Error) }); n == 0 {
				t.Fatal("a result over MaxEntryBytes was served from the cache")
			}
			if len(ps) != 2 || ps[0].Title != s.p1.Title {
				t.Fatalf("result altered: %+v", ps)
			}
		}
		if e.cache.Stats().Refusals["too_large"] != 2 {
			t.Fatalf("refusals: %v", e.cache.Stats().Refusals)
		}
	}
}

func TestStampedeMakesOneQuery(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		const n = 16
		release := make(chan struct{})
		var once sync.Once
		e.counter.setHook(func(q string) error {
			if strings.Contains(q, "posts") && strings.HasPrefix(q, "SELECT") {
				once.Do(func() { <-release })
			}
			return nil
		})
		before := e.counter.n.Load()
		var wg sync.WaitGroup
		results := make([]Post, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				must(t, e.db.Scopes(gormcache.Cacheable()).First(&results[i], s.p1.ID).Error)
			}(i)
		}
		waitUntil(t, func() bool { return e.cache.Stats().Misses >= n })
		graceForJoin()
		close(release)
		wg.Wait()
		e.counter.setHook(nil)
		if got := e.counter.n.Load() - before; got != 1 {
			t.Fatalf("%d concurrent misses made %d queries; want 1", n, got)
		}
		for _, r := range results {
			if r.Title != s.p1.Title {
				t.Fatalf("a caller got %+v", r)
			}
		}
	})
}

func TestFailedFillIsNotShared(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		const n = 8
		release := make(chan struct{})
		var once sync.Once
		boom := errors.New("injected failure")
		e.counter.setHook(func(q string) error {
			var fail bool
			once.Do(func() { <-release; fail = true })
			if fail {
				return boom
			}
			return nil
		})
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				var p Post
				errs[i] = e.db.Scopes(gormcache.Cacheable()).First(&p, s.p1.ID).Error
				if errs[i] == nil && p.Title != s.p1.Title {
					t.Errorf("caller %d got %+v", i, p)
				}
			}(i)
		}
		waitUntil(t, func() bool { return e.cache.Stats().Misses >= n })
		graceForJoin()
		close(release)
		wg.Wait()
		e.counter.setHook(nil)
		failed := 0
		for _, err := range errs {
			if err != nil {
				if !errors.Is(err, boom) {
					t.Errorf("unexpected error %v", err)
				}
				failed++
			}
		}
		if failed != 1 {
			t.Fatalf("%d callers failed; only the one whose query failed should", failed)
		}
	})
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

// graceForJoin lets goroutines that have counted their miss reach the
// singleflight call; it is a barrier, not a timing assertion.
func graceForJoin() { time.Sleep(100 * time.Millisecond) }

func TestHostileBoundValues(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		hostile := []string{"' OR 1=1 --", "a\\x00b", "042", strings.Repeat("x", 10000), "😀; DROP TABLE posts", "%", "_", ""}
		for i, h := range hostile {
			must(t, e.db.Create(&Post{ID: uint(100 + i), Title: h}).Error)
		}
		cached := gormcache.Cacheable()
		for i, h := range hostile {
			var ps []Post
			must(t, e.db.Scopes(cached).Where("title = ?", h).Find(&ps).Error)
			must(t, e.db.Scopes(cached).Where("title = ?", h).Find(&ps).Error)
			if len(ps) != 1 || ps[0].ID != uint(100+i) {
				t.Fatalf("title %q: got %d rows", h, len(ps))
			}
		}
		// A key given as text that the database reads as a number.
		var p Post
		must(t, e.db.Scopes(cached).First(&p, "100").Error)
		if e.dialect == "sqlite" {
			must(t, e.db.Scopes(cached).Where("id = ?", "0100").First(&p).Error)
		}
		must(t, e.db.Model(&Post{ID: 100}).Update("title", "changed").Error)
		must(t, e.db.Scopes(cached).First(&p, "100").Error)
		if p.Title != "changed" {
			t.Fatalf("lookup by textual key stale: %q", p.Title)
		}
		if e.dialect == "sqlite" {
			p = Post{}
			must(t, e.db.Scopes(cached).Where("id = ?", "0100").First(&p).Error)
			if p.Title != "changed" {
				t.Fatalf("lookup by non-canonical key stale: %q", p.Title)
			}
		}
	})
}

func TestManualInvalidation(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		s := seedData(t, e.db)
		cached := gormcache.Cacheable()
		ctx := context.Background()
		lookup := func() error { return e.db.Scopes(cached).First(&Post{}, s.p1.ID).Error }
		for _, inv := range []func() error{
			func() error { return e.cache.InvalidateTables(ctx, "posts") },
			func() error { return e.cache.InvalidateObject(ctx, "posts", s.p1.ID) },
			func() error { return e.cache.InvalidateAll(ctx) },
		} {
			e.mustBeCached(t, "lookup", lookup)
			must(t, inv())
			if n := e.statements(func() { must(t, lookup()) }); n == 0 {
				t.Fatal("manual invalidation did not invalidate")
			}
		}
		st := e.cache.Stats()
		if st.Tables["posts"].Hits == 0 || st.Tables["posts"].Misses == 0 || st.Tables["posts"].Invalidations == 0 {
			t.Fatalf("per-table stats not counted: %+v", st.Tables["posts"])
		}
	})
}

func TestDebugLogging(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	h := slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) }), &slog.HandlerOptions{Level: slog.LevelDebug})
	e := newEnv(t, databases[0], stores[0], querycache.Options{Logger: slog.New(h)})
	s := seedData(t, e.db)
	e.mustBeCached(t, "p1", func() error { return e.db.Scopes(gormcache.Cacheable()).First(&Post{}, s.p1.ID).Error })
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), "gormcache miss") || !strings.Contains(buf.String(), "gormcache hit") { // the plugin's line (the engine's is not written for it)
		t.Fatalf("debug log lacks hit/miss lines:\n%s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestConfigurationErrors(t *testing.T) {
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "x.db")), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	if err := db.Use(gormcache.New(nil)); err == nil || !strings.Contains(err.Error(), "querycache.New") {
		t.Fatalf("nil cache: %v", err)
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	if err := db.Use(gormcache.New(cache, gormcache.CacheModels(42))); err == nil {
		t.Fatal("CacheModels(42) accepted")
	}
	if _, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: -1})}); err == nil || !strings.Contains(err.Error(), "MaxBytes") {
		t.Fatalf("negative MaxBytes: %v", err)
	}
}
