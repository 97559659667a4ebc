package gormcache_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"gorm.io/gorm"

	"querycache.dev/invalidation"
	"querycache.dev/migrations"
	"querycache.dev/plugins/gormcache"
)

// DDL made by a program without the plugin (a migration tool, psql) on
// PostgreSQL: migrations.InstallPostgresDDLNotify's event trigger tells
// the listener, which invalidates everything, and the plugins forget the
// schema they learned. These tests run in a database of their own
// (h16Database): an event trigger fires for every session of its database.

// ddlThing is a row of the table another program drops and creates again.
type ddlThing struct {
	ID   uint
	Name string
}

func (ddlThing) TableName() string { return "ddl_things" }

// ddlApp opens GORM with the plugin on a memory store and a listener on
// channel covering everything, on dsn.
func ddlApp(t *testing.T, dsn, channel string) (*gorm.DB, *invalidation.Listener) {
	t.Helper()
	a := owOpen(t, dsn, dsn, channel, invalidation.ListenerOptions{Tables: []string{}})
	return a.db, a.l
}

func ddlSync(t *testing.T, l *invalidation.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v (%+v)", err, l.Stats())
	}
}

func ddlExec(t *testing.T, conn *sql.DB, q string) {
	t.Helper()
	if _, err := conn.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// ddlNames reads the things' names through a cached query, and whether
// the cache served them.
func ddlNames(t *testing.T, db *gorm.DB) (string, bool) {
	t.Helper()
	var things []ddlThing
	tx := db.Scopes(gormcache.Cacheable()).Order("id").Find(&things)
	if tx.Error != nil {
		t.Fatal(tx.Error)
	}
	s := ""
	for _, th := range things {
		s += th.Name + ";"
	}
	return s, gormcache.FromCache(tx)
}

// TestOutsideDDLTableRecreated: another program drops the table and
// creates it again with other rows, in one transaction. No row trigger
// fires (the triggers go with the table), so the listener heard nothing
// and the cached read was served until its TTL: the first half of the
// test shows that, before the event trigger is installed. With it, the
// read after the swap returns the new rows; DDL of temporary objects
// alone (a report's scratch table) invalidates nothing.
func TestOutsideDDLTableRecreated(t *testing.T) {
	dsn := h16Database(t)
	channel := "qc_ddl_" + owRandom()
	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	swap := func(names ...string) {
		q := "BEGIN; DROP TABLE IF EXISTS ddl_things; CREATE TABLE ddl_things (id bigserial PRIMARY KEY, name text);"
		for _, n := range names {
			q += " INSERT INTO ddl_things (name) VALUES ('" + n + "');"
		}
		ddlExec(t, conn, q+" COMMIT;")
	}
	swap("a", "b")
	db, l := ddlApp(t, dsn, channel)
	read := func(want string, wantHit bool) {
		t.Helper()
		got, hit := ddlNames(t, db)
		if got != want || hit != wantHit {
			t.Fatalf("read %q (from the cache: %v), want %q (%v)", got, hit, want, wantHit)
		}
	}
	read("a;b;", false)
	read("a;b;", true)

	// Without the event trigger: the swap is not heard.
	swap("c")
	ddlSync(t, l)
	read("a;b;", true) // stale: the gap the event trigger closes

	ctx := context.Background()
	if err := migrations.InstallPostgresDDLNotify(ctx, conn, migrations.Options{Channel: channel}); err != nil {
		t.Fatal(err)
	}
	if err := migrations.InstallPostgresDDLNotify(ctx, conn, migrations.Options{Channel: channel}); err != nil {
		t.Fatalf("installing again: %v", err)
	}
	ddlSync(t, l) // the install's own DDL
	read("c;", false)
	read("c;", true)

	swap("d", "e")
	ddlSync(t, l)
	read("d;e;", false)
	read("d;e;", true)

	// A renamed swap (the new table built aside, then moved in).
	ddlExec(t, conn, "CREATE TABLE ddl_new (id bigserial PRIMARY KEY, name text); INSERT INTO ddl_new (name) VALUES ('f')")
	ddlSync(t, l)
	read("d;e;", false)
	ddlExec(t, conn, "BEGIN; ALTER TABLE ddl_things RENAME TO ddl_old; ALTER TABLE ddl_new RENAME TO ddl_things; COMMIT")
	ddlSync(t, l)
	read("f;", false)

	// Temporary objects alone: nothing is invalidated.
	read("f;", true)
	ddlExec(t, conn, "BEGIN; CREATE TEMP TABLE scratch (id int PRIMARY KEY, x text); CREATE INDEX ON scratch (x); DROP TABLE scratch; COMMIT")
	ddlSync(t, l)
	read("f;", true)

	// Uninstalled: heard no more (and uninstalling twice is harmless).
	must(t, migrations.UninstallPostgresDDLNotify(ctx, conn, migrations.Options{Channel: channel}))
	must(t, migrations.UninstallPostgresDDLNotify(ctx, conn, migrations.Options{Channel: channel}))
	var n int
	if err := conn.QueryRow("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'querycache_ddl%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d event triggers left after the uninstall (%v)", n, err)
	}
}

