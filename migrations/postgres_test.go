package migrations_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"querycache.dev/internal/testenv"
	"querycache.dev/migrations"
)

// pgEnv is one test's PostgreSQL world: its own schema (the DSN's
// search_path), its own channel, a database/sql handle to install and
// write with, and a plain pgx connection LISTENing on the channel.
type pgEnv struct {
	t       *testing.T
	dsn     string
	schema  string
	channel string
	db      *sql.DB
	lc      *pgx.Conn
}

func newPG(t *testing.T) *pgEnv {
	t.Helper()
	dsn := testenv.PostgresSchema(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &pgEnv{t: t, dsn: dsn, db: db, channel: "qc_test_" + randHex(6)}
	if err := db.QueryRow("SELECT current_schema()").Scan(&e.schema); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.lc, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.lc.Close(context.Background()) })
	if _, err := e.lc.Exec(ctx, "LISTEN "+pgx.Identifier{e.channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return e
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (e *pgEnv) opts(tables ...string) migrations.Options {
	return migrations.Options{Schema: e.schema, Tables: tables, Channel: e.channel}
}

func (e *pgEnv) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
}

func (e *pgEnv) install(tables ...string) []migrations.TableResult {
	e.t.Helper()
	res, err := migrations.InstallPostgresTriggers(context.Background(), e.db, e.opts(tables...))
	if err != nil {
		e.t.Fatalf("install: %v", err)
	}
	return res
}

// q is the schema-qualified name of a table of this test, as payloads
// spell it.
func (e *pgEnv) q(table string) string { return e.schema + "." + table }

// payload is the decoded notification payload.
type payload struct {
	V  int        `json:"v"`
	Op string     `json:"op"`
	T  []string   `json:"t"`
	K  [][]string `json:"k"`
	// HasK tells "k" absent from "k" empty.
	HasK bool `json:"-"`
	Raw  string
}

// next returns the next notification on the test's channel, failing after
// a generous timeout (a notification that never comes is the failure, not
// its delay).
func (e *pgEnv) next() payload {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := e.lc.WaitForNotification(ctx)
	if err != nil {
		e.t.Fatalf("waiting for a notification: %v", err)
	}
	if n.Channel != e.channel {
		e.t.Fatalf("notification on channel %q, want %q", n.Channel, e.channel)
	}
	return decode(e.t, n.Payload)
}

func decode(t *testing.T, s string) payload {
	t.Helper()
	var p payload
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		t.Fatalf("payload %q: %v", s, err)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(s), &m)
	_, p.HasK = m["k"]
	p.Raw = s
	if len(s) > 7999 {
		t.Fatalf("payload is %d bytes, over 7999", len(s))
	}
	if p.V != 1 {
		t.Fatalf("payload %s: v=%d", s, p.V)
	}
	return p
}

// none asserts that no notification is pending: it sends a marker on the
// channel and checks that the marker is the next one delivered. The
// server's queue is in commit order, so anything committed before the
// marker would come first; no sleeping, no timing.
func (e *pgEnv) none() {
	e.t.Helper()
	e.exec("SELECT pg_notify($1, 'marker')", e.channel)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := e.lc.WaitForNotification(ctx)
	if err != nil {
		e.t.Fatalf("waiting for the marker: %v", err)
	}
	if n.Payload != "marker" {
		e.t.Fatalf("unexpected notification %s before the marker", n.Payload)
	}
}

// keys returns p's keys sorted, each joined with "|".
func (p payload) keys() []string {
	var out []string
	for _, k := range p.K {
		out = append(out, strings.Join(k, "|"))
	}
	sort.Strings(out)
	return out
}

func (e *pgEnv) expect(p payload, op string, tables []string, keys ...string) {
	e.t.Helper()
	if p.Op != op || !slices.Equal(p.T, tables) {
		e.t.Fatalf("payload %s: want op %s tables %q", p.Raw, op, tables)
	}
	if keys == nil {
		if p.HasK {
			e.t.Fatalf("payload %s: want no \"k\"", p.Raw)
		}
		return
	}
	sort.Strings(keys)
	if !p.HasK || !slices.Equal(p.keys(), keys) {
		e.t.Fatalf("payload %s: want keys %q", p.Raw, keys)
	}
}

