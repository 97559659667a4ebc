package migrations_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"querycache.dev/internal/testenv"
	"querycache.dev/migrations"
)

// TestPostgresDDLNotifyChannels: two channels in one database have event
// triggers of their own (one installed in a schema, one with a name that
// holds quotes and the function's dollar-quote tag); DDL notifies both,
// DDL of temporary objects neither, and uninstalling one leaves the other.
func TestPostgresDDLNotifyChannels(t *testing.T) {
	dsn := testenv.PostgresDatabase(t, "qc_ddl_")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA s1"); err != nil {
		t.Fatal(err)
	}
	a := migrations.Options{Schema: "s1", Channel: "qc_a_" + randHex(4)}
	b := migrations.Options{Channel: `odd'"$querycache$ ch`}
	for _, o := range []migrations.Options{a, b, a} { // a twice: harmless
		if err := migrations.InstallPostgresDDLNotify(ctx, db, o); err != nil {
			t.Fatalf("install %+v: %v", o, err)
		}
	}
	lc, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(context.Background())
	for _, ch := range []string{a.Channel, b.Channel} {
		if _, err := lc.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	// expect reads the next notifications, in commit order, as
	// "channel payload" lines.
	expect := func(want ...string) {
		t.Helper()
		for _, w := range want {
			n, err := lc.WaitForNotification(ctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v", w, err)
			}
			if got := n.Channel + " " + n.Payload; got != w {
				t.Fatalf("notification %q, want %q", got, w)
			}
		}
	}
	exec := func(q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	marker := func(ch string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, "SELECT pg_notify($1, 'marker')", ch); err != nil {
			t.Fatal(err)
		}
	}
	// Both channels' triggers fire, in the order PostgreSQL runs event
	// triggers (by name), so the two are compared as a set.
	both := func(tag string) {
		t.Helper()
		got := map[string]bool{}
		for range 2 {
			n, err := lc.WaitForNotification(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got[n.Channel+" "+n.Payload] = true
		}
		for _, ch := range []string{a.Channel, b.Channel} {
			if w := ch + ` {"v":1,"op":"DDL","tag":"` + tag + `"}`; !got[w] {
				t.Fatalf("notifications %v lack %q", got, w)
			}
		}
	}
	exec("CREATE TABLE public.things (id int PRIMARY KEY)")
	both("CREATE TABLE")
	exec("DROP TABLE public.things")
	both("DROP TABLE")
	exec("CREATE TEMP TABLE scratch (id int PRIMARY KEY, x text); DROP TABLE scratch")
	marker(a.Channel)
	expect(a.Channel + " marker") // nothing before it

	if err := migrations.UninstallPostgresDDLNotify(ctx, db, b); err != nil {
		t.Fatal(err)
	}
	exec("CREATE TABLE s1.other (id int)")
	marker(b.Channel)
	// a's trigger tells the drop of b's function (event triggers do not
	// fire for DROP EVENT TRIGGER), then the table; b's tells nothing.
	expect(a.Channel+` {"v":1,"op":"DDL","tag":"DROP FUNCTION"}`, a.Channel+` {"v":1,"op":"DDL","tag":"CREATE TABLE"}`, b.Channel+" marker")
	if err := migrations.UninstallPostgresDDLNotify(ctx, db, a); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_event_trigger").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d event triggers left (%v)", n, err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'querycache%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d functions left (%v)", n, err)
	}
}

// TestPostgresDDLNotifyDryRun: the default channel's SQL is the file's,
// its names unsuffixed, and a bad option is refused before any SQL.
func TestPostgresDDLNotifyDryRun(t *testing.T) {
	q, err := migrations.PostgresDDLNotifySQL(migrations.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CREATE OR REPLACE FUNCTION querycache_notify_ddl()", "v_channel text := 'querycache';",
		"('querycache_ddl_end', 'ddl_command_end')", "v_fn     name := 'querycache_notify_ddl';"} {
		if !strings.Contains(q, want) {
			t.Errorf("dry run lacks %q:\n%s", want, q)
		}
	}
	if _, err := migrations.PostgresDDLNotifySQL(migrations.Options{Channel: strings.Repeat("c", 64)}); err == nil {
		t.Error("a 64-byte channel accepted")
	}
}
