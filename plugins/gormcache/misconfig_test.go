package gormcache_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

func misconfigCache(t *testing.T) *querycache.Cache {
	t.Helper()
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	return cache
}

// misconfigLog is a GORM logger that keeps its warnings.
type misconfigLog struct {
	logger.Interface
	mu    sync.Mutex
	warns []string
}

func (l *misconfigLog) LogMode(logger.LogLevel) logger.Interface { return l }
func (l *misconfigLog) Warn(_ context.Context, msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.warns = append(l.warns, fmt.Sprintf(msg, args...))
}

func (l *misconfigLog) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.warns {
		if strings.Contains(w, sub) {
			n++
		}
	}
	return n
}

func openSQLiteLog(t *testing.T, name string, log logger.Interface) (*gorm.DB, *sql.DB) {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), name)), &gorm.Config{Logger: log})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db, sqlDB
}

// A query marked with a scope on a *gorm.DB without the plugin (never
// registered, or registered on another gorm.Open) fails with an error that
// says to register it, instead of silently not caching. NoCache needs no
// plugin.
func TestMisconfigMarkWithoutPlugin(t *testing.T) {
	cache := misconfigCache(t)
	withPlugin, without := openSQLite(t, "with.db"), openSQLite(t, "without.db")
	must(t, withPlugin.Use(gormcache.New(cache)))
	for _, db := range []*gorm.DB{withPlugin, without} {
		must(t, db.AutoMigrate(&Post{}))
		must(t, db.Create(&Post{ID: 1, Title: "one"}).Error)
	}
	marks := map[string]func(*gorm.DB) *gorm.DB{
		"gormcache.Cacheable": gormcache.Cacheable(),
		"gormcache.CacheFor":  gormcache.CacheFor(time.Minute),
		"gormcache.CacheWith": gormcache.CacheWith(gormcache.CacheOptions{Tables: []string{"posts"}}),
	}
	for fn, mark := range marks {
		var p Post
		err := without.Scopes(mark).First(&p, 1).Error
		if !errors.Is(err, gormcache.ErrNoPlugin) || !strings.HasPrefix(err.Error(), fn+": ") ||
			!strings.Contains(err.Error(), "db.Use(gormcache.New(cache))") || strings.Contains(err.Error(), "gormcache: ") {
			t.Errorf("%s on a *gorm.DB without the plugin: %v; want ErrNoPlugin saying to db.Use(gormcache.New(cache)), one prefix", fn, err)
		}
		var n int64
		if err := without.Model(&Post{}).Scopes(mark).Count(&n).Error; !errors.Is(err, gormcache.ErrNoPlugin) {
			t.Errorf("%s Count without the plugin: %v", fn, err)
		}
		if err := withPlugin.Scopes(mark).First(&p, 1).Error; err != nil {
			t.Errorf("%s with the plugin: %v", fn, err)
		}
	}
	var p Post
	must(t, without.Scopes(gormcache.NoCache()).First(&p, 1).Error)
}