func TestPostgresTriggersInsertUpdateDeleteTruncate(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
	res := e.install()
	if len(res) != 1 || res[0].Mode != "keys" || res[0].Note != "installed" {
		t.Fatalf("install result %+v", res)
	}
	items := []string{e.q("items")}

	e.exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
	e.expect(e.next(), "INSERT", items, "1", "2")

	// An update of the key itself names the old and the new key.
	e.exec("UPDATE items SET id = 7 WHERE id = 1")
	e.expect(e.next(), "UPDATE", items, "1", "7")

	e.exec("UPDATE items SET name = 'z'")
	e.expect(e.next(), "UPDATE", items, "2", "7")

	// A statement that changed nothing sends nothing.
	e.exec("UPDATE items SET name = 'y' WHERE id = 99")
	e.exec("DELETE FROM items WHERE false")
	e.none()

	e.exec("DELETE FROM items WHERE id = 2")
	e.expect(e.next(), "DELETE", items, "2")

	// INSERT ... ON CONFLICT DO UPDATE fires both the INSERT and the
	// UPDATE statement triggers, each with its own rows.
	e.exec("INSERT INTO items VALUES (7, 'c'), (8, 'd') ON CONFLICT (id) DO UPDATE SET name = excluded.name")
	got := []payload{e.next(), e.next()}
	sort.Slice(got, func(i, j int) bool { return got[i].Op < got[j].Op })
	e.expect(got[0], "INSERT", items, "8")
	e.expect(got[1], "UPDATE", items, "7")

	// COPY fires the INSERT statement trigger like INSERT does.
	ctx := context.Background()
	if _, err := e.lc.CopyFrom(ctx, pgx.Identifier{e.schema, "items"}, []string{"id", "name"},
		pgx.CopyFromRows([][]any{{int64(20), "c1"}, {int64(21), "c2"}})); err != nil {
		t.Fatal(err)
	}
	e.expect(e.next(), "INSERT", items, "20", "21")

	e.exec("TRUNCATE items")
	e.expect(e.next(), "TRUNCATE", items)

	// A rolled-back write notifies nobody.
	tx, err := e.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO items VALUES (50, 'x')"); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	e.none()
}

func TestPostgresTriggersInstallErrors(t *testing.T) {
	long := strings.Repeat("x", 64)
	for _, tc := range []struct {
		opts migrations.Options
		want string
	}{
		{migrations.Options{Channel: long}, "Channel"},
		{migrations.Options{Schema: long}, "Schema"},
		{migrations.Options{Tables: []string{"a", ""}}, "Tables[1] is empty"},
		{migrations.Options{Tables: []string{"a\x00b"}}, "NUL"},
	} {
		_, err := migrations.PostgresInstallSQL(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %q", tc.opts, err, tc.want)
		}
	}

	e := newPG(t)
	e.exec("CREATE TABLE present (id int PRIMARY KEY)")
	_, err := migrations.InstallPostgresTriggers(context.Background(), e.db, e.opts("present", "absent"))
	if err == nil || !strings.Contains(err.Error(), "no table absent") {
		t.Fatalf("install of a missing table: %v", err)
	}
	_, err = migrations.InstallPostgresTriggers(context.Background(), e.db, migrations.Options{Schema: e.schema + "_nope"})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("install into a missing schema: %v", err)
	}
	var n int
	if err := e.db.QueryRow("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'querycache%' AND tgrelid = 'present'::regclass").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a failed install left %d triggers (%v)", n, err)
	}
}

