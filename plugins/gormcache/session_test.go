package gormcache_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// dbNamed returns the test database kind called name.
func dbNamed(t *testing.T, name string) dbKind {
	t.Helper()
	for _, d := range databases {
		if d.name == name {
			return d
		}
	}
	t.Fatalf("no database %q", name)
	return dbKind{}
}

// uniqueName returns prefix followed by random hex: roles are global to the
// server, so tests running at once must not share them.
func uniqueName(prefix string) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// pgAdmin opens the test server as its superuser, closed when t ends.
func pgAdmin(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", testenv.PostgresDSN())
	must(t, err)
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	return db
}

func adminExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// pgRoles creates NOLOGIN roles with unique names, dropped when t ends.
func pgRoles(t *testing.T, admin *sql.DB, n int, login bool) []string {
	t.Helper()
	roles := make([]string, n)
	for i := range roles {
		roles[i] = uniqueName("qc_role_")
		opt := "NOLOGIN"
		if login {
			opt = "LOGIN"
		}
		adminExec(t, admin, "CREATE ROLE "+roles[i]+" "+opt)
	}
	t.Cleanup(func() {
		for _, r := range roles {
			_, _ = admin.Exec("DROP OWNED BY " + r + " CASCADE")
			if _, err := admin.Exec("DROP ROLE " + r); err != nil {
				t.Errorf("dropping role %s: %v", r, err)
			}
		}
	})
	return roles
}

func currentSchema(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var s string
	must(t, db.Scopes(gormcache.NoCache()).Raw("SELECT current_schema()").Scan(&s).Error)
	return s
}

// names reads the name column of table in id order.
func names(t *testing.T, db *gorm.DB, table string, s scope) []string {
	t.Helper()
	var out []string
	must(t, db.Scopes(s).Table(table).Order("id").Pluck("name", &out).Error)
	return out
}

// sameAsDatabase fails unless the cached read of table on db returns what
// the database returns there, twice (the second may be a hit), and want.
func sameAsDatabase(t *testing.T, db *gorm.DB, table string, want []string, when string) {
	t.Helper()
	for i := 0; i < 2; i++ {
		got, direct := names(t, db, table, gormcache.Cacheable()), names(t, db, table, gormcache.NoCache())
		if !slices.Equal(got, direct) || !slices.Equal(got, want) {
			t.Fatalf("%s: cached %q, database %q; want %q", when, got, direct, want)
		}
	}
}

// pgTenantSchemas creates two schemas holding the same table "items" with
// different rows, and "items" in the test's own schema.
func pgTenantSchemas(t *testing.T, e *env) (a, b string) {
	t.Helper()
	admin := pgAdmin(t)
	base := currentSchema(t, e.db)
	a, b = uniqueName("qc_tenant_a_"), uniqueName("qc_tenant_b_")
	for _, s := range []string{a, b, base} {
		if s != base {
			adminExec(t, admin, "CREATE SCHEMA "+s)
			t.Cleanup(func() { _, _ = admin.Exec("DROP SCHEMA " + s + " CASCADE") })
		}
		adminExec(t, admin,
			"CREATE TABLE "+s+".items (id int PRIMARY KEY, name text)",
			fmt.Sprintf("INSERT INTO %s.items VALUES (1, '%s one'), (2, '%s two')", s, s[:min(len(s), 11)], s[:min(len(s), 11)]))
	}
	return a, b
}

func rowsOf(schema string) []string {
	p := schema[:min(len(schema), 11)]
	return []string{p + " one", p + " two"}
}

func oneConnection(t *testing.T, e *env) {
	t.Helper()
	sqlDB, err := e.db.DB()
	must(t, err)
	sqlDB.SetMaxOpenConns(1)
}

