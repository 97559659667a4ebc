package gormcache_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"path/filepath"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func h47Open(t *testing.T) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(t.TempDir(), "t.db")+"?_busy_timeout=10000"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	must(t, db.AutoMigrate(models...))
	return db
}

func h47Cache(t *testing.T) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 32 << 20})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Negative or NaN decline thresholds are silently replaced by defaults
// (decline.go withDefaults), while a negative TTL or size is an error.
func TestHostile47DeclineNegativeOptions(t *testing.T) {
	for name, o := range map[string]gormcache.DeclineOptions{
		"MinSamples-1":  {MinSamples: -1},
		"DeclineAt-0.5": {DeclineAt: -0.5},
		"ResumeAt-0.1":  {ResumeAt: -0.1},
		"ProbeEvery-3":  {ProbeEvery: -3},
		"DeclineAtNaN":  {DeclineAt: math.NaN()},
	} {
		t.Run(name, func(t *testing.T) {
			db := h47Open(t)
			err := db.Use(gormcache.New(h47Cache(t), gormcache.DeclineUnprofitable(o)))
			if err == nil {
				t.Errorf("db.Use accepted DeclineOptions%+v without an error (silently replaced by a default)", o)
			}
		})
	}
}

// A DeclineAt below the default ResumeAt, alone, is accepted: ResumeAt's
// default follows it (5/8 of it); it was refused for the ResumeAt the user
// never set (a hostile run, issue 8's fortieth session). Both given, in
// the wrong order, are still an error.
func TestDeclineLowDeclineAtAlone(t *testing.T) {
	if err := h47Open(t).Use(gormcache.New(h47Cache(t), gormcache.DeclineUnprofitable(gormcache.DeclineOptions{DeclineAt: 0.4}))); err != nil {
		t.Errorf("DeclineAt 0.4 alone: %v", err)
	}
	err := h47Open(t).Use(gormcache.New(h47Cache(t), gormcache.DeclineUnprofitable(gormcache.DeclineOptions{DeclineAt: 0.4, ResumeAt: 0.5})))
	if err == nil || !strings.Contains(err.Error(), "ResumeAt (0.5) must be below DeclineAt (0.4)") {
		t.Errorf("DeclineAt 0.4, ResumeAt 0.5: %v", err)
	}
}

// fakeCachesPlugin replaces gorm:query like go-gorm/caches.
type fakeCachesPlugin struct{}

func (fakeCachesPlugin) Name() string { return "fake-caches" }
func (fakeCachesPlugin) Initialize(db *gorm.DB) error {
	return db.Callback().Query().Replace("gorm:query", func(db *gorm.DB) {})
}

// A db.Use refused because another query cache is on the *gorm.DB leaves
// the plugin value claimed: using it on a clean *gorm.DB then says it is
// "already registered on another *gorm.DB", which it is not.
func TestHostile47FailedUseThenReuse(t *testing.T) {
	cache := h47Cache(t)
	p := gormcache.New(cache)
	db1 := h47Open(t)
	must(t, db1.Use(fakeCachesPlugin{}))
	err := db1.Use(p)
	if !errors.Is(err, gormcache.ErrQueryCallbackReplaced) {
		t.Fatalf("db1.Use: %v, want ErrQueryCallbackReplaced", err)
	}
	db2 := h47Open(t)
	if err := db2.Use(p); err != nil {
		t.Errorf("the plugin was refused on db1 and is registered nowhere, yet db2.Use says: %v", err)
	}
	// And a model GORM cannot parse: same.
	p2 := gormcache.New(cache, gormcache.CacheModels(42))
	db3 := h47Open(t)
	if err := db3.Use(p2); err == nil {
		t.Fatal("CacheModels(42) accepted")
	}
	if err := db3.Use(p2); err != nil && strings.Contains(err.Error(), "already registered on another") {
		t.Errorf("second db.Use of a plugin refused on the same *gorm.DB: wrong error %q", err)
	}
}