func TestPostgresTriggersCompositeUUIDTextKeys(t *testing.T) {
	e := newPG(t)
	// Key columns in index order, not table order: (b, a).
	e.exec("CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (b, a))")
	e.exec("CREATE TABLE docs (id uuid PRIMARY KEY, body text)")
	e.exec(`CREATE TABLE "Odd ""Keys""" (k text PRIMARY KEY)`)
	e.install()

	e.exec("INSERT INTO pairs VALUES (1, 'x', 0), (2, 'y,z', 0)")
	e.expect(e.next(), "INSERT", []string{e.q("pairs")}, "x|1", "y,z|2")
	e.exec("UPDATE pairs SET a = 3 WHERE a = 1")
	e.expect(e.next(), "UPDATE", []string{e.q("pairs")}, "x|1", "x|3")

	e.exec("INSERT INTO docs VALUES ('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'x')")
	e.expect(e.next(), "INSERT", []string{e.q("docs")}, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")

	// Text keys holding JSON's and SQL's special characters arrive intact.
	odd := []string{`q"uote`, `back\slash`, "new\nline", "ünï", "it's"}
	for _, k := range odd {
		e.exec(`INSERT INTO "Odd ""Keys""" VALUES ($1)`, k)
		e.expect(e.next(), "INSERT", []string{e.schema + `."Odd ""Keys"""`}, k)
	}
}

func TestPostgresTriggersNoPrimaryKey(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE logs (line text)")
	res := e.install()
	if len(res) != 1 || res[0].Mode != "tables" {
		t.Fatalf("install result %+v, want mode tables", res)
	}
	e.exec("INSERT INTO logs VALUES ('a')")
	e.expect(e.next(), "INSERT", []string{e.q("logs")})
	e.exec("UPDATE logs SET line = 'b'")
	e.expect(e.next(), "UPDATE", []string{e.q("logs")})
	e.exec("DELETE FROM logs")
	e.expect(e.next(), "DELETE", []string{e.q("logs")})

	// A primary key added later is picked up by installing again.
	e.exec("ALTER TABLE logs ADD COLUMN id serial PRIMARY KEY")
	res = e.install()
	if len(res) != 1 || res[0].Mode != "keys" || res[0].Note != "installed" {
		t.Fatalf("reinstall result %+v, want keys installed", res)
	}
	e.exec("INSERT INTO logs (line) VALUES ('c')")
	p := e.next()
	if !p.HasK || len(p.K) != 1 {
		t.Fatalf("after adding a key: %s", p.Raw)
	}
}

func TestPostgresTriggersOversizedStatement(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE big (id int PRIMARY KEY, v int)")
	e.exec("CREATE TABLE wide (id text PRIMARY KEY)")
	e.install()
	big := []string{e.q("big")}

	e.exec("INSERT INTO big SELECT g, 0 FROM generate_series(1, 5000) g")
	e.expect(e.next(), "INSERT", big)
	e.exec("UPDATE big SET v = 1")
	e.expect(e.next(), "UPDATE", big)
	e.exec("DELETE FROM big WHERE id > 10")
	e.expect(e.next(), "DELETE", big)

	// Under the row bound but over 7999 bytes: 100 keys of 100 bytes.
	e.exec("INSERT INTO wide SELECT g || repeat('x', 100) FROM generate_series(1, 100) g")
	e.expect(e.next(), "INSERT", []string{e.q("wide")})

	// The largest statement that still fits carries its keys.
	e.exec("DELETE FROM big")
	e.next()
	e.exec("INSERT INTO big SELECT g, 0 FROM generate_series(1, 1000) g")
	p := e.next()
	if !p.HasK || len(p.K) != 1000 {
		t.Fatalf("1000 small keys: %d bytes, k present %v, %d keys", len(p.Raw), p.HasK, len(p.K))
	}
}

func TestPostgresTriggersPartitions(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE m (id int, day int, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)")
	e.exec("CREATE TABLE m_a PARTITION OF m FOR VALUES FROM (0) TO (100) PARTITION BY RANGE (day)")
	e.exec("CREATE TABLE m_a1 PARTITION OF m_a FOR VALUES FROM (0) TO (50)")
	e.exec("CREATE TABLE m_b PARTITION OF m FOR VALUES FROM (100) TO (200)")
	// Installing on the parent alone watches its partitions too.
	res := e.install("m")
	var names []string
	for _, r := range res {
		names = append(names, r.Table+":"+r.Mode)
	}
	want := []string{e.q("m") + ":keys", e.q("m_a") + ":keys", e.q("m_a1") + ":keys", e.q("m_b") + ":keys"}
	if !slices.Equal(names, want) {
		t.Fatalf("install result %q, want %q", names, want)
	}
	root := e.q("m")

	// Through the parent: the parent's trigger, with every row, naming
	// every partition too (a cached query may read one directly).
	all := []string{root, e.q("m_a"), e.q("m_a1"), e.q("m_b")}
	e.exec("INSERT INTO m VALUES (1, 10), (2, 150)")
	e.expect(e.next(), "INSERT", all, "1|10", "2|150")
	e.none() // the partitions' own statement triggers do not fire

	// A partition written directly names itself and its ancestors.
	e.exec("UPDATE m_a1 SET id = 5 WHERE id = 1")
	e.expect(e.next(), "UPDATE", []string{e.q("m_a1"), e.q("m_a"), root}, "1|10", "5|10")
	e.exec("DELETE FROM m_b")
	e.expect(e.next(), "DELETE", []string{e.q("m_b"), root}, "2|150")

	// An update through the parent that moves a row to another partition.
	e.exec("UPDATE m SET day = 120 WHERE id = 5")
	e.expect(e.next(), "UPDATE", all, "5|10", "5|120")
	// A sub-partitioned partition names its ancestors, then its own
	// partitions.
	e.exec("INSERT INTO m_a VALUES (7, 20)")
	e.expect(e.next(), "INSERT", []string{e.q("m_a"), root, e.q("m_a1")}, "7|20")

	// TRUNCATE of the parent fires on every truncated table.
	e.exec("TRUNCATE m")
	var got []string
	for range 4 {
		p := e.next()
		if p.Op != "TRUNCATE" || p.HasK {
			t.Fatalf("truncate: %s", p.Raw)
		}
		got = append(got, p.T[0])
	}
	sort.Strings(got)
	if !slices.Equal(got, []string{root, e.q("m_a"), e.q("m_a1"), e.q("m_b")}) {
		t.Fatalf("truncate notified %q", got)
	}

	// A partition created later is watched once install runs again.
	e.exec("CREATE TABLE m_c PARTITION OF m FOR VALUES FROM (200) TO (300)")
	e.exec("INSERT INTO m_c VALUES (9, 250)")
	e.none()
	res = e.install("m")
	notes := map[string]string{}
	for _, r := range res {
		notes[r.Table] = r.Note
	}
	if notes[e.q("m_c")] != "installed" || notes[root] != "unchanged" {
		t.Fatalf("reinstall: %v", notes)
	}
	e.exec("INSERT INTO m_c VALUES (10, 260)")
	e.expect(e.next(), "INSERT", []string{e.q("m_c"), root}, "10|260")

	// Naming a partition alone says that writes through its unwatched
	// parent are not seen.
	e.exec("CREATE TABLE q (id int PRIMARY KEY) PARTITION BY RANGE (id)")
	e.exec("CREATE TABLE q1 PARTITION OF q FOR VALUES FROM (0) TO (10)")
	res = e.install("q1")
	if len(res) != 1 || !strings.Contains(res[0].Note, "writes through its parent "+e.q("q")+" are not seen") {
		t.Fatalf("install of a partition alone: %+v", res)
	}
	if res = e.install("q"); !strings.HasPrefix(res[1].Note, "unchanged") || strings.Contains(res[1].Note, "parent") {
		t.Fatalf("install of the parent after its partition: %+v", res)
	}

	// Classic inheritance: a child written directly names its parent.
	e.exec("CREATE TABLE animals (id int PRIMARY KEY)")
	e.exec("CREATE TABLE cats (lives int) INHERITS (animals)")
	e.exec("ALTER TABLE cats ADD PRIMARY KEY (id)")
	e.install("animals")
	e.exec("INSERT INTO cats VALUES (1, 9)")
	e.expect(e.next(), "INSERT", []string{e.q("cats"), e.q("animals")}, "1")
	e.exec("INSERT INTO animals VALUES (2)")
	e.expect(e.next(), "INSERT", []string{e.q("animals"), e.q("cats")}, "2")
}

func TestPostgresTriggersCascade(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE parents (id int PRIMARY KEY)")
	e.exec("CREATE TABLE kids (id int PRIMARY KEY, parent int REFERENCES parents ON DELETE CASCADE ON UPDATE CASCADE)")
	e.exec("CREATE TABLE pets (id int PRIMARY KEY, parent int REFERENCES parents ON DELETE SET NULL)")
	e.install()
	e.exec("INSERT INTO parents VALUES (1), (2)")
	e.next()
	e.exec("INSERT INTO kids VALUES (10, 1), (11, 1), (20, 2)")
	e.next()
	e.exec("INSERT INTO pets VALUES (30, 1)")
	e.next()

	// The cascade runs as statements of its own inside the deleting
	// statement: the children's statement triggers fire, one
	// notification per table changed.
	e.exec("DELETE FROM parents WHERE id = 1")
	byTable := map[string]payload{}
	for range 3 {
		p := e.next()
		byTable[p.T[0]] = p
	}
	e.expect(byTable[e.q("parents")], "DELETE", []string{e.q("parents")}, "1")
	e.expect(byTable[e.q("kids")], "DELETE", []string{e.q("kids")}, "10", "11")
	e.expect(byTable[e.q("pets")], "UPDATE", []string{e.q("pets")}, "30")
	e.none()

	e.exec("UPDATE parents SET id = 3 WHERE id = 2")
	byTable = map[string]payload{}
	for range 2 {
		p := e.next()
		byTable[p.T[0]] = p
	}
	e.expect(byTable[e.q("parents")], "UPDATE", []string{e.q("parents")}, "2", "3")
	e.expect(byTable[e.q("kids")], "UPDATE", []string{e.q("kids")}, "20")

	// TRUNCATE ... CASCADE fires on every table it truncates.
	e.exec("TRUNCATE parents CASCADE")
	var got []string
	for range 3 {
		got = append(got, e.next().T[0])
	}
	sort.Strings(got)
	if !slices.Equal(got, []string{e.q("kids"), e.q("parents"), e.q("pets")}) {
		t.Fatalf("truncate cascade notified %q", got)
	}
}

func TestPostgresTriggersTriggerWritesAnotherTable(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE orders (id int PRIMARY KEY, total int)")
	e.exec("CREATE TABLE audit (id serial PRIMARY KEY, order_id int)")
	e.exec(`CREATE FUNCTION audit_order() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO audit (order_id) VALUES (NEW.id); RETURN NULL; END $$`)
	e.exec("CREATE TRIGGER audit_order AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit_order()")
	e.install()
	e.exec("INSERT INTO orders VALUES (5, 100)")
	byTable := map[string]payload{}
	for range 2 {
		p := e.next()
		byTable[p.T[0]] = p
	}
	e.expect(byTable[e.q("orders")], "INSERT", []string{e.q("orders")}, "5")
	e.expect(byTable[e.q("audit")], "INSERT", []string{e.q("audit")}, "1")
}

// TestPostgresTriggersSurviveDDL changes the table under installed
// triggers (a new column, the key column renamed, the key changed, then
// dropped) without installing again: writes never fail, and the keys sent
// follow the table's current primary key.
func TestPostgresTriggersSurviveDDL(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE d (id int PRIMARY KEY, code text NOT NULL)")
	e.install()
	tbl := []string{e.q("d")}
	e.exec("INSERT INTO d VALUES (1, 'a')")
	e.expect(e.next(), "INSERT", tbl, "1")

	e.exec("ALTER TABLE d ADD COLUMN note text")
	e.exec("ALTER TABLE d RENAME COLUMN id TO ident")
	e.exec("INSERT INTO d VALUES (2, 'b', 'x')")
	e.expect(e.next(), "INSERT", tbl, "2")
	e.exec("UPDATE d SET note = 'y' WHERE ident = 1")
	e.expect(e.next(), "UPDATE", tbl, "1")

	e.exec("ALTER TABLE d DROP CONSTRAINT d_pkey")
	e.exec("ALTER TABLE d ADD PRIMARY KEY (code)")
	e.exec("DELETE FROM d WHERE ident = 2")
	e.expect(e.next(), "DELETE", tbl, "b")

	e.exec("ALTER TABLE d DROP CONSTRAINT d_pkey")
	e.exec("DELETE FROM d")
	e.expect(e.next(), "DELETE", tbl) // no key: the table only

	// Attached to a parent after install: the parent is named at once.
	e.exec("CREATE TABLE p (ident int, code text NOT NULL, note text) PARTITION BY LIST (code)")
	e.exec("ALTER TABLE p ATTACH PARTITION d FOR VALUES IN ('a', 'b', 'c')")
	e.exec("INSERT INTO d VALUES (3, 'c')")
	e.expect(e.next(), "INSERT", []string{e.q("d"), e.q("p")})
}

// TestPostgresTriggersMerge checks MERGE (PostgreSQL 15): each action
// fires its statement trigger with its own rows.
func TestPostgresTriggersMerge(t *testing.T) {
	e := newPG(t)
	var version int
	if err := e.db.QueryRow("SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version < 150000 {
		t.Skipf("MERGE needs PostgreSQL 15; server is %d", version)
	}
	e.exec("CREATE TABLE stock (id int PRIMARY KEY, n int)")
	e.exec("INSERT INTO stock VALUES (1, 1), (2, 2)")
	e.install()
	e.exec(`MERGE INTO stock s USING (VALUES (1, 10), (3, 30)) v(id, n) ON s.id = v.id
		WHEN MATCHED THEN UPDATE SET n = v.n
		WHEN NOT MATCHED THEN INSERT VALUES (v.id, v.n)`)
	got := map[string]payload{}
	for range 2 {
		p := e.next()
		got[p.Op] = p
	}
	e.expect(got["INSERT"], "INSERT", []string{e.q("stock")}, "3")
	e.expect(got["UPDATE"], "UPDATE", []string{e.q("stock")}, "1")
	e.none()
}

// triggerState lists the querycache triggers of the test's database objects
// (name, table, oid) and the querycache functions of schema.
func (e *pgEnv) triggerState(schema string) (triggers []string, functions []string) {
	e.t.Helper()
	rows, err := e.db.Query(`SELECT t.tgname || ' on ' || t.tgrelid::regclass::text || ' #' || t.oid
		FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		WHERE t.tgname LIKE 'querycache%' AND c.relnamespace = $1::regnamespace ORDER BY 1`, pgx.Identifier{schema}.Sanitize())
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		triggers = append(triggers, s)
	}
	rows.Close()
	rows, err = e.db.Query(`SELECT p.oid::regprocedure::text FROM pg_proc p
		WHERE p.proname LIKE 'querycache%' AND p.pronamespace = $1::regnamespace ORDER BY 1`, pgx.Identifier{schema}.Sanitize())
	if err != nil {
		e.t.Fatal(err)
	}
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		functions = append(functions, s)
	}
	rows.Close()
	return triggers, functions
}