func TestSessionSearchPath(t *testing.T) {
	pg := dbNamed(t, "postgres")
	t.Run("pool of one", func(t *testing.T) {
		e := newEnv(t, pg, stores[0], querycache.Options{})
		a, b := pgTenantSchemas(t, e)
		base := currentSchema(t, e.db)
		oneConnection(t, e)
		sameAsDatabase(t, e.db, "items", rowsOf(base), "own schema")
		must(t, e.db.Exec("SET search_path TO "+a).Error)
		sameAsDatabase(t, e.db, "items", rowsOf(a), "tenant a")
		must(t, e.db.Exec("SET search_path TO "+b).Error)
		sameAsDatabase(t, e.db, "items", rowsOf(b), "tenant b")
		must(t, e.db.Exec("RESET search_path").Error)
		sameAsDatabase(t, e.db, "items", rowsOf(base), "reset")
		if e.cache.Stats().Bypasses["session_state"] == 0 {
			t.Fatalf("not counted: %v", e.cache.Stats().Bypasses)
		}
	})
	t.Run("Connection", func(t *testing.T) {
		e := newEnv(t, pg, stores[0], querycache.Options{})
		a, b := pgTenantSchemas(t, e)
		base := currentSchema(t, e.db)
		sameAsDatabase(t, e.db, "items", rowsOf(base), "own schema")
		for _, s := range []string{a, b} {
			must(t, e.db.Connection(func(c *gorm.DB) error {
				must(t, c.Exec("SET search_path TO "+s).Error)
				sameAsDatabase(t, c, "items", rowsOf(s), "tenant "+s)
				return c.Exec("RESET search_path").Error
			}))
			sameAsDatabase(t, e.db, "items", rowsOf(base), "the pool after tenant "+s)
		}
	})
	t.Run("SessionStateInKey", func(t *testing.T) {
		type tenantKey struct{}
		e := newEnv(t, pg, stores[0], querycache.Options{},
			gormcache.Tenant(func(ctx context.Context) string { s, _ := ctx.Value(tenantKey{}).(string); return s }),
			gormcache.SessionStateInKey())
		a, b := pgTenantSchemas(t, e)
		base := currentSchema(t, e.db)
		sameAsDatabase(t, e.db, "items", rowsOf(base), "own schema")
		for _, s := range []string{a, b, a} {
			must(t, e.db.Connection(func(c *gorm.DB) error {
				c = c.WithContext(context.WithValue(context.Background(), tenantKey{}, s))
				must(t, c.Exec("SET search_path TO "+s).Error)
				sameAsDatabase(t, c, "items", rowsOf(s), "tenant "+s)
				e.mustBeCached(t, "tenant read", func() error { return c.Scopes(gormcache.Cacheable()).Table("items").Pluck("name", &[]string{}).Error })
				return c.Exec("RESET search_path").Error
			}))
			sameAsDatabase(t, e.db, "items", rowsOf(base), "the pool after tenant "+s)
		}
		if n := e.cache.Stats().Bypasses["session_state"]; n != 0 {
			t.Fatalf("caching stopped (%d) although the tenant is in the key", n)
		}
	})
}

// pgRLSDocs creates docs(id, owner, name) in the test's schema with a
// row-level security policy showing each role its own rows, readable by
// two new roles.
func pgRLSDocs(t *testing.T, e *env) (roles []string, all []string) {
	t.Helper()
	admin := pgAdmin(t)
	base := currentSchema(t, e.db)
	roles = pgRoles(t, admin, 2, false)
	adminExec(t, admin,
		"CREATE TABLE "+base+".docs (id int PRIMARY KEY, owner text, name text)",
		"ALTER TABLE "+base+".docs ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY own ON "+base+".docs USING (owner = current_user)",
		fmt.Sprintf("INSERT INTO %s.docs VALUES (1, '%s', 'a1'), (2, '%s', 'b1'), (3, '%s', 'a2')", base, roles[0], roles[1], roles[0]))
	for _, r := range roles {
		adminExec(t, admin, "GRANT USAGE ON SCHEMA "+base+" TO "+r, "GRANT SELECT ON "+base+".docs TO "+r)
	}
	return roles, []string{"a1", "b1", "a2"}
}

