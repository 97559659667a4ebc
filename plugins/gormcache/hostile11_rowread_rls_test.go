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

type H11Doc struct {
	ID   int
	Name string
}

func (H11Doc) TableName() string { return "h11_docs" }

type H11Grant struct {
	ID    int
	DocID int
}

func (H11Grant) TableName() string { return "h11_grants" }

// A row-level security policy may read other tables: which rows of
// h11_docs a role sees depends on h11_grants. The plugin takes the tables
// a read depends on from its SQL only (SELECT ... FROM h11_docs WHERE id =
// 1): a lookup by primary key is keyed by doc 1 (and a list by the table
// h11_docs), so granting the doc (a write of h11_grants only) left the
// cached "not found" (the cached empty list) served. Fixed: reads of a
// table with row-level security are refused.
func TestHostile11RowSecurityPolicyReadsOtherTable(t *testing.T) {
	admin := pgAdmin(t)
	dsn := testenv.PostgresSchema(t)
	m := regexp.MustCompile(`search_path=(\w+)`).FindStringSubmatch(dsn)
	if m == nil {
		t.Fatalf("no search_path in %q", dsn)
	}
	schema := m[1]
	role := pgRoles(t, admin, 1, true)[0]
	adminExec(t, admin,
		"CREATE TABLE "+schema+".h11_docs (id int PRIMARY KEY, name text)",
		"CREATE TABLE "+schema+".h11_grants (id serial PRIMARY KEY, doc_id int)",
		"ALTER TABLE "+schema+".h11_docs ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY granted ON "+schema+".h11_docs USING (EXISTS (SELECT 1 FROM "+schema+".h11_grants g WHERE g.doc_id = h11_docs.id))",
		"INSERT INTO "+schema+".h11_docs VALUES (1, 'd1'), (2, 'd2')",
		"INSERT INTO "+schema+".h11_grants (doc_id) VALUES (2)",
		"GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+role,
		"GRANT SELECT ON "+schema+".h11_docs TO "+role,
		"GRANT SELECT, INSERT, DELETE ON "+schema+".h11_grants TO "+role,
		"GRANT USAGE ON SEQUENCE "+schema+".h11_grants_id_seq TO "+role)
	sep := " "
	if strings.Contains(dsn, "://") {
		sep = "&"
	}
	d := dbKind{"postgres", func(*testing.T) gorm.Dialector { return postgres.Open(dsn + sep + "user=" + role) }}
	e := newEnv(t, d, memoryStore, querycache.Options{})

	byPK := func(db *gorm.DB) (any, error) {
		var r H11Doc
		err := db.First(&r, 1).Error
		return r, err
	}
	list := func(db *gorm.DB) (any, error) {
		var r []H11Doc
		err := db.Order("id").Find(&r).Error
		return r, err
	}
	// Fixed: a table with row-level security is refused (row_security),
	// so each read asks the database and sees the grants as they are.
	check := func(name string, q func(*gorm.DB) (any, error), write func(*gorm.DB) error) {
		t.Helper()
		_, _ = q(e.db.Scopes(gormcache.Cacheable()))
		if n := e.statements(func() { _, _ = q(e.db.Scopes(gormcache.Cacheable())) }); n == 0 {
			t.Fatalf("%s: served from the cache", name)
		}
		must(t, write(e.db))
		got, gerr := q(e.db.Scopes(gormcache.Cacheable()))
		want, werr := q(e.db.Scopes(gormcache.NoCache()))
		if !sameAnswer(got, gerr, want, werr) {
			t.Errorf("%s: stale after write: cached %s (%v), database %s (%v)", name, js(got), gerr, js(want), werr)
		}
	}
	check("by primary key, granted", byPK, func(db *gorm.DB) error {
		return db.Create(&H11Grant{DocID: 1}).Error
	})
	check("list, revoked", list, func(db *gorm.DB) error {
		return db.Where("doc_id = ?", 2).Delete(&H11Grant{}).Error
	})
	if r := e.cache.Stats().Refusals["row_security"]; r == 0 {
		t.Fatalf("refusals %v, want row_security", e.cache.Stats().Refusals)
	}
}