func TestPostgresTriggersIdempotentInstall(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE a (id int PRIMARY KEY)")
	e.exec("CREATE TABLE b (x int)")
	e.exec("CREATE VIEW va AS SELECT * FROM a")
	e.exec("CREATE MATERIALIZED VIEW ma AS SELECT * FROM a")
	first := e.install()
	trg1, fn1 := e.triggerState(e.schema)
	if len(trg1) != 8 || len(fn1) != 2 {
		t.Fatalf("after install: triggers %q functions %q", trg1, fn1)
	}
	modes := map[string]string{}
	for _, r := range first {
		modes[r.Table] = r.Mode
	}
	if modes[e.q("va")] != "skipped" || modes[e.q("ma")] != "skipped" || modes[e.q("a")] != "keys" || modes[e.q("b")] != "tables" {
		t.Fatalf("install result %+v", first)
	}

	// Again: nothing touched (same trigger oids), every table "unchanged",
	// and one statement still sends one notification.
	second := e.install()
	trg2, _ := e.triggerState(e.schema)
	if !slices.Equal(trg1, trg2) {
		t.Fatalf("reinstall replaced triggers:\n%q\n%q", trg1, trg2)
	}
	for _, r := range second {
		if r.Mode != "skipped" && !strings.HasPrefix(r.Note, "unchanged") {
			t.Fatalf("reinstall result %+v", second)
		}
	}
	e.exec("INSERT INTO a VALUES (1)")
	e.expect(e.next(), "INSERT", []string{e.q("a")}, "1")
	e.none()

	// A table created since is picked up, and naming a view is not an error.
	e.exec("CREATE TABLE c (id int PRIMARY KEY)")
	e.install()
	e.exec("INSERT INTO c VALUES (1)")
	e.expect(e.next(), "INSERT", []string{e.q("c")}, "1")
	if res := e.install("va"); len(res) != 1 || res[0].Mode != "skipped" || !strings.Contains(res[0].Note, "view") {
		t.Fatalf("install of a view: %+v", res)
	}

	watched, err := migrations.WatchedPostgresTables(context.Background(), e.db, e.channel)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{e.q("a"), e.q("b"), e.q("c")}; !slices.Equal(watched, want) {
		t.Fatalf("watched tables %q, want %q", watched, want)
	}

	// Another channel replaces the triggers: the old channel hears nothing.
	other := e.channel + "_2"
	if _, err := migrations.InstallPostgresTriggers(context.Background(), e.db, migrations.Options{Schema: e.schema, Channel: other}); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO a VALUES (2)")
	e.none()
	if watched, err = migrations.WatchedPostgresTables(context.Background(), e.db, e.channel); err != nil || len(watched) != 0 {
		t.Fatalf("watched tables on the old channel: %q %v", watched, err)
	}
	if watched, err = migrations.WatchedPostgresTables(context.Background(), e.db, other); err != nil || len(watched) != 3 {
		t.Fatalf("watched tables on the new channel: %q %v", watched, err)
	}
}

