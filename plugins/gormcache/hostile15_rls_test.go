package gormcache_test

import (
	"regexp"
	"strings"
	"testing"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type H15Doc struct {
	ID   int
	Name string
}

func (H15Doc) TableName() string { return "h15_docs" }

// BUG (stale read, C1): a row-level security policy is an expression
// PostgreSQL adds to every statement reading (or writing) the table; one
// calling a volatile function (an access log, a read counter) writes on
// every read, and no text shows the call. Reads of such a table are
// refused for caching (row_security), so each goes to the database, but
// nothing looks for the policy's function: dependents.go learns no
// policies, callsHiddenWriter finds no row-typed function or view, and the
// read, which wrote languages, invalidates nothing.
func TestHostile15RowSecurityPolicyCallsWriter(t *testing.T) {
	admin := pgAdmin(t)
	dsn := testenv.PostgresSchema(t)
	m := regexp.MustCompile(`search_path=(\w+)`).FindStringSubmatch(dsn)
	if m == nil {
		t.Fatalf("no search_path in %q", dsn)
	}
	schema := m[1]
	role := pgRoles(t, admin, 1, true)[0]
	adminExec(t, admin, "GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+role)
	sep := " "
	if strings.Contains(dsn, "://") {
		sep = "&"
	}
	d := dbKind{"postgres", func(*testing.T) gorm.Dialector { return postgres.Open(dsn + sep + "user=" + role) }}
	e := newEnv(t, d, memoryStore, querycache.Options{})
	must(t, e.db.AutoMigrate(&H15Doc{}))
	must(t, e.db.Create(&Language{ID: 7, Name: "go"}).Error)
	must(t, e.db.Create(&H15Doc{ID: 1, Name: "d1"}).Error)
	for _, q := range []string{
		h15WriterFn,
		`CREATE FUNCTION h15_seen(x bigint) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$ BEGIN PERFORM h15_w(x); RETURN true; END $$`,
		"ALTER TABLE h15_docs ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE h15_docs FORCE ROW LEVEL SECURITY",
		"CREATE POLICY h15_logged ON h15_docs USING (h15_seen(id))",
	} {
		must(t, e.db.Exec(q).Error)
	}
	lookup := func() string {
		var l Language
		must(t, e.db.Scopes(gormcache.Cacheable()).First(&l, 7).Error)
		return l.Name
	}
	e.mustBeCached(t, "First(&Language{}, 7)", func() error { lookup(); return nil })
	var doc H15Doc
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&doc, 1).Error)
	var inDB string
	must(t, e.db.Raw("SELECT name FROM languages WHERE id = 7").Scan(&inDB).Error)
	if inDB == "go" {
		t.Fatalf("the policy's function did not run: the probe proves nothing")
	}
	if got := lookup(); got != inDB {
		t.Errorf("First(&Language{}, 7) served %q; the database holds %q: First(&H15Doc{}, 1) read h15_docs, whose row-level security policy calls the volatile h15_seen (which wrote languages); no text shows the call and nothing was invalidated", got, inDB)
	}
}