// A negative TTL is an error where it is given: at the statement for the
// marks, at db.Use for CacheModelsFor. It used to become the default TTL.
func TestMisconfigNegativeTTL(t *testing.T) {
	cache := misconfigCache(t)
	db := openSQLite(t, "ttl.db")
	must(t, db.Use(gormcache.New(cache)))
	must(t, db.AutoMigrate(&Post{}))
	must(t, db.Create(&Post{ID: 1, Title: "one"}).Error)

	check := func(what string, err error, fn string) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), fn+": the TTL is -1s") || !strings.Contains(err.Error(), "use a positive duration") {
			t.Errorf("%s: %v; want %q saying how to fix it", what, err, fn+": the TTL is -1s")
		}
	}
	var p Post
	check("CacheFor", db.Scopes(gormcache.CacheFor(-time.Second)).First(&p, 1).Error, "gormcache.CacheFor")
	check("CacheWith", db.Scopes(gormcache.CacheWith(gormcache.CacheOptions{TTL: -time.Second})).First(&p, 1).Error, "gormcache.CacheWith")
	ctx := gormcache.WithCache(context.Background(), -time.Second)
	check("WithCache First", db.WithContext(ctx).First(&p, 1).Error, "gormcache.WithCache")
	var posts []Post
	check("WithCache Find", db.WithContext(ctx).Find(&posts).Error, "gormcache.WithCache")
	rows, err := db.WithContext(ctx).Model(&Post{}).Rows()
	if rows != nil {
		rows.Close()
	}
	check("WithCache Rows", err, "gormcache.WithCache")
	var title string
	check("WithCache Raw Scan", db.WithContext(ctx).Raw("SELECT title FROM posts WHERE id = 1").Scan(&title).Error, "gormcache.WithCache")
	// Nothing was cached or counted as a lookup.
	if st := cache.Stats(); st.Hits+st.Misses != 0 {
		t.Errorf("a misconfigured mark reached the cache: %+v", st)
	}
	// TTL 0 is the default, not an error.
	must(t, db.Scopes(gormcache.CacheFor(0)).First(&p, 1).Error)

	// A declared table that spells no table: dropped, it left a statement
	// whose tables its SQL does not show depending on nothing.
	for _, tables := range [][]string{{""}, {"posts", "a\x00b"}, {"a..b"}} {
		err := db.Scopes(gormcache.CacheWith(gormcache.CacheOptions{Tables: tables})).First(&p, 1).Error
		if err == nil || !strings.HasPrefix(err.Error(), "gormcache.CacheWith: CacheOptions.Tables[") {
			t.Errorf("CacheWith Tables %q: %v; want an error naming the table", tables, err)
		}
		err = db.WithContext(gormcache.WithCacheOptions(context.Background(), gormcache.CacheOptions{Tables: tables})).First(&p, 1).Error
		if err == nil || !strings.HasPrefix(err.Error(), "gormcache.WithCache: CacheOptions.Tables[") {
			t.Errorf("WithCacheOptions Tables %q: %v; want an error naming the table", tables, err)
		}
	}

	err = openSQLite(t, "models.db").Use(gormcache.New(cache, gormcache.CacheModelsFor(-time.Second, &Post{})))
	if err == nil || !strings.HasPrefix(err.Error(), "gormcache.CacheModelsFor: the TTL of *gormcache_test.Post is -1s") {
		t.Errorf("CacheModelsFor(-1s): %v", err)
	}
}

// Options that would misbehave silently are errors of db.Use.
func TestMisconfigPluginOptions(t *testing.T) {
	cache := misconfigCache(t)
	cases := map[string]struct {
		plugin *gormcache.Plugin
		want   string
	}{
		"nil cache":       {gormcache.New(nil), "gormcache.New: cache is nil"},
		"nil Tenant":      {gormcache.New(cache, gormcache.Tenant(nil)), "gormcache.Tenant: the function is nil"},
		"nil Observe":     {gormcache.New(cache, gormcache.Observe(nil)), "gormcache.Observe: the function is nil"},
		"nil model":       {gormcache.New(cache, gormcache.CacheModels(nil)), "gormcache.CacheModels: a model is nil"},
		"StateWithoutTen": {gormcache.New(cache, gormcache.SessionStateInKey()), "no Tenant function is set"},
		// Zero values and a nil option panicked (a hostile run, issue 8's
		// fortieth session): New, or the checks at db.Use, dereferenced
		// what New never made (TestMisconfigPluginOptions).
		"nil option":        {gormcache.New(cache, gormcache.CacheModels(&Post{}), nil), "gormcache.New: option 2 of 2 is nil"},
		"zero Cache":        {gormcache.New(&querycache.Cache{}), "gormcache.New: the *querycache.Cache was not made by querycache.New"},
		"zero Plugin":       {&gormcache.Plugin{}, "gormcache: the Plugin was not made by gormcache.New"},
		"InvalidOption":     {gormcache.New(cache, gormcache.InvalidOption(errors.New("some package's option is wrong"))), "some package's option is wrong"},
		"InvalidOption nil": {gormcache.New(cache, gormcache.InvalidOption(nil)), "gormcache.InvalidOption: called with a nil error"},
		"SignalQueue-1":     {gormcache.New(cache, gormcache.SignalQueue(-1)), "gormcache.SignalQueue(-1): give a positive size"},
	}
	closed, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	must(t, closed.Close())
	cases["closed cache"] = struct {
		plugin *gormcache.Plugin
		want   string
	}{gormcache.New(closed), "gormcache.New: the querycache.Cache is closed"}
	for name, tc := range cases {
		err := openSQLite(t, "opts.db").Use(tc.plugin)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: db.Use returned %v; want %q", name, err, tc.want)
		}
	}
}