func TestSessionSetRole(t *testing.T) {
	pg := dbNamed(t, "postgres")
	want := map[int][]string{0: {"a1", "a2"}, 1: {"b1"}}
	t.Run("Connection", func(t *testing.T) {
		e := newEnv(t, pg, stores[0], querycache.Options{})
		roles, all := pgRLSDocs(t, e)
		sameAsDatabase(t, e.db, "docs", all, "as the superuser")
		for i, r := range roles {
			must(t, e.db.Connection(func(c *gorm.DB) error {
				must(t, c.Exec("SET ROLE "+r).Error)
				sameAsDatabase(t, c, "docs", want[i], "as "+r)
				return c.Exec("RESET ROLE").Error
			}))
			sameAsDatabase(t, e.db, "docs", all, "the pool after "+r)
		}
	})
	t.Run("pool of one", func(t *testing.T) {
		e := newEnv(t, pg, stores[0], querycache.Options{})
		roles, all := pgRLSDocs(t, e)
		oneConnection(t, e)
		sameAsDatabase(t, e.db, "docs", all, "as the superuser")
		for i, r := range roles {
			must(t, e.db.Exec("SET ROLE "+r).Error)
			sameAsDatabase(t, e.db, "docs", want[i], "as "+r)
			must(t, e.db.Exec("RESET ROLE").Error)
		}
		sameAsDatabase(t, e.db, "docs", all, "reset")
	})
	t.Run("SET LOCAL in a transaction", func(t *testing.T) {
		e := newEnv(t, pg, stores[0], querycache.Options{}, gormcache.ReadsInTransactions())
		roles, all := pgRLSDocs(t, e)
		sameAsDatabase(t, e.db, "docs", all, "as the superuser")
		for i, r := range roles {
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Exec("SET LOCAL ROLE "+r).Error)
				sameAsDatabase(t, tx, "docs", want[i], "in a transaction as "+r)
				return nil
			}))
		}
		// A transaction-local change does not stop caching.
		e.mustBeCached(t, "docs", func() error { return e.db.Scopes(gormcache.Cacheable()).Table("docs").Pluck("name", &[]string{}).Error })
		sameAsDatabase(t, e.db, "docs", all, "after the transactions")
		if e.cache.Stats().Bypasses["transaction_session_state"] == 0 {
			t.Fatalf("not counted: %v", e.cache.Stats().Bypasses)
		}
	})
}

// pgTenantLogin creates, in a fresh schema, tdocs(id, tenant, name) whose
// policy shows the rows of current_setting('app.tenant'), and a login role
// that is neither superuser nor owner; it returns an env connected as that
// role.
func pgTenantLogin(t *testing.T, opts ...gormcache.Option) *env {
	t.Helper()
	admin := pgAdmin(t)
	dsn := testenv.PostgresSchema(t)
	m := regexp.MustCompile(`search_path=(\w+)`).FindStringSubmatch(dsn)
	if m == nil {
		t.Fatalf("no search_path in %q", dsn)
	}
	schema := m[1]
	role := pgRoles(t, admin, 1, true)[0]
	adminExec(t, admin,
		"CREATE TABLE "+schema+".tdocs (id int PRIMARY KEY, tenant text, name text)",
		"ALTER TABLE "+schema+".tdocs ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY tenant ON "+schema+".tdocs USING (tenant = current_setting('app.tenant', true))",
		"INSERT INTO "+schema+".tdocs VALUES (1, 'a', 'a1'), (2, 'b', 'b1'), (3, 'a', 'a2')",
		"GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+role,
		"GRANT SELECT ON "+schema+".tdocs TO "+role)
	sep := " "
	if strings.Contains(dsn, "://") {
		sep = "&"
	}
	d := dbKind{"postgres", func(*testing.T) gorm.Dialector { return postgres.Open(dsn + sep + "user=" + role) }}
	return newEnv(t, d, stores[0], querycache.Options{}, opts...)
}

