package gormcache_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// The hostile35 tests simulate several processes in one: each "process"
// is its own *gorm.DB on one shared database (a SQLite file or a
// PostgreSQL schema), its own redis.Client, its own store, Cache and
// plugin. They share nothing but the database and Redis (and the key
// prefix), which is how two OS processes look to each other.

// H35Item is the row the hostile35 tests read and write.
type H35Item struct {
	ID  uint
	N   int
	Tag string
}

func (H35Item) TableName() string { return "h35_items" }

// h35DB is a shared database: dial opens one more connection pool on it.
type h35DB struct {
	name string
	dial func(t *testing.T) gorm.Dialector
}

// h35Databases returns the shared SQLite file and PostgreSQL schema
// (opened lazily: the schema is made only when the subtest runs).
func h35Databases() []struct {
	name string
	make func(t *testing.T) h35DB
} {
	return []struct {
		name string
		make func(t *testing.T) h35DB
	}{
		{"sqlite", func(t *testing.T) h35DB {
			path := filepath.Join(t.TempDir(), "shared.db")
			return h35DB{"sqlite", func(*testing.T) gorm.Dialector { return sqlite.Open(sqliteSharedDSN(path)) }}
		}},
		{"postgres", func(t *testing.T) h35DB {
			dsn := testenv.PostgresSchema(t)
			return h35DB{"postgres", func(*testing.T) gorm.Dialector { return postgres.Open(dsn) }}
		}},
	}
}

// h35Proc is one simulated process.
type h35Proc struct {
	db    *gorm.DB
	cache *querycache.Cache
	rs    *querycache.RedisStore  // its Redis level
	ts    *querycache.TieredStore // nil for a plain RedisStore
}

// h35Client is a client of a Redis at addr (database db) as an
// application would make it (go-redis defaults), closed at cleanup.
func h35Client(t *testing.T, addr string, db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	t.Cleanup(func() { c.Close() })
	return c
}

// h35Open opens a process on d with a store on client (tiered: a
// TieredStore in front; strict: its strict mode), with the store's
// default options unless ro is given.
func h35Open(t *testing.T, d h35DB, client *redis.Client, prefix string, tiered, strict bool, ro querycache.RedisOptions, opts ...gormcache.Option) *h35Proc {
	t.Helper()
	db, err := gorm.Open(d.dial(t), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		testenv.Unavailable(t, d.name, err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	must(t, db.AutoMigrate(&H35Item{}))
	p := &h35Proc{db: db}
	p.rs = querycache.NewRedisStore(client, ro)
	var store querycache.Store = p.rs
	if tiered {
		p.ts = querycache.NewTieredStore(p.rs, querycache.TieredOptions{Strict: strict})
		store = p.ts
	}
	c, err := querycache.New(querycache.Options{Store: store, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p.cache = c
	must(t, db.Use(gormcache.New(c, opts...)))
	return p
}

// read reads row id through the cache and reports its N and whether the
// cache served it.
func (p *h35Proc) read(t *testing.T, id uint) (int, bool) {
	t.Helper()
	before := p.cache.Stats().Hits
	var it H35Item
	must(t, p.db.Scopes(gormcache.Cacheable()).First(&it, id).Error)
	return it.N, p.cache.Stats().Hits > before
}

// mustHit reads id until the cache serves it (at most 5 s).
func (p *h35Proc) mustHit(t *testing.T, id uint) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, hit := p.read(t, id)
		if hit {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("row %d never served from the cache (stats %+v)", id, p.cache.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// h35Truth reads row id without the cache.
func h35Truth(t *testing.T, db *gorm.DB, id uint) int {
	t.Helper()
	var it H35Item
	must(t, db.Scopes(gormcache.NoCache()).First(&it, id).Error)
	return it.N
}
