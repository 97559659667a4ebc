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

func hddlDatabase(t *testing.T) string {
	t.Helper()
	return testenv.PostgresDatabase(t, "h_ddl_")
}

// hddlHeard: does DDL q, run on db, reach a listener of channel?
func hddlHeard(t *testing.T, ctx context.Context, db *sql.DB, dsn, channel, q string) bool {
	t.Helper()
	lc, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close(context.Background())
	if _, err := lc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if _, err := db.ExecContext(ctx, "SELECT pg_notify($1, 'marker')", channel); err != nil {
		t.Fatal(err)
	}
	heard := false
	for {
		n, err := lc.WaitForNotification(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n.Payload == "marker" {
			return heard
		}
		heard = true
	}
}

// A multi-tenant application installs the row triggers per schema with one
// channel (Options.Schema), and the DDL notify too: s1, then s2, one
// channel. The event triggers are the channel's, one pair in the database:
// s2's install kept them calling s1's function, and removing tenant s1
// (its uninstall, or DROP SCHEMA s1 CASCADE) silently removed both. Now
// s2's install is refused with an error that says so, and s1's stays
// heard until it is removed; s2's uninstall leaves s1's alone.
func TestHostileDDLTwoSchemasOneChannel(t *testing.T) {
	dsn := hddlDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA s1; CREATE SCHEMA s2"); err != nil {
		t.Fatal(err)
	}
	ch := "qc_" + randHex(4)
	o1 := migrations.Options{Schema: "s1", Channel: ch}
	o2 := migrations.Options{Schema: "s2", Channel: ch}
	if err := migrations.InstallPostgresDDLNotify(ctx, db, o1); err != nil {
		t.Fatal(err)
	}
	err = migrations.InstallPostgresDDLNotify(ctx, db, o2)
	if err == nil || !strings.Contains(err.Error(), "installed in another schema") {
		t.Fatalf("a second schema's install for the channel: %v, want an error naming the other schema's install", err)
	}
	if err := migrations.UninstallPostgresDDLNotify(ctx, db, o2); err != nil {
		t.Fatal(err)
	}
	if !hddlHeard(t, ctx, db, dsn, ch, "CREATE TABLE s2.a (id int)") {
		t.Fatal("s1's install no longer heard after s2's failed install and its uninstall")
	}
	if _, err := db.ExecContext(ctx, "DROP SCHEMA s1 CASCADE"); err != nil {
		t.Fatal(err)
	}
	if err := migrations.InstallPostgresDDLNotify(ctx, db, o2); err != nil {
		t.Fatalf("s2's install once s1's schema is gone: %v", err)
	}
	if !hddlHeard(t, ctx, db, dsn, ch, "ALTER TABLE s2.a ADD COLUMN b int") {
		t.Fatal("s2's install not heard")
	}
}

// Odd schema names for the install and uninstall.
func TestHostileDDLOddSchemaNames(t *testing.T) {
	dsn := hddlDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, s := range []string{`Odd "S"`, `we'ird$querycache$`, `UPPER`, `sp ace`, `ü`} {
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+pgx.Identifier{s}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		o := migrations.Options{Schema: s, Channel: "qc_odd" + string(rune('a'+i))}
		if err := migrations.InstallPostgresDDLNotify(ctx, db, o); err != nil {
			t.Errorf("install %q: %v", s, err)
			continue
		}
		if !hddlHeard(t, ctx, db, dsn, o.Channel, "CREATE TABLE "+pgx.Identifier{s, "t"}.Sanitize()+" (id int)") {
			t.Errorf("schema %q: not heard", s)
		}
		if err := migrations.UninstallPostgresDDLNotify(ctx, db, o); err != nil {
			t.Errorf("uninstall %q: %v", s, err)
		}
	}
	var n int
	_ = db.QueryRowContext(ctx, "SELECT count(*) FROM pg_event_trigger").Scan(&n)
	if n != 0 {
		t.Errorf("%d event triggers left", n)
	}
}

// DDL of temporary objects alone is documented as not told; these are.
func TestHostileDDLTempOnlyTold(t *testing.T) {
	dsn := hddlDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one session: its temporary objects persist
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch := "qc_" + randHex(4)
	if err := migrations.InstallPostgresDDLNotify(ctx, db, migrations.Options{Channel: ch}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TEMP TABLE scratch (id int PRIMARY KEY, x text)", // control: not told
		// GRANT and CREATE TRIGGER on a temporary table are told: only
		// CREATE of temporary objects is not, and a trigger's schema is
		// not reported (an extra invalidation, never a missed one).
		"DROP TRIGGER IF EXISTS scratch_trg ON scratch",
		"CREATE TEMP TABLE scratch2 (id int REFERENCES scratch (id))",
		"DROP TABLE scratch CASCADE",
		"BEGIN; CREATE TEMP TABLE s3 (id int PRIMARY KEY); CREATE TEMP TABLE s4 (id int REFERENCES s3); DROP TABLE s4, s3; COMMIT",
	} {
		if hddlHeard(t, ctx, db, dsn, ch, q) {
			t.Errorf("told: %s", q)
		}
	}
}

// A role that is not a superuser installs: refused (as documented); is
// the connection usable afterwards?
func TestHostileDDLInstallNotSuperuserLeavesConn(t *testing.T) {
	dsn := hddlDatabase(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	role := "h_ddl_nosu_" + randHex(4)
	if _, err := db.ExecContext(ctx, "CREATE ROLE "+role+" LOGIN; GRANT CREATE ON SCHEMA public TO "+role); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("DROP OWNED BY " + role + "; DROP ROLE " + role)
	udb, err := sql.Open("pgx", dsn+" user="+role)
	if err != nil {
		t.Fatal(err)
	}
	defer udb.Close()
	c, err := udb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = migrations.InstallPostgresDDLNotify(ctx, c, migrations.Options{})
	t.Logf("install as non-superuser: %v", err)
	var one int
	if err := c.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("the caller's connection after the refused install: %v", err)
	}
	var n int
	_ = db.QueryRowContext(ctx, "SELECT count(*) FROM pg_proc WHERE proname = 'querycache_notify_ddl'").Scan(&n)
	if n != 0 {
		t.Errorf("refused install left %d functions", n)
	}
}
