package gormcache_test

import (
	"context"
	"database/sql"
	"testing"
)

// A permanent table has a column of an enum type the other program made
// in its pg_temp (PostgreSQL allows it). Renaming the enum's value is DDL
// of a temporary object alone, which the event trigger does not tell, yet
// every read of the permanent table changes. When the other session ends,
// PostgreSQL drops the type and, with it, the permanent table's column
// (no event trigger fires at session exit).
func TestHostileDDLTempTypeUnderPermanentTable(t *testing.T) {
	dsn, _ := hddlDatabase(t)
	channel := "qc_hddl_" + owRandom()
	conn, err := sql.Open("pgx", dsn)
	must(t, err)
	defer conn.Close()
	hddlInstall(t, conn, channel, false)
	ctx := context.Background()
	other, err := conn.Conn(ctx) // the other program's session
	must(t, err)
	exec := func(q string) {
		t.Helper()
		if _, err := other.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TYPE pg_temp.mood AS ENUM ('sad', 'ok')")
	exec("CREATE TABLE moods (id int PRIMARY KEY, m pg_temp.mood); INSERT INTO moods VALUES (1, 'sad')")
	db, l, _ := hddlApp(t, dsn, channel, hddlOpts{})
	q := "SELECT id, m::text AS m FROM moods"
	_, _, _ = hddlRead(db, q)
	if _, hit, err := hddlRead(db, q); !hit || err != nil {
		t.Fatalf("not cached (%v)", err)
	}
	exec("ALTER TYPE pg_temp.mood RENAME VALUE 'sad' TO 'happy'")
	ddlSync(t, l)
	hddlSame(t, db, conn, q, "after the temporary enum's value was renamed")

	// Known limit, not tested here: when the other session ends, its
	// temporary type goes and the permanent table's column with it, with
	// no event trigger fired (README, "Schema changes by other programs").
}
