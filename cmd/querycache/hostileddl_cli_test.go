package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"testing"

	"querycache.dev/internal/testenv"
)

// `migrate --ddl --channel appch` then `uninstall --ddl` (the --channel
// help: "uninstall finds the triggers whatever their channel"): the
// uninstall reports success and leaves the channel's event triggers,
// which go on notifying appch of every DDL statement.
func TestHostileDDLUninstallOtherChannel(t *testing.T) {
	base := testenv.PostgresDSN()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "h_ddl_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	dsn := testenv.WithDatabase(base, name)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"migrate", "--dsn", dsn, "--ddl", "--channel", "appch"}, &out, &errOut); code != 0 {
		t.Fatalf("migrate: %d %s", code, errOut.String())
	}
	out.Reset()
	code := run(context.Background(), []string{"uninstall", "--dsn", dsn, "--ddl"}, &out, &errOut)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pg_event_trigger").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("uninstall --ddl exited %d, said %q, and left %d event triggers (channel appch's)", code, out.String(), n)
	}
}
