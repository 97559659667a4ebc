package gormcache_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"querycache.dev/internal/testenv"
	"querycache.dev/invalidation"
	"querycache.dev/migrations"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// hddlDatabase: a database h_ddl_<random> of the test's own.
func hddlDatabase(t *testing.T) (dsn, name string) {
	t.Helper()
	dsn = testenv.PostgresDatabase(t, "h_ddl_")
	return dsn, testenv.DatabaseName(dsn)
}

type hddlOpts struct {
	store  querycache.Store // nil: memory
	prefix string
	tables []string
}

// hddlApp: GORM + plugin + listener (started, ready) on dsn.
func hddlApp(t *testing.T, dsn, channel string, o hddlOpts) (*gorm.DB, *invalidation.Listener, *querycache.Cache) {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	store := o.store
	if store == nil {
		store = querycache.NewMemoryStore(querycache.MemoryOptions{})
	}
	cache, err := querycache.New(querycache.Options{Store: store, Prefix: o.prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	must(t, db.Use(gormcache.New(cache)))
	l, err := invalidation.NewListener(cache, dsn, invalidation.ListenerOptions{Channel: channel, Tables: o.tables, Logger: owQuiet,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	must(t, l.Start())
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Ready(ctx); err != nil {
		t.Fatalf("listener: %v", err)
	}
	return db, l, cache
}

func hddlRedis(t *testing.T) querycache.Store {
	opt, err := redis.ParseURL(testenv.RedisURL())
	must(t, err)
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return querycache.NewRedisStore(c, querycache.RedisOptions{Timeout: testenv.StoreTimeout})
}

// hddlInstall installs the row triggers (every table of public) and the
// DDL event trigger on channel.
func hddlInstall(t *testing.T, conn *sql.DB, channel string, rows bool) {
	t.Helper()
	ctx := context.Background()
	if rows {
		if _, err := migrations.InstallPostgresTriggers(ctx, conn, migrations.Options{Channel: channel}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, migrations.InstallPostgresDDLNotify(ctx, conn, migrations.Options{Channel: channel}))
}

// hddlRead reads q through the plugin (Cacheable), and reports whether
// the cache served it; hddlDirect reads it on conn (no plugin).
func hddlRead(db *gorm.DB, q string) (string, bool, error) {
	var rows []map[string]any
	tx := db.Scopes(gormcache.Cacheable()).Raw(q).Scan(&rows)
	if tx.Error != nil {
		return "", false, tx.Error
	}
	return fmt.Sprint(rows), gormcache.FromCache(tx), nil
}

func hddlDirect(conn *sql.DB, q string) (string, error) {
	r, err := conn.Query(q)
	if err != nil {
		return "", err
	}
	defer r.Close()
	cols, _ := r.Columns()
	var out []map[string]any
	for r.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := r.Scan(ptrs...); err != nil {
			return "", err
		}
		m := map[string]any{}
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	return fmt.Sprint(out), r.Err()
}

// hddlSame fails t when the cached read of q differs from the database's.
func hddlSame(t *testing.T, db *gorm.DB, conn *sql.DB, q, what string) {
	t.Helper()
	c, hit, cerr := hddlRead(db, q)
	d, derr := hddlDirect(conn, q)
	if (cerr != nil) != (derr != nil) || c != d {
		t.Errorf("%s: cached read of %q = %q (err %v, from the cache: %v); the database returns %q (err %v)", what, q, c, cerr, hit, d, derr)
	}
}

// hddlRole creates a login role, dropped when t ends (after the test's
// database, registered first, is dropped: cleanups run last first).
func hddlRole(t *testing.T, conn *sql.DB, dsn, name, opts string) {
	t.Helper()
	t.Cleanup(func() {
		if own, err := sql.Open("pgx", dsn); err == nil {
			_, _ = own.Exec("DROP OWNED BY " + name)
			own.Close()
		}
		admin, err := sql.Open("pgx", testenv.PostgresDSN())
		if err == nil {
			_, _ = admin.Exec("DROP ROLE IF EXISTS " + name)
			admin.Close()
		}
	})
	ddlExec(t, conn, "CREATE ROLE "+name+" "+opts)
}