// Registering twice is refused: the same plugin twice on one *gorm.DB,
// two plugins on one *gorm.DB, one plugin on two.
func TestMisconfigRegisterTwice(t *testing.T) {
	cache := misconfigCache(t)
	db := openSQLite(t, "twice.db")
	p := gormcache.New(cache)
	must(t, db.Use(p))
	if err := db.Use(p); !errors.Is(err, gorm.ErrRegistered) {
		t.Errorf("the same plugin twice: %v; want gorm.ErrRegistered", err)
	}
	if err := db.Use(gormcache.New(cache)); !errors.Is(err, gorm.ErrRegistered) {
		t.Errorf("a second plugin: %v; want gorm.ErrRegistered", err)
	}
	if err := gormcache.New(cache).Initialize(db); err == nil || !strings.Contains(err.Error(), "already has a gormcache plugin") {
		t.Errorf("a second plugin initialised directly: %v", err)
	}
	if err := openSQLite(t, "other.db").Use(p); err == nil || !strings.Contains(err.Error(), "create one plugin per database") {
		t.Errorf("one plugin on two databases: %v", err)
	}
}

// otherCache imitates github.com/go-gorm/caches: it replaces gorm:query
// with its own callback, which serves from its own map and otherwise runs
// the callback it found.
type otherCache struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (o *otherCache) Name() string { return "other-cache" }
func (o *otherCache) Initialize(db *gorm.DB) error {
	inner := db.Callback().Query().Get("gorm:query")
	return db.Callback().Query().Replace("gorm:query", func(db *gorm.DB) {
		o.mu.Lock()
		o.seen[db.Statement.SQL.String()] = true
		o.mu.Unlock()
		inner(db)
	})
}