func TestSessionSetConfig(t *testing.T) {
	tenants := map[string][]string{"a": {"a1", "a2"}, "b": {"b1"}}
	setters := map[string]func(db *gorm.DB, tenant string) error{
		"Exec": func(db *gorm.DB, tenant string) error {
			return db.Exec("SELECT set_config('app.tenant', ?, false)", tenant).Error
		},
		"Raw Scan": func(db *gorm.DB, tenant string) error {
			var s string
			return db.Raw("SELECT set_config('app.tenant', ?, false)", tenant).Scan(&s).Error
		},
	}
	for name, set := range setters {
		t.Run(name+"/pool of one", func(t *testing.T) {
			e := pgTenantLogin(t)
			oneConnection(t, e)
			sameAsDatabase(t, e.db, "tdocs", nil, "no tenant")
			for _, tn := range []string{"a", "b", "a"} {
				must(t, set(e.db, tn))
				sameAsDatabase(t, e.db, "tdocs", tenants[tn], "tenant "+tn)
			}
		})
		t.Run(name+"/Connection", func(t *testing.T) {
			e := pgTenantLogin(t)
			sameAsDatabase(t, e.db, "tdocs", nil, "no tenant")
			for _, tn := range []string{"a", "b"} {
				must(t, e.db.Connection(func(c *gorm.DB) error {
					must(t, set(c, tn))
					sameAsDatabase(t, c, "tdocs", tenants[tn], "tenant "+tn)
					return set(c, "")
				}))
			}
		})
	}
	t.Run("transaction-local", func(t *testing.T) {
		e := pgTenantLogin(t, gormcache.ReadsInTransactions())
		sameAsDatabase(t, e.db, "tdocs", nil, "no tenant")
		for _, tn := range []string{"a", "b"} {
			must(t, e.db.Transaction(func(tx *gorm.DB) error {
				must(t, tx.Exec("SELECT set_config('app.tenant', ?, true)", tn).Error)
				sameAsDatabase(t, tx, "tdocs", tenants[tn], "in a transaction, tenant "+tn)
				return nil
			}))
		}
		e.mustBeCached(t, "no tenant", func() error {
			return e.db.Scopes(gormcache.Cacheable()).Table("tdocs").Pluck("name", &[]string{}).Error
		})
		sameAsDatabase(t, e.db, "tdocs", nil, "after the transactions")
		if n := e.cache.Stats().Bypasses["session_state"]; n != 0 {
			t.Fatalf("a transaction-local set_config stopped caching: %v", e.cache.Stats().Bypasses)
		}
	})
}

// sqliteItemsFile creates a SQLite database file with items(id, name).
func sqliteItemsFile(t *testing.T, rows ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), uniqueName("aux_")+".db")
	db, err := sql.Open("sqlite3", path)
	must(t, err)
	defer db.Close()
	_, err = db.Exec("CREATE TABLE items (id integer PRIMARY KEY, name text)")
	must(t, err)
	for i, r := range rows {
		_, err = db.Exec("INSERT INTO items VALUES (?, ?)", i+1, r)
		must(t, err)
	}
	return path
}

func TestSessionSQLiteAttach(t *testing.T) {
	e := newEnv(t, dbNamed(t, "sqlite"), stores[0], querycache.Options{})
	fileA, fileB := sqliteItemsFile(t, "a one", "a two"), sqliteItemsFile(t, "b one")
	read := func(c *gorm.DB, s scope) []string {
		var out []string
		must(t, c.Scopes(s).Raw("SELECT name FROM aux.items ORDER BY id").Scan(&out).Error)
		return out
	}
	check := func(c *gorm.DB, want []string, when string) {
		t.Helper()
		for i := 0; i < 2; i++ {
			if got, direct := read(c, gormcache.Cacheable()), read(c, gormcache.NoCache()); !slices.Equal(got, want) || !slices.Equal(direct, want) {
				t.Fatalf("%s: cached %q, database %q; want %q", when, got, direct, want)
			}
		}
	}
	// Two connections, each with its own file attached under one name: the
	// same SQL reads different rows on each (ATTACH itself invalidates, so
	// both attach before either reads).
	must(t, e.db.Connection(func(a *gorm.DB) error {
		must(t, a.Exec("ATTACH DATABASE ? AS aux", fileA).Error)
		must(t, e.db.Connection(func(b *gorm.DB) error {
			must(t, b.Exec("ATTACH DATABASE ? AS aux", fileB).Error)
			check(a, []string{"a one", "a two"}, "file a attached")
			check(b, []string{"b one"}, "file b attached")
			return b.Exec("DETACH DATABASE aux").Error
		}))
		return a.Exec("DETACH DATABASE aux").Error
	}))
	if e.cache.Stats().Bypasses["session_state"] == 0 {
		t.Fatalf("not counted: %v", e.cache.Stats().Bypasses)
	}
}

