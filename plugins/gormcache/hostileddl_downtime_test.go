package gormcache_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"querycache.dev/migrations"
	"querycache.dev/plugins/gormcache"
)

// The listener covers the tables the application caches
// (ListenerOptions.Tables, as the README asks). Its connection drops; while
// it is away another program adds ON DELETE CASCADE from ddl_children to
// ddl_parents (the DDL notification is lost with the connection). On
// reconnection the listener invalidates its tables, which refreshes their
// rows, but not the catalog: the plugins keep the facts learned before the
// DDL ("nothing depends on ddl_parents"). A delete of a parent through the
// plugin then leaves its children's cached read served, though
// PostgreSQL deleted them. Control: the same with Tables empty (cover:
// everything, which makes the plugins forget).
func TestHostileDDLMissedWhileListenerDown(t *testing.T) {
	for _, c := range []struct {
		name   string
		tables []string
		down   bool
	}{{"tables-empty", nil, true}, {"tables-named-control-no-downtime", []string{"ddl_parents"}, false}, {"tables-named", []string{"ddl_parents"}, true}} {
		tables := c.tables
		t.Run(c.name, func(t *testing.T) {
			dsn, dbname := hddlDatabase(t)
			channel := "qc_hddl_" + owRandom()
			conn, err := sql.Open("pgx", dsn)
			must(t, err)
			defer conn.Close()
			ddlExec(t, conn, `CREATE TABLE ddl_parents (id bigserial PRIMARY KEY, name text);
				CREATE TABLE ddl_children (id bigserial PRIMARY KEY, parent_id bigint);
				INSERT INTO ddl_parents (name) VALUES ('p1'), ('p2');
				INSERT INTO ddl_children (parent_id) VALUES (1), (1), (2);
				CREATE TABLE ddl_things (id bigserial PRIMARY KEY, name text); INSERT INTO ddl_things (name) VALUES ('old');
				CREATE TABLE ddl_new (id bigserial PRIMARY KEY, name text); INSERT INTO ddl_new (name) VALUES ('new')`)
			// Row triggers on ddl_parents only: the README's advice, watch
			// only the tables written outside the application.
			if _, err := migrations.InstallPostgresTriggers(context.Background(), conn, migrations.Options{Channel: channel, Tables: []string{"ddl_parents"}}); err != nil {
				t.Fatal(err)
			}
			must(t, migrations.InstallPostgresDDLNotify(context.Background(), conn, migrations.Options{Channel: channel}))
			db, l, _ := hddlApp(t, dsn, channel, hddlOpts{tables: tables})
			// The plugin learns ddl_parents' facts: nothing depends on it.
			must(t, db.Model(&ddlParent{}).Where("id = ?", 2).Update("name", "p2b").Error)
			children := func() (int, bool) {
				var cs []ddlChild
				tx := db.Scopes(gormcache.Cacheable()).Where("parent_id = ?", 1).Find(&cs)
				must(t, tx.Error)
				return len(cs), gormcache.FromCache(tx)
			}
			children()
			thingsQ := "SELECT id, name FROM ddl_things ORDER BY id"
			hddlRead(db, thingsQ)
			hddlRead(db, thingsQ)

			// The listener's connection goes away and cannot come back
			// until the DDL is done.
			ctx := context.Background()
			other, err := conn.Conn(ctx)
			must(t, err)
			defer other.Close()
			admin, err := sql.Open("pgx", "host=127.0.0.1 user=postgres dbname=test sslmode=disable")
			must(t, err)
			defer admin.Close()
			if c.down {
				ddlExec(t, admin, "ALTER DATABASE "+dbname+" ALLOW_CONNECTIONS false")
			}
			reopened := false
			reopen := func() {
				if !reopened {
					reopened = true
					_, _ = admin.Exec("ALTER DATABASE " + dbname + " ALLOW_CONNECTIONS true")
				}
			}
			defer reopen()
			if c.down {
				ddlExec(t, admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+dbname+"' AND application_name = 'querycache-listener'")
				for i := 0; l.Listening() && i < 200; i++ {
					time.Sleep(10 * time.Millisecond)
				}
				if l.Listening() {
					t.Fatal("listener still listening")
				}
			}
			if _, err := other.ExecContext(ctx, "BEGIN; ALTER TABLE ddl_things RENAME TO ddl_old; ALTER TABLE ddl_new RENAME TO ddl_things; COMMIT"); err != nil {
				t.Fatal(err)
			}
			if _, err := other.ExecContext(ctx, "ALTER TABLE ddl_children ADD CONSTRAINT ddl_fk FOREIGN KEY (parent_id) REFERENCES ddl_parents (id) ON DELETE CASCADE"); err != nil {
				t.Fatal(err)
			}
			reopen()
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			must(t, l.Ready(rctx))
			ddlSync(t, l)
			hddlSame(t, db, conn, thingsQ, "ddl_things (written by the application alone, so not in Tables) swapped by renames while the listener was away")
			if n, _ := children(); n != 2 {
				t.Fatalf("%d children of parent 1, want 2", n)
			}
			if n, hit := children(); n != 2 || !hit {
				t.Fatalf("%d children (from the cache: %v), want 2 from the cache", n, hit)
			}
			must(t, db.Delete(&ddlParent{}, 1).Error) // PostgreSQL deletes its children
			ddlSync(t, l)
			if n, hit := children(); n != 0 {
				t.Fatalf("%d children of a deleted parent (from the cache: %v), the database has 0: the cascade added while the listener was away was not learned (stats %+v)", n, hit, l.Stats())
			}
		})
	}
}