// ddlParent and ddlChild: another program adds a foreign key with ON
// DELETE CASCADE from the children to the parents.
type ddlParent struct {
	ID   uint
	Name string
}

func (ddlParent) TableName() string { return "ddl_parents" }

type ddlChild struct {
	ID       uint
	ParentID uint
}

func (ddlChild) TableName() string { return "ddl_children" }

// TestOutsideDDLForgetsFactsOnMemoryStore: the plugin learned that nothing
// depends on ddl_parents (a write to it), then another program added a
// foreign key with ON DELETE CASCADE to it. The listener's invalidation
// of that DDL emptied the cache, but on the memory store nothing told the
// plugin: its facts still said "no dependents", and deleting a parent
// through it invalidated the parent alone while PostgreSQL deleted its
// children, whose cached read went on being served. Now a change of the
// catalog applied to the cache by anyone makes its plugins forget.
func TestOutsideDDLForgetsFactsOnMemoryStore(t *testing.T) {
	dsn := h16Database(t)
	channel := "qc_ddl_" + owRandom()
	conn, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ddlExec(t, conn, `CREATE TABLE ddl_parents (id bigserial PRIMARY KEY, name text);
		CREATE TABLE ddl_children (id bigserial PRIMARY KEY, parent_id bigint);
		INSERT INTO ddl_parents (name) VALUES ('p1'), ('p2');
		INSERT INTO ddl_children (parent_id) VALUES (1), (1), (2)`)
	ctx := context.Background()
	if err := migrations.InstallPostgresDDLNotify(ctx, conn, migrations.Options{Channel: channel}); err != nil {
		t.Fatal(err)
	}
	db, l := ddlApp(t, dsn, channel)
	// The plugin learns ddl_parents' facts: nothing depends on it yet.
	must(t, db.Model(&ddlParent{}).Where("id = ?", 2).Update("name", "p2b").Error)
	children := func() (int, bool) {
		var cs []ddlChild
		tx := db.Scopes(gormcache.Cacheable()).Where("parent_id = ?", 1).Find(&cs)
		must(t, tx.Error)
		return len(cs), gormcache.FromCache(tx)
	}

	ddlExec(t, conn, "ALTER TABLE ddl_children ADD CONSTRAINT ddl_fk FOREIGN KEY (parent_id) REFERENCES ddl_parents (id) ON DELETE CASCADE")
	ddlSync(t, l)
	if n, _ := children(); n != 2 {
		t.Fatalf("%d children of parent 1, want 2", n)
	}
	if n, hit := children(); n != 2 || !hit {
		t.Fatalf("%d children of parent 1 (from the cache: %v), want 2 from the cache", n, hit)
	}
	must(t, db.Delete(&ddlParent{}, 1).Error) // PostgreSQL deletes its children
	if n, hit := children(); n != 0 {
		t.Fatalf("%d children of a deleted parent (from the cache: %v): the cascade, added by another program, was not followed", n, hit)
	}
}
