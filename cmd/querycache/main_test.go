package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"querycache.dev/internal/testenv"
)

// TestCommandUsage checks exit status 2 and a message saying what to do for
// every usage mistake, before any connection is made.
func TestCommandUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"install"}, `unknown command "install"`},
		{[]string{"migrate"}, "--dsn is required"},
		{[]string{"migrate", "--dsn", "x", "extra"}, "unexpected argument"},
		{[]string{"migrate", "--nope"}, "flag provided but not defined"},
		{[]string{"migrate", "--dsn", "x", "--tables", "a,,b"}, "name 2 is empty"},
		{[]string{"uninstall", "--dry-run", "--channel", strings.Repeat("c", 64)}, "at most 63 bytes"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "migrate") {
		t.Errorf("help: exit %d, %q", code, out.String())
	}
}

// TestCommandEndToEnd builds the binary and runs it as a user would:
// dry run (prints, changes nothing), migrate, a write seen by a listener,
// migrate again, uninstall; and a database error is exit status 1.
func TestCommandEndToEnd(t *testing.T) {
	dsn := testenv.PostgresSchema(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var schema string
	if err := db.QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "querycache")
	build := exec.Command("go", append(append([]string{"build"}, testenv.GoBuildFlags()...), "-o", bin, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		c := exec.Command(bin, args...)
		var o, e bytes.Buffer
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.ExitCode()
		default:
			t.Fatalf("running %q: %v", args, err)
		}
		return o.String(), e.String(), code
	}
	triggers := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			WHERE t.tgname LIKE 'querycache%' AND c.relnamespace = $1::regnamespace`, schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	channel := "qc_cmd_" + schema

	out, errOut, code := cmd("migrate", "--dsn", dsn, "--schema", schema, "--tables", "a", "--channel", channel, "--dry-run")
	if code != 0 || !strings.Contains(out, "querycache_install('"+schema+"', ARRAY['a']::text[], '"+channel+"')") {
		t.Fatalf("dry run: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if n := triggers(); n != 0 {
		t.Fatalf("the dry run installed %d triggers", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lc, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(context.Background())
	if _, err := lc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	out, errOut, code = cmd("migrate", "--dsn", dsn, "--schema", schema, "--tables", "a", "--channel", channel)
	if code != 0 || !strings.Contains(out, schema+".a") || !strings.Contains(out, "installed") {
		t.Fatalf("migrate: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if _, err := db.Exec("INSERT INTO b VALUES (1); INSERT INTO a VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	n, err := lc.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":1,"op":"INSERT","t":["` + schema + `.a"],"k":[["42"]]}`; n.Payload != want {
		t.Fatalf("payload %s, want %s", n.Payload, want)
	}

	out, errOut, code = cmd("migrate", "--dsn", dsn, "--schema", schema, "--tables", "a", "--channel", channel)
	if code != 0 || !strings.Contains(out, "unchanged") {
		t.Fatalf("migrate again: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}

	_, errOut, code = cmd("migrate", "--dsn", dsn, "--schema", schema, "--tables", "nope")
	if code != 1 || !strings.Contains(errOut, "no table nope") {
		t.Fatalf("migrate of a missing table: exit %d, stderr %s", code, errOut)
	}

	// A writer holding table b open: the install gives up after
	// --lock-timeout instead of queueing b's writers behind it.
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO b VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = cmd("migrate", "--dsn", dsn, "--schema", schema, "--tables", "a,b", "--lock-timeout", "100ms")
	_ = tx.Rollback()
	if code != 1 || !strings.Contains(errOut, "raise --lock-timeout") {
		t.Fatalf("migrate against a held lock: exit %d, stderr %s", code, errOut)
	}

	out, errOut, code = cmd("uninstall", "--dsn", dsn, "--schema", schema)
	if code != 0 || !strings.Contains(out, "uninstalled") {
		t.Fatalf("uninstall: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	if n := triggers(); n != 0 {
		t.Fatalf("uninstall left %d triggers", n)
	}
}

// TestCommandDDLDryRun: --ddl adds the event trigger's SQL to migrate's
// dry run, and its removal to uninstall's, for the channel given.
func TestCommandDDLDryRun(t *testing.T) {
	for _, c := range []struct {
		cmd, want string
	}{
		{"migrate", "('querycache_ddl_end', 'ddl_command_end')"},
		{"uninstall", "DROP EVENT TRIGGER IF EXISTS %I"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{c.cmd, "--dry-run", "--ddl"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), c.want) {
			t.Errorf("%s --dry-run --ddl: exit %d, stdout lacks %q:\n%s\nstderr %s", c.cmd, code, c.want, out.String(), errOut.String())
		}
		out.Reset()
		if code := run(context.Background(), []string{c.cmd, "--dry-run"}, &out, &errOut); code != 0 || strings.Contains(out.String(), "EVENT TRIGGER") {
			t.Errorf("%s --dry-run without --ddl: exit %d, event trigger SQL in:\n%s", c.cmd, code, out.String())
		}
	}
}
