//go:build unix

package gormcache_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// When does the PostgreSQL store pay? Its hit is a PostgreSQL statement
// (one round trip, an index lookup per version and for the entry), so it
// saves the difference between the query and that statement:
//
//	go test -run '^$' -bench 'BenchmarkPgStore' -count 6 ./plugins/gormcache/
//
// Configurations, interleaved in one run (interleave, bench_redis_test.go)
// against one PostgreSQL database: "gorm" (no plugin), "pg" (the plugin
// on the PostgreSQL store: every hit is a statement), "tiered-pg" (the
// two-level store: a hit in its memory level costs no round trip) and
// "memory" (the plugin on the memory store, for reference). Ratios are
// "<config>/gorm" within the run: below 1 the cache pays.

// BenchEvent is a row of a larger table that the expensive query
// aggregates.
type BenchEvent struct {
	ID     uint
	UserID int `gorm:"index"`
	Kind   string
	Amount float64
}

// pgStoreBench is one PostgreSQL schema seen through each configuration.
type pgStoreBench struct {
	dbs    map[string]*gorm.DB
	caches map[string]*querycache.Cache
}

func newPgStoreBench(b *testing.B, events int) *pgStoreBench {
	b.Helper()
	dsn := testenv.PostgresSchema(b)
	schema := pgSchemaName(dsn)
	open := func() *gorm.DB {
		db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if s, err := db.DB(); err == nil {
				s.Close()
			}
		})
		return db
	}
	plain := open()
	if err := plain.AutoMigrate(&BenchUser{}, &BenchEvent{}); err != nil {
		b.Fatal(err)
	}
	must(b, plain.Exec(`INSERT INTO bench_users (name, email, age, score, active, bio, created_at)
		SELECT 'user '||i, 'u'||i||'@example.com', 20 + i % 50, i / 7.0, i % 3 = 0, 'a short biography of a user', now()
		FROM generate_series(1, 1000) i`).Error)
	must(b, plain.Exec(`INSERT INTO bench_events (user_id, kind, amount)
		SELECT i % 1000, (ARRAY['view','click','buy'])[1 + i % 3], (i % 997) / 3.0
		FROM generate_series(1, ?) i`, events).Error)
	must(b, plain.Exec(`ANALYZE bench_users; ANALYZE bench_events`).Error)

	pool, err := pgxpool.New(context.Background(), testenv.PostgresDSN())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	pgs := func() *querycache.PostgresStore {
		s := querycache.NewPostgresStore(pool, querycache.PostgresOptions{Schema: schema, Timeout: time.Second})
		must(b, s.EnsureSchema(context.Background()))
		return s
	}
	e := &pgStoreBench{dbs: map[string]*gorm.DB{"gorm": plain}, caches: map[string]*querycache.Cache{}}
	for name, store := range map[string]querycache.Store{
		"pg":        pgs(),
		"tiered-pg": querycache.NewTieredPostgresStore(pgs(), querycache.TieredOptions{}),
		"memory":    querycache.NewMemoryStore(querycache.MemoryOptions{}),
	} {
		cache, err := querycache.New(querycache.Options{Store: store, Prefix: name + ":"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cache.Close() })
		db := open()
		if err := db.Use(gormcache.New(cache)); err != nil {
			b.Fatal(err)
		}
		e.dbs[name] = db
		e.caches[name] = cache
	}
	return e
}

// run interleaves read through every configuration (Cacheable scope on
// the cached ones) and checks that the cached ones were served from their
// cache.
func (e *pgStoreBench) run(b *testing.B, read func(db *gorm.DB) error) {
	var cases []benchCase
	for _, name := range []string{"gorm", "pg", "tiered-pg", "memory"} {
		db := e.dbs[name]
		op := func() error { return read(db) }
		if name != "gorm" {
			// A new chain per query: a *gorm.DB chain that has run a
			// query keeps its conditions.
			op = func() error { return read(db.Scopes(gormcache.Cacheable())) }
		}
		cases = append(cases, benchCase{name: name, op: op})
	}
	ratio := func(name string) benchRatio {
		return benchRatio{name + "/gorm", func(ns map[string]float64) float64 { return ns[name] / ns["gorm"] }}
	}
	interleave(b, cases, []benchRatio{ratio("pg"), ratio("tiered-pg"), ratio("memory")})
	for name, c := range e.caches {
		if st := c.Stats(); st.Hits == 0 || st.Errors != 0 {
			b.Fatalf("%s: %d hits, %d store errors: the benchmark did not measure hits", name, st.Hits, st.Errors)
		}
	}
	if st := e.caches["tiered-pg"].Store().(*querycache.TieredStore).Stats(); st.L1Hits == 0 {
		b.Fatal("tiered-pg: no hit from its memory level")
	}
}

// BenchmarkPgStorePK: a lookup by primary key, about the cheapest query
// there is: PostgreSQL answers it from an index as fast as it answers the
// store's own statement, so the PostgreSQL store alone cannot pay; only
// its memory level can.
func BenchmarkPgStorePK(b *testing.B) {
	e := newPgStoreBench(b, 1000)
	b.ResetTimer()
	i := 0
	e.run(b, func(db *gorm.DB) error {
		i++
		var u BenchUser
		return db.First(&u, 1+i%50).Error
	})
}

// BenchmarkPgStoreAggregate: a GROUP BY over 200,000 rows, tens of
// milliseconds of PostgreSQL's time: any store pays, the PostgreSQL one
// included.
func BenchmarkPgStoreAggregate(b *testing.B) {
	e := newPgStoreBench(b, 200_000)
	type bucket struct {
		Kind  string
		N     int64
		Total float64
	}
	b.ResetTimer()
	e.run(b, func(db *gorm.DB) error {
		var out []bucket
		err := db.Model(&BenchEvent{}).Select("kind, count(*) AS n, sum(amount) AS total").Group("kind").Order("kind").Find(&out).Error
		if err == nil && len(out) != 3 {
			b.Fatalf("%d buckets", len(out))
		}
		return err
	})
}
