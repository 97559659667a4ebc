package invalidation

import (
	"reflect"
	"sync"
	"testing"

	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

func TestFromSQL(t *testing.T) {
	cat := keys.CatalogTable
	for _, c := range []struct {
		sql  string
		want querycache.Change
	}{
		{`INSERT INTO "posts" ("title") VALUES ($1)`, querycache.Change{Tables: []string{"posts"}}},
		{`UPDATE public.posts SET title = ? WHERE id = ?`, querycache.Change{Tables: []string{"posts"}}},
		{`DELETE FROM posts WHERE id IN (SELECT post_id FROM comments)`, querycache.Change{Tables: []string{"posts"}}},
		{`INSERT INTO a VALUES (1); DELETE FROM b`, querycache.Change{Tables: []string{"a", "b"}}},
		{`DROP INDEX idx_posts_title`, querycache.Change{All: true}},
		{`DO $$ BEGIN UPDATE posts SET x = 1; END $$`, querycache.Change{All: true}},
		{`this is not sql`, querycache.Change{All: true}},
		{`SELECT * FROM posts`, querycache.Change{}},
		{`SAVEPOINT sp1`, querycache.Change{}},
		{`SET search_path TO tenant_a`, querycache.Change{}},
		// DDL writes the catalog as an ordinary table, so that it
		// invalidates what reads the catalog.
		{`ALTER TABLE posts ADD COLUMN extra text`, querycache.Change{Tables: []string{cat, "posts"}}},
		{`ALTER TABLE tmp RENAME TO posts`, querycache.Change{Tables: []string{cat, "posts", "tmp"}}},
		{`CREATE TABLE "users" ("id" bigserial PRIMARY KEY)`, querycache.Change{Tables: []string{cat, "users"}}},
		{"CREATE INDEX `idx_users_name` ON `users`(`name`)", querycache.Change{Tables: []string{cat, "users"}}},
		{`DROP TABLE IF EXISTS "users"`, querycache.Change{Tables: []string{cat, "users"}}},
		{`COMMENT ON TABLE users IS 'x'`, querycache.Change{Tables: []string{cat, "users"}}},
		{`TRUNCATE users`, querycache.Change{Tables: []string{"users"}}},
		// CASCADE empties tables the text does not name: without the
		// schema, everything.
		{`TRUNCATE users CASCADE`, querycache.Change{All: true}},
		{`DROP TABLE users CASCADE`, querycache.Change{All: true}},
		{`PRAGMA foreign_keys = ON`, querycache.Change{Tables: []string{cat}}},
		{`PRAGMA table_info(users)`, querycache.Change{}},
		{`GRANT SELECT ON users TO bob`, querycache.Change{Tables: []string{cat}}},
		{`ANALYZE users`, querycache.Change{Tables: []string{cat}}},
		{`SELECT * FROM information_schema.tables`, querycache.Change{}},
		{`DELETE FROM sqlite_sequence WHERE name = 'users'`, querycache.Change{Tables: []string{cat}}},
		// A prepared transaction's writes become visible: tables unknown.
		{`COMMIT PREPARED 'tx1'`, querycache.Change{All: true}},
		// Text SQLite and PostgreSQL read differently: everything.
		{"SELECT 1 -- x\r; UPDATE t SET a = 1", querycache.Change{All: true}},
		{`SELECT $x$; DELETE FROM t; SELECT $x$`, querycache.Change{All: true}},
	} {
		if got := FromSQL(c.sql); !reflect.DeepEqual(got, c.want) {
			t.Errorf("FromSQL(%q) = %+v; want %+v", c.sql, got, c.want)
		}
	}
}

// TestFromSQLPostgresForms checks what the PostgreSQL statement forms of
// issue 7 item 5 invalidate when the application runs them as raw SQL.
func TestFromSQLPostgresForms(t *testing.T) {
	cat := keys.CatalogTable
	all := querycache.Change{All: true}
	tables := func(names ...string) querycache.Change { return querycache.Change{Tables: names} }
	for _, c := range []struct {
		sql  string
		want querycache.Change
	}{
		// MERGE writes its target only; WITH ... MERGE and writes in its WITH.
		{`MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)`, tables("t")},
		{`MERGE INTO t AS x USING (SELECT * FROM s) AS y ON x.id = y.id WHEN MATCHED AND EXISTS (SELECT 1 FROM q) THEN DELETE`, tables("t")},
		{`WITH d AS (DELETE FROM q RETURNING *) MERGE INTO t USING d ON t.id = d.id WHEN MATCHED THEN DELETE`, tables("q", "t")},
		{`MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING merge_action(), t.*`, tables("t")},
		{`MERGE t USING s ON true WHEN MATCHED THEN DELETE`, all},
		// A query whose WITH writes is a write.
		{`WITH x AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM x`, tables("a", "b")},
		{`WITH x AS (UPDATE a SET v = 1 RETURNING *) SELECT * FROM x`, tables("a")},
		{`WITH x AS (INSERT INTO a VALUES (1) ON CONFLICT (id) DO UPDATE SET v = excluded.v RETURNING *) SELECT * FROM x`, tables("a")},
		{`WITH x AS (WITH y AS (DELETE FROM a RETURNING *) SELECT * FROM y) SELECT * FROM x`, tables("a")},
		{`WITH x AS (DELETE FROM a RETURNING *) SELECT * INTO n FROM x`, tables(cat, "a", "n")},
		{`EXPLAIN ANALYZE WITH x AS (UPDATE a SET v = 1 RETURNING *) SELECT 1`, tables("a")},
		// TRUNCATE: every table; CASCADE: everything, unless the caller
		// expands Cascade from the schema.
		{`TRUNCATE a, b, ONLY c`, tables("a", "b", "c")},
		{`TRUNCATE TABLE a RESTART IDENTITY CASCADE`, all},
		// ALTER and DROP.
		{`ALTER TABLE a RENAME TO b`, tables(cat, "a", "b")},
		{`ALTER TABLE p ATTACH PARTITION c FOR VALUES FROM (1) TO (10)`, tables(cat, "c", "p")},
		{`ALTER TABLE p DETACH PARTITION c CONCURRENTLY`, tables(cat, "c", "p")},
		{`ALTER TABLE a DROP COLUMN x CASCADE`, all},
		{`DROP TABLE a, b`, tables(cat, "a", "b")},
		{`DROP TABLE a, b CASCADE`, all},
		{`DROP VIEW IF EXISTS v`, tables(cat, "v")},
		{`DROP MATERIALIZED VIEW m`, tables(cat, "m")},
		// Views, rules, triggers, policies: the relation they are on.
		{`CREATE OR REPLACE VIEW v AS SELECT * FROM a`, tables(cat, "v")},
		{`CREATE RULE r AS ON INSERT TO a DO INSTEAD INSERT INTO b VALUES (NEW.id)`, tables(cat, "a")},
		{`DROP RULE r ON a`, tables(cat, "a")},
		{`CREATE TRIGGER tr AFTER INSERT ON a FOR EACH ROW EXECUTE FUNCTION f()`, tables(cat, "a")},
		{`ALTER TRIGGER tr ON a RENAME TO tr2`, tables(cat, "a")},
		{`DROP TRIGGER IF EXISTS tr ON a`, tables(cat, "a")},
		{`CREATE POLICY p ON a USING (owner = current_user)`, tables(cat, "a")},
		{`ALTER POLICY p ON a USING (true)`, tables(cat, "a")},
		{`DROP POLICY p ON a`, tables(cat, "a")},
		// Functions change what calls them: everything.
		{`CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'`, all},
		{`DROP FUNCTION f()`, all},
		// REFRESH, COPY, CALL, DO.
		{`REFRESH MATERIALIZED VIEW CONCURRENTLY m WITH DATA`, tables("m")},
		{`REFRESH MATERIALIZED VIEW m WITH NO DATA`, tables("m")},
		{`COPY t FROM STDIN`, tables("t")},
		{`COPY BINARY t FROM STDIN`, tables("t")},
		{`COPY t TO STDOUT`, querycache.Change{}},
		{`COPY (SELECT * FROM t) TO STDOUT`, querycache.Change{}},
		{`COPY (DELETE FROM t RETURNING *) TO STDOUT`, tables("t")},
		{`CALL proc()`, all},
		{`DO $$ BEGIN DELETE FROM t; END $$`, all},
		// The same class.
		{`UPDATE a SET v = b.v FROM b WHERE a.id = b.id`, tables("a")},
		{`DELETE FROM a USING b WHERE a.id = b.id`, tables("a")},
		{`SELECT * INTO n FROM a`, tables(cat, "n")},
		{`CREATE TABLE n AS SELECT * FROM a`, tables(cat, "n")},
		{`EXPLAIN ANALYZE DELETE FROM a`, tables("a")},
		{`EXPLAIN (ANALYZE, BUFFERS) MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE`, tables("t")},
		// A table function read by a write leaves what it writes known.
		{`INSERT INTO t (id, v) SELECT * FROM unnest($1::int[], $2::text[])`, tables("t")},
		{`UPDATE t SET v = g FROM generate_series(1, 3) AS g WHERE t.id = g`, tables("t")},
		{`MERGE INTO t USING unnest($1::int[]) AS u(id) ON t.id = u.id WHEN MATCHED THEN DELETE`, tables("t")},
		{`CREATE TABLE n AS SELECT * FROM generate_series(1, 3)`, tables(cat, "n")},
		{`INSERT INTO $1 SELECT * FROM unnest($2::int[])`, all},
		{`INSERT INTO t SELECT * FROM unnest($1::int[]); DROP INDEX i`, all},
	} {
		if got := FromSQLDialect(c.sql, sqlinspect.DialectPostgres); !reflect.DeepEqual(got, c.want) {
			t.Errorf("FromSQLDialect(%q, DialectPostgres) = %+v; want %+v", c.sql, got, c.want)
		}
		if got := FromSQL(c.sql); !got.All && !reflect.DeepEqual(got, c.want) {
			t.Errorf("FromSQL(%q) = %+v; want %+v or everything", c.sql, got, c.want)
		}
	}
}

// TestFromSQLDialect checks that a write hidden by another dialect's
// syntax is seen by the dialect that runs it, and not invented by the other.
func TestFromSQLDialect(t *testing.T) {
	pg, lite := sqlinspect.DialectPostgres, sqlinspect.DialectSQLite
	for _, c := range []struct {
		sql  string
		d    sqlinspect.Dialect
		want querycache.Change
	}{
		// PostgreSQL ends a -- comment at a lone carriage return.
		{"SELECT 1 -- x\r; UPDATE t SET a = 1", pg, querycache.Change{Tables: []string{"t"}}},
		{"SELECT 1 -- x\r; UPDATE t SET a = 1", lite, querycache.Change{}},
		// SQLite has no E'' strings: the quote ends at the backslash.
		{`SELECT e'\' FROM logs; DELETE FROM t; --'`, lite, querycache.Change{Tables: []string{"t"}}},
		{`SELECT e'\' FROM logs; DELETE FROM t; --'`, pg, querycache.Change{}},
		// SQLite has no dollar quotes: $x$ is a parameter.
		{`SELECT $x$; DELETE FROM t; SELECT $x$`, lite, querycache.Change{Tables: []string{"t"}}},
		{`SELECT $x$; DELETE FROM t; SELECT $x$`, pg, querycache.Change{}},
		// SQLite comments do not nest.
		{`SELECT 1 /* /* */ ; DELETE FROM t; -- */`, lite, querycache.Change{Tables: []string{"t"}}},
		{`SELECT 1 /* /* */ ; DELETE FROM t; -- */`, pg, querycache.Change{}},
		// DDL in either dialect writes the catalog.
		{`CREATE TABLE t (id int)`, pg, querycache.Change{Tables: []string{keys.CatalogTable, "t"}}},
		{`CREATE TABLE t (id int)`, lite, querycache.Change{Tables: []string{keys.CatalogTable, "t"}}},
	} {
		if got := FromSQLDialect(c.sql, c.d); !reflect.DeepEqual(got, c.want) {
			t.Errorf("FromSQLDialect(%q, %d) = %+v; want %+v", c.sql, c.d, got, c.want)
		}
	}
}

func TestBufferCommitAppliesOnce(t *testing.T) {
	b := NewBuffer()
	b.Add(querycache.Change{Rows: []querycache.Row{{Table: "posts", PK: "1"}}})
	b.Add(querycache.Change{Tables: []string{"Comments"}})
	if !b.Wrote([]string{"posts"}) || !b.Wrote([]string{`"comments"`}) || b.Wrote([]string{"authors"}) {
		t.Fatal("Wrote does not reflect what was added")
	}
	ch := b.Commit()
	if len(ch.Rows) != 1 || len(ch.Tables) != 1 {
		t.Fatalf("commit returned %+v", ch)
	}
	if again := b.Commit(); !again.Empty() {
		t.Fatalf("second commit returned %+v", again)
	}
}

func TestBufferRollbackDrops(t *testing.T) {
	b := NewBuffer()
	b.Add(querycache.Change{All: true})
	if !b.Wrote([]string{"anything"}) {
		t.Fatal("an unattributed write must count as writing every table")
	}
	b.Rollback()
	if ch := b.Commit(); !ch.Empty() {
		t.Fatalf("commit after rollback returned %+v", ch)
	}
}

func TestBufferConcurrentAdds(t *testing.T) {
	b := NewBuffer()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.Add(querycache.Change{Tables: []string{"t"}})
			b.Wrote([]string{"t"})
		}()
	}
	wg.Wait()
	if n := len(b.Commit().Tables); n != 50 {
		t.Fatalf("%d of 50 changes kept", n)
	}
}