// Another plugin replacing gorm:query: registered first, db.Use of
// gormcache fails; registered after, the first marked query fails with
// ErrQueryCallbackReplaced and a warning is logged once.
func TestMisconfigAnotherQueryCache(t *testing.T) {
	cache := misconfigCache(t)
	first := openSQLite(t, "first.db")
	must(t, first.Use(&otherCache{seen: map[string]bool{}}))
	if err := first.Use(gormcache.New(cache)); !errors.Is(err, gormcache.ErrQueryCallbackReplaced) || !strings.Contains(err.Error(), "go-gorm/caches") {
		t.Errorf("gormcache after another query cache: %v; want ErrQueryCallbackReplaced", err)
	}

	log := &misconfigLog{Interface: logger.Discard}
	after, _ := openSQLiteLog(t, "after.db", log)
	must(t, after.Use(gormcache.New(cache)))
	must(t, after.AutoMigrate(&Post{}))
	must(t, after.Create(&Post{ID: 1, Title: "one"}).Error)
	must(t, after.Use(&otherCache{seen: map[string]bool{}}))
	for i := 0; i < 3; i++ {
		var p Post
		if err := after.Scopes(gormcache.Cacheable()).First(&p, 1).Error; !errors.Is(err, gormcache.ErrQueryCallbackReplaced) {
			t.Errorf("marked query after another query cache replaced ours: %v", err)
		}
		must(t, after.First(&p, 1).Error) // unmarked statements still run
	}
	if n := log.count("replaced GORM's query callback"); n != 1 {
		t.Errorf("%d warnings; want 1 (%v)", n, log.warns)
	}

	// In place, the check passes once and costs nothing more.
	fine := openSQLite(t, "fine.db")
	must(t, fine.Use(gormcache.New(cache)))
	must(t, fine.AutoMigrate(&Post{}))
	must(t, fine.Create(&Post{ID: 1, Title: "one"}).Error)
	for i := 0; i < 2; i++ {
		var p Post
		must(t, fine.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
	}
}

// A plugin whose cache was closed fails open: marked queries go to the
// database (an outside write is seen at once) and nothing is stored.
func TestMisconfigCacheClosedUnderPlugin(t *testing.T) {
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	db, sqlDB := openSQLiteLog(t, "closed.db", logger.Discard)
	must(t, db.Use(gormcache.New(cache)))
	must(t, db.AutoMigrate(&Post{}))
	must(t, db.Create(&Post{ID: 1, Title: "one"}).Error)
	var p Post
	for i := 0; i < 4; i++ {
		must(t, db.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
	}
	if st := cache.Stats(); st.Hits == 0 {
		t.Fatalf("no hit before Close (%+v)", st)
	}
	must(t, cache.Close())
	// Written behind the plugin's back: a closed cache must not serve the
	// old row.
	if _, err := sqlDB.Exec("UPDATE posts SET title = 'two' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	before := cache.Stats()
	for i := 0; i < 2; i++ {
		p = Post{}
		must(t, db.Scopes(gormcache.Cacheable()).First(&p, 1).Error)
		if p.Title != "two" {
			t.Fatalf("a closed cache served %q", p.Title)
		}
	}
	// Writes through the plugin still succeed.
	must(t, db.Model(&Post{}).Where("id = 1").Update("title", "three").Error)
	st := cache.Stats()
	if st.Hits != before.Hits || st.Stores != before.Stores || st.Bypasses["closed"] < 2 {
		t.Errorf("after Close: hits %d->%d stores %d->%d bypasses %v", before.Hits, st.Hits, before.Stores, st.Stores, st.Bypasses)
	}
}

// A *gorm.DB closed under the plugin: a miss returns the database's error,
// nothing panics.
func TestMisconfigDatabaseClosedUnderPlugin(t *testing.T) {
	cache := misconfigCache(t)
	db, sqlDB := openSQLiteLog(t, "dbclosed.db", logger.Discard)
	must(t, db.Use(gormcache.New(cache)))
	must(t, db.AutoMigrate(&Post{}))
	must(t, db.Create(&Post{ID: 1, Title: "one"}).Error)
	must(t, sqlDB.Close())
	var p Post
	if err := db.Scopes(gormcache.Cacheable()).First(&p, 1).Error; err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a miss on a closed database: %v; want the database's error", err)
	}
	if err := db.Model(&Post{}).Where("id = 1").Update("title", "x").Error; err == nil {
		t.Error("a write on a closed database succeeded")
	}
}

// NoCache with CacheFor on one statement is not a mistake: the opt-out
// wins, whatever the order, so that code that must read fresh data can
// rely on it.
func TestMisconfigNoCacheWins(t *testing.T) {
	cache := misconfigCache(t)
	db := openSQLite(t, "nocache.db")
	must(t, db.Use(gormcache.New(cache)))
	must(t, db.AutoMigrate(&Post{}))
	must(t, db.Create(&Post{ID: 1, Title: "one"}).Error)
	for i := 0; i < 2; i++ {
		var p Post
		must(t, db.Scopes(gormcache.NoCache(), gormcache.CacheFor(time.Minute)).First(&p, 1).Error)
		must(t, db.Scopes(gormcache.CacheFor(time.Minute), gormcache.NoCache()).First(&p, 1).Error)
	}
	if st := cache.Stats(); st.Hits+st.Misses != 0 {
		t.Errorf("an opted-out query reached the cache: hits %d misses %d", st.Hits, st.Misses)
	}
}