// FromCache must agree with whether the database was asked.
func TestHostile47FromCacheAgreesWithDatabase(t *testing.T) {
	for _, opts := range [][]gormcache.Option{nil, {gormcache.ReadsInTransactions()}} {
		e := newEnv(t, databases[0], memoryStore, querycache.Options{}, opts...)
		must(t, e.db.Create(&Author{ID: 1, Name: "a", Posts: []Post{{Title: "p1"}, {Title: "p2"}}}).Error)
		c := gormcache.Cacheable()
		check := func(name string, run func() *gorm.DB) {
			t.Helper()
			for i := 0; i < 3; i++ {
				var tx *gorm.DB
				n := e.statements(func() { tx = run() })
				if tx == nil {
					continue
				}
				fc := gormcache.FromCache(tx)
				if fc && n != 0 {
					t.Errorf("%s #%d: FromCache true but %d statements reached the database (result %+v, err %v)", name, i, n, gormcache.CacheResult(tx), tx.Error)
				}
				if !fc && n == 0 && i > 0 {
					t.Errorf("%s #%d: FromCache false but no statement reached the database (result %+v)", name, i, gormcache.CacheResult(tx))
				}
			}
		}
		check("First", func() *gorm.DB { var a Author; return e.db.Scopes(c).First(&a, 1) })
		check("FirstNotFound", func() *gorm.DB { var a Author; return e.db.Scopes(c).First(&a, 999) })
		check("Take", func() *gorm.DB { var a Author; return e.db.Scopes(c).Take(&a) })
		check("Last", func() *gorm.DB { var a Author; return e.db.Scopes(c).Last(&a) })
		check("Find", func() *gorm.DB { var a []Author; return e.db.Scopes(c).Find(&a) })
		check("Count", func() *gorm.DB { var n int64; return e.db.Model(&Post{}).Scopes(c).Count(&n) })
		check("CountDistinct", func() *gorm.DB { var n int64; return e.db.Model(&Post{}).Scopes(c).Distinct("author_id").Count(&n) })
		check("Pluck", func() *gorm.DB { var s []string; return e.db.Model(&Post{}).Scopes(c).Pluck("title", &s) })
		check("ScanMap", func() *gorm.DB {
			var m []map[string]any
			return e.db.Model(&Post{}).Scopes(c).Find(&m)
		})
		check("Scan", func() *gorm.DB {
			var r []struct{ Title string }
			return e.db.Table("posts").Scopes(c).Select("title").Scan(&r)
		})
		check("Preload", func() *gorm.DB { var a []Author; return e.db.Scopes(c).Preload("Posts").Find(&a) })
		check("Rows", func() *gorm.DB {
			q := e.db.Model(&Post{}).Scopes(c).Where("id > ?", 0)
			rows, err := q.Rows()
			if err == nil {
				for rows.Next() {
				}
				rows.Close()
			}
			return q
		})
		check("Row", func() *gorm.DB {
			q := e.db.Model(&Post{}).Scopes(c).Select("count(*)")
			var n int
			_ = q.Row().Scan(&n)
			return q
		})
		check("Errored", func() *gorm.DB { var a []Author; return e.db.Scopes(c).Where("nosuchcol = 1").Find(&a) })
		check("InTx", func() *gorm.DB {
			var tx *gorm.DB
			_ = e.db.Transaction(func(db *gorm.DB) error {
				var a Author
				tx = db.Scopes(c).First(&a, 1)
				return nil
			})
			return tx
		})
	}
}

// Close called from many goroutines while queries of every finisher run:
// no panic, every Close returns nil, and answers are the database's.
func TestHostile47ConcurrentClose(t *testing.T) {
	e := newEnv(t, databases[0], memoryStore, querycache.Options{})
	must(t, e.db.Create(&Author{ID: 1, Name: "a", Posts: []Post{{Title: "p1"}, {Title: "p2"}}}).Error)
	c := gormcache.Cacheable()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int64
				if err := e.db.Model(&Post{}).Scopes(c).Count(&n).Error; err != nil || n != 2 {
					t.Errorf("Count: %d %v", n, err)
					return
				}
				var s []string
				if err := e.db.Model(&Post{}).Scopes(c).Order("id").Pluck("title", &s).Error; err != nil || len(s) != 2 {
					t.Errorf("Pluck: %v %v", s, err)
					return
				}
				var as []Author
				if err := e.db.Scopes(c).Preload("Posts").Find(&as).Error; err != nil || len(as) != 1 || len(as[0].Posts) != 2 {
					t.Errorf("Preload: %+v %v", as, err)
					return
				}
			}
		}()
	}
	var cw sync.WaitGroup
	for i := 0; i < 8; i++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			if err := e.cache.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	cw.Wait()
	var cnt int64
	n := e.statements(func() { must(t, e.db.Model(&Post{}).Scopes(c).Count(&cnt).Error) })
	close(stop)
	wg.Wait()
	if n == 0 {
		t.Error("after Close a Count did not reach the database")
	}
	tx := e.db.Model(&Post{}).Scopes(c).Count(&cnt)
	if gormcache.FromCache(tx) {
		t.Error("FromCache true after Close")
	}
	// Close, then Use again.
	db2 := h47Open(t)
	if err := db2.Use(gormcache.New(e.cache)); err == nil {
		t.Error("db.Use with a closed cache: no error")
	}
	if err := e.cache.Close(); err != nil {
		t.Errorf("third Close: %v", err)
	}
}

// Huge sizes: no panic, caching still works.
func TestHostile47HugeSizes(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: math.MaxInt64}), MaxEntryBytes: math.MaxInt64})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db := h47Open(t)
	must(t, db.Use(gormcache.New(c, gormcache.SnapshotBytes(math.MaxInt64))))
	must(t, db.Create(&Counter{ID: 1, N: 5}).Error)
	for i := 0; i < 3; i++ {
		var x Counter
		tx := db.Scopes(gormcache.Cacheable()).First(&x, 1)
		must(t, tx.Error)
		if x.N != 5 {
			t.Fatalf("got %d", x.N)
		}
		if i == 2 && !gormcache.FromCache(tx) {
			t.Errorf("huge sizes: third read not a hit (%+v)", gormcache.CacheResult(tx))
		}
	}
}
