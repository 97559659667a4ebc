package migrations_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
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

// none asserts no notification is pending: it writes a marker row to a
// table of its own that is not watched... instead it sends a NOTIFY on the
// channel itself and checks that this marker is the next one delivered.
// Notifications of one session arrive in commit order, so anything sent
// before the marker would come first.
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

var _ = errors.New
var _ = fmt.Sprint