func TestPostgresTriggersUninstall(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE a (id int PRIMARY KEY)")
	e.exec("CREATE TABLE b (id int PRIMARY KEY)")
	e.exec("CREATE TABLE m (id int PRIMARY KEY) PARTITION BY RANGE (id)")
	// A partition in another schema gets a trigger calling this schema's
	// function; uninstall must find it.
	elsewhere := e.schema + "_x"
	e.exec("CREATE SCHEMA " + elsewhere)
	t.Cleanup(func() { _, _ = e.db.Exec("DROP SCHEMA " + elsewhere + " CASCADE") })
	e.exec("CREATE TABLE " + elsewhere + ".m1 PARTITION OF m FOR VALUES FROM (0) TO (10)")
	e.install()
	if trg, _ := e.triggerState(elsewhere); len(trg) != 4 {
		t.Fatalf("partition in another schema: triggers %q", trg)
	}

	ctx := context.Background()
	// Some tables only: theirs go, the others' and the functions stay.
	if err := migrations.UninstallPostgresTriggers(ctx, e.db, e.opts("a")); err != nil {
		t.Fatal(err)
	}
	trg, fns := e.triggerState(e.schema)
	if len(trg) != 8 || len(fns) != 2 {
		t.Fatalf("after uninstalling a: triggers %q functions %q", trg, fns)
	}
	e.exec("INSERT INTO a VALUES (1)")
	e.exec("INSERT INTO b VALUES (1)")
	e.expect(e.next(), "INSERT", []string{e.q("b")}, "1")

	// Everything.
	if err := migrations.UninstallPostgresTriggers(ctx, e.db, e.opts()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{e.schema, elsewhere} {
		if trg, fns := e.triggerState(s); len(trg)+len(fns) != 0 {
			t.Fatalf("after uninstall, schema %s keeps triggers %q functions %q", s, trg, fns)
		}
	}
	e.exec("INSERT INTO a VALUES (2)")
	e.exec("INSERT INTO m VALUES (2)")
	e.exec("TRUNCATE b")
	e.none()
	// Again, and on a schema never installed: nothing to do, no error.
	if err := migrations.UninstallPostgresTriggers(ctx, e.db, e.opts()); err != nil {
		t.Fatalf("second uninstall: %v", err)
	}
	if err := migrations.UninstallPostgresTriggers(ctx, e.db, migrations.Options{Schema: elsewhere}); err != nil {
		t.Fatalf("uninstall of a schema never installed: %v", err)
	}
}

// TestPostgresTriggersHostileNames installs into a schema, on a table and
// for a channel whose names hold quotes, spaces, a backslash and a dot.
func TestPostgresTriggersHostileNames(t *testing.T) {
	e := newPG(t)
	schema := e.schema + ` "s'. \x`
	table := `we"ird 'name; DROP TABLE x; --`
	channel := `chan "x' y\`
	qs := pgx.Identifier{schema}.Sanitize()
	e.exec("CREATE SCHEMA " + qs)
	t.Cleanup(func() { _, _ = e.db.Exec("DROP SCHEMA " + qs + " CASCADE") })
	e.exec("CREATE TABLE " + qs + "." + pgx.Identifier{table}.Sanitize() + " (id text PRIMARY KEY)")
	e.exec("CREATE TABLE " + qs + ".x (id int)") // what an injection would drop
	ctx := context.Background()
	if _, err := e.lc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	e.channel = channel
	opts := migrations.Options{Schema: schema, Tables: []string{table}, Channel: channel}
	res, err := migrations.InstallPostgresTriggers(ctx, e.db, opts)
	if err != nil {
		t.Fatal(err)
	}
	var quoted string
	if err := e.db.QueryRow("SELECT format('%I.%I', $1::text, $2::text)", schema, table).Scan(&quoted); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Table != quoted || res[0].Mode != "keys" {
		t.Fatalf("install result %+v, want table %s", res, quoted)
	}
	e.exec("INSERT INTO "+qs+"."+pgx.Identifier{table}.Sanitize()+" VALUES ($1)", `k'"\`)
	e.expect(e.next(), "INSERT", []string{quoted}, `k'"\`)

	// A name holding the uninstall block's dollar-quote tag.
	dollar := `x$querycache$'); DROP TABLE x; --`
	e.exec("CREATE TABLE " + qs + "." + pgx.Identifier{dollar}.Sanitize() + " (id int PRIMARY KEY)")
	dopts := migrations.Options{Schema: schema, Tables: []string{dollar}, Channel: channel}
	if _, err := migrations.InstallPostgresTriggers(ctx, e.db, dopts); err != nil {
		t.Fatal(err)
	}
	if err := migrations.UninstallPostgresTriggers(ctx, e.db, dopts); err != nil {
		t.Fatal(err)
	}
	if trg, _ := e.triggerState(schema); len(trg) != 4 {
		t.Fatalf("after uninstalling the $-named table: %q", trg)
	}

	// The dry-run SQL, applied as a user would, does the same.
	q, err := migrations.PostgresInstallSQL(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.exec(q)
	if err := migrations.UninstallPostgresTriggers(ctx, e.db, opts); err != nil {
		t.Fatal(err)
	}
	if err := migrations.UninstallPostgresTriggers(ctx, e.db, migrations.Options{Schema: schema}); err != nil {
		t.Fatal(err)
	}
	if trg, fns := e.triggerState(schema); len(trg)+len(fns) != 0 {
		t.Fatalf("after uninstall: %q %q", trg, fns)
	}
	e.exec("SELECT 1 FROM " + qs + ".x") // still there
}

// TestPostgresTriggersDryRun checks that the dry-run SQL is what Install
// runs: applied by hand it installs the same triggers, and producing it
// touches nothing.
func TestPostgresTriggersDryRun(t *testing.T) {
	e := newPG(t)
	e.exec("CREATE TABLE a (id int PRIMARY KEY)")
	q, err := migrations.PostgresInstallSQL(e.opts())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CREATE OR REPLACE FUNCTION " + `"` + e.schema + `".querycache_notify()`, "querycache_install('" + e.schema + "', NULL, '" + e.channel + "')"} {
		if !strings.Contains(q, want) {
			t.Fatalf("dry-run SQL lacks %q:\n%s", want, q)
		}
	}
	if trg, fns := e.triggerState(e.schema); len(trg)+len(fns) != 0 {
		t.Fatalf("the dry run changed the database: %q %q", trg, fns)
	}
	e.exec(q)
	trg, fns := e.triggerState(e.schema)
	if len(trg) != 4 || len(fns) != 2 {
		t.Fatalf("dry-run SQL applied: %q %q", trg, fns)
	}
	e.exec("DELETE FROM a")
	e.none() // nothing deleted, nothing sent
	e.exec("INSERT INTO a VALUES (3)")
	e.expect(e.next(), "INSERT", []string{e.q("a")}, "3")

	u, err := migrations.PostgresUninstallSQL(e.opts())
	if err != nil {
		t.Fatal(err)
	}
	e.exec(u)
	if trg, fns := e.triggerState(e.schema); len(trg)+len(fns) != 0 {
		t.Fatalf("uninstall SQL applied: %q %q", trg, fns)
	}

	// With no schema, the SQL is the file's: the current schema.
	q, err = migrations.PostgresInstallSQL(migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q, "CREATE OR REPLACE FUNCTION querycache_notify()") || !strings.Contains(q, "querycache_install(current_schema(), NULL, 'querycache')") {
		t.Fatalf("default dry-run SQL:\n%s", q)
	}
	e.exec(q) // the DSN's search_path is the test schema
	if trg, _ := e.triggerState(e.schema); len(trg) != 4 {
		t.Fatalf("default SQL applied: %q", trg)
	}
}

// BenchmarkPostgresTriggerOverhead measures what the triggers add to a
// single-row write (one INSERT and one UPDATE per iteration, each its own
// transaction), against the same table without them. The notifications are
// sent to a channel nobody listens on.
func BenchmarkPostgresTriggerOverhead(b *testing.B) {
	for _, installed := range []bool{false, true} {
		name := "without"
		if installed {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			dsn := testenv.PostgresSchema(b)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			if _, err := db.Exec("CREATE TABLE t (id bigint PRIMARY KEY, v int)"); err != nil {
				b.Fatal(err)
			}
			if installed {
				if _, err := migrations.InstallPostgresTriggers(context.Background(), db, migrations.Options{Channel: "qc_bench_" + randHex(4)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := db.Exec("INSERT INTO t VALUES ($1, 0)", i); err != nil {
					b.Fatal(err)
				}
				if _, err := db.Exec("UPDATE t SET v = v + 1 WHERE id = $1", i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPostgresTriggersTooManyAncestors: a table whose ancestors' names
// cannot fit in one notification still never fails the write; it sends
// version 0, which a listener treats as "invalidate everything".
func TestPostgresTriggersTooManyAncestors(t *testing.T) {
	e := newPG(t)
	long := strings.Repeat("x", 55)
	e.exec(fmt.Sprintf("CREATE TABLE %s_000 (id int)", long))
	for i := 1; i < 110; i++ {
		e.exec(fmt.Sprintf("CREATE TABLE %s_%03d () INHERITS (%s_%03d)", long, i, long, i-1))
	}
	e.install(long + "_000")
	e.exec(fmt.Sprintf("INSERT INTO %s_109 VALUES (1)", long))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n, err := e.lc.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":0,"op":"INSERT","error":"table names exceed 7999 bytes"}`; n.Payload != want {
		t.Fatalf("payload %s, want %s", n.Payload, want)
	}
	// So does the root, whose descendants' names cannot fit either.
	e.exec(fmt.Sprintf("INSERT INTO %s_000 VALUES (1)", long))
	if n, err = e.lc.WaitForNotification(ctx); err != nil || n.Payload != `{"v":0,"op":"INSERT","error":"table names exceed 7999 bytes"}` {
		t.Fatalf("root of a deep tree: %v %v", n, err)
	}
	// A table in a small tree names its ancestors, then its descendants.
	e.exec("CREATE TABLE s0 (id int)")
	e.exec("CREATE TABLE s1 () INHERITS (s0)")
	e.exec("CREATE TABLE s2 () INHERITS (s1)")
	e.install("s0")
	e.exec("INSERT INTO s1 VALUES (1)")
	e.expect(e.next(), "INSERT", []string{e.q("s1"), e.q("s0"), e.q("s2")})
}

// BenchmarkPostgresTriggerConcurrentCommits measures single-row INSERT
// transactions from 8 concurrent connections, with and without the
// triggers. With them, every transaction has sent a NOTIFY, and
// PostgreSQL serialises such commits (a cluster-wide lock held through the
// commit's WAL flush): the gap here is that lock, not the trigger's work.
func BenchmarkPostgresTriggerConcurrentCommits(b *testing.B) {
	for _, installed := range []bool{false, true} {
		name := "without"
		if installed {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			dsn := testenv.PostgresSchema(b)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(8)
			db.SetMaxIdleConns(8)
			if _, err := db.Exec("CREATE TABLE t (id bigint PRIMARY KEY, v int)"); err != nil {
				b.Fatal(err)
			}
			if installed {
				if _, err := migrations.InstallPostgresTriggers(context.Background(), db, migrations.Options{Channel: "qc_bench_" + randHex(4)}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(4) // 2 cores x 4 = 8 writers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Exec("INSERT INTO t VALUES ($1, 0)", next.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}

// TestPostgresTriggersNonStandardStrings installs and uninstalls on a
// session with standard_conforming_strings off (backslashes in ” are
// escapes there), with backslashes in the table and channel names.
func TestPostgresTriggersNonStandardStrings(t *testing.T) {
	e := newPG(t)
	ctx := context.Background()
	conn, err := e.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET standard_conforming_strings = off; SET escape_string_warning = off"); err != nil {
		t.Fatal(err)
	}
	table, channel := `back\slash\x00`, `ch\an\'`
	e.exec("CREATE TABLE " + pgx.Identifier{table}.Sanitize() + " (id int PRIMARY KEY)")
	if _, err := e.lc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	e.channel = channel
	opts := migrations.Options{Schema: e.schema, Tables: []string{table}, Channel: channel}
	res, err := migrations.InstallPostgresTriggers(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Note != "installed" {
		t.Fatalf("install result %+v", res)
	}
	if res, err = migrations.InstallPostgresTriggers(ctx, conn, opts); err != nil || res[0].Note != "unchanged" {
		t.Fatalf("reinstall: %+v %v", res, err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+pgx.Identifier{table}.Sanitize()+" VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	e.expect(e.next(), "INSERT", []string{e.schema + `."` + table + `"`}, "1")
	if err := migrations.UninstallPostgresTriggers(ctx, conn, opts); err != nil {
		t.Fatal(err)
	}
	if trg, _ := e.triggerState(e.schema); len(trg) != 0 {
		t.Fatalf("after uninstall: %q", trg)
	}
}

// TestPostgresTriggersConcurrentInstalls: several processes installing at
// once (every replica of an application at start-up) all succeed.
func TestPostgresTriggersConcurrentInstalls(t *testing.T) {
	e := newPG(t)
	for i := range 5 {
		e.exec(fmt.Sprintf("CREATE TABLE t%d (id int PRIMARY KEY)", i))
	}
	e.db.SetMaxOpenConns(8)
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			_, err := migrations.InstallPostgresTriggers(context.Background(), e.db, e.opts())
			errs <- err
		}()
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent install: %v", err)
		}
	}
	if trg, fns := e.triggerState(e.schema); len(trg) != 20 || len(fns) != 2 {
		t.Fatalf("after concurrent installs: %d triggers, functions %q", len(trg), fns)
	}
}

// TestPostgresTriggersPsqlFiles applies postgres_install.sql and
// postgres_uninstall.sql with psql, as a user without Go would.
func TestPostgresTriggersPsqlFiles(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	e := newPG(t)
	e.exec("CREATE TABLE a (id int PRIMARY KEY)")
	e.exec("CREATE TABLE b (x int)")
	run := func(file string) string {
		t.Helper()
		cmd := exec.Command(psql, testenv.PostgresDSN(), "-X", "-v", "ON_ERROR_STOP=1", "-f", file)
		cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+e.schema)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("psql -f %s: %v\n%s", file, err, out)
		}
		return string(out)
	}
	out := run("postgres_install.sql")
	if !strings.Contains(out, e.q("a")+" | keys") || !strings.Contains(out, "COMMIT") {
		t.Fatalf("psql install output:\n%s", out)
	}
	run("postgres_install.sql") // again: harmless
	if trg, fns := e.triggerState(e.schema); len(trg) != 8 || len(fns) != 2 {
		t.Fatalf("after psql install: %q %q", trg, fns)
	}
	run("postgres_uninstall.sql")
	run("postgres_uninstall.sql")
	if trg, fns := e.triggerState(e.schema); len(trg)+len(fns) != 0 {
		t.Fatalf("after psql uninstall: %q %q", trg, fns)
	}
}