func TestSessionSQLitePragma(t *testing.T) {
	e := newEnv(t, dbNamed(t, "sqlite"), stores[0], querycache.Options{})
	seedData(t, e.db)
	oneConnection(t, e)
	count := func(s scope) int64 {
		var n int64
		must(t, e.db.Scopes(s).Model(&Post{}).Where("title LIKE ?", "FIRST%").Count(&n).Error)
		return n
	}
	check := func(want int64, when string) {
		t.Helper()
		for i := 0; i < 2; i++ {
			if got, direct := count(gormcache.Cacheable()), count(gormcache.NoCache()); got != want || direct != want {
				t.Fatalf("%s: cached %d, database %d; want %d", when, got, direct, want)
			}
		}
	}
	check(1, "LIKE ignores case")
	must(t, e.db.Exec("PRAGMA case_sensitive_like = ON").Error)
	check(0, "case_sensitive_like on")
	must(t, e.db.Exec("PRAGMA case_sensitive_like = OFF").Error)
	check(1, "case_sensitive_like off")
}

// A temporary table shadows the permanent one of the same name on the
// connection that created it, while other connections read the permanent
// one.
func TestSessionTempTableShadows(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		seedData(t, e.db)
		permanent, temporary := []string{"go", "python"}, []string{"cobol"}
		drop := "DROP TABLE temp.languages"
		if e.dialect == "postgres" {
			drop = "DROP TABLE pg_temp.languages"
		}
		for _, connFirst := range []bool{true, false} {
			must(t, e.db.Connection(func(c *gorm.DB) error {
				// One statement creates and fills it (its own invalidation
				// then comes before both reads).
				must(t, c.Exec("CREATE TEMP TABLE languages AS SELECT 1 AS id, 'cobol' AS name").Error)
				if connFirst {
					sameAsDatabase(t, c, "languages", temporary, "the connection with the temporary table")
					sameAsDatabase(t, e.db, "languages", permanent, "another connection")
				} else {
					sameAsDatabase(t, e.db, "languages", permanent, "another connection")
					sameAsDatabase(t, c, "languages", temporary, "the connection with the temporary table")
				}
				return c.Exec(drop).Error
			}))
		}
		sameAsDatabase(t, e.db, "languages", permanent, "the pool after")
		if e.cache.Stats().Bypasses["temp_table"] == 0 {
			t.Fatalf("not counted: %v", e.cache.Stats().Bypasses)
		}
	})
}

// warnLog is a GORM logger that keeps its warnings.
type warnLog struct {
	logger.Interface
	mu    sync.Mutex
	warns []string
}

func (w *warnLog) LogMode(logger.LogLevel) logger.Interface { return w }
func (w *warnLog) Warn(_ context.Context, msg string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warns = append(w.warns, fmt.Sprintf(msg, args...))
}
func (w *warnLog) Trace(context.Context, time.Time, func() (string, int64), error) {}

func TestSessionStateWarnsOnce(t *testing.T) {
	log := &warnLog{Interface: logger.Discard}
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "w.db")), &gorm.Config{Logger: log})
	must(t, err)
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	must(t, err)
	defer cache.Close()
	must(t, db.Use(gormcache.New(cache)))
	for i := 0; i < 3; i++ {
		must(t, db.Exec("PRAGMA case_sensitive_like = ON").Error)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.warns) != 1 || !strings.Contains(log.warns[0], "SessionStateInKey") {
		t.Fatalf("want one warning that says how to keep caching; got %q", log.warns)
	}
}
