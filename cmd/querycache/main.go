// Command querycache installs and removes the PostgreSQL triggers that tell
// querycache about writes made outside the application (see package
// querycache.dev/migrations), and measures what the cache does under load.
//
//	querycache migrate   --dsn DSN [--schema S] [--tables a,b] [--channel C] [--dry-run]
//	querycache uninstall --dsn DSN [--schema S] [--tables a,b] [--dry-run]
//	querycache bench     [--users N] [--ramp D] [--duration D] [--write-ratio F] [--out FILE] [--dsn DSN --queries FILE]
//
// Exit status: 0 done, 1 the database refused or could not be reached,
// 2 wrong usage.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"querycache.dev/migrations"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `querycache installs (migrate) and removes (uninstall) the PostgreSQL
triggers that notify querycache's listener of writes made outside the
application (psql, other services, cron jobs, triggers, foreign-key
cascades), and load-tests an application's queries without and with the
cache (bench).

Usage:
  querycache migrate   --dsn DSN [--schema S] [--tables a,b] [--channel C] [--dry-run]
  querycache uninstall --dsn DSN [--schema S] [--tables a,b] [--dry-run]
  querycache bench     [--users N] [--ramp D] [--duration D] [--write-ratio F] [--out report.html]
                       [--dsn DSN --queries FILE]

  migrate    creates the querycache_* functions in the schema and the
             triggers on its tables (and their partitions). Running it again
             is harmless; run it again after creating tables or partitions.
  uninstall  drops the triggers (of --tables only, if given) and, without
             --tables, the functions.
  bench      measures a load of concurrent users without and then with the
             cache (a news scenario on SQLite, or your queries on --dsn):
             latency percentiles, throughput, statements per request, hit
             ratio, and an HTML report with plots.

Run "querycache <command> -h" for the flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, testable: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd := args[0]
	switch cmd {
	case "migrate", "uninstall":
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "querycache: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}

	fs := flag.NewFlagSet("querycache "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", "", "PostgreSQL connection string (URL or key=value), e.g. postgres://user@host/db (required unless --dry-run)")
	schema := fs.String("schema", "", "schema of the tables and of the querycache_* functions (default: the connection's current schema, normally public)")
	tables := fs.String("tables", "", "comma-separated tables of the schema, as the catalog spells them (default: every table of the schema)")
	channel := fs.String("channel", "", "NOTIFY channel, the one the listener uses (default \""+migrations.DefaultChannel+"\"; uninstall finds the triggers whatever their channel)")
	ddl := fs.Bool("ddl", false, "also install (uninstall: remove; every channel's without --channel) the event trigger that tells the channel's listeners of DDL made by programs without the plugin (a table dropped and created again); needs a superuser, covers the whole database")
	dryRun := fs.Bool("dry-run", false, "print the SQL instead of running it (no connection is made)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	lockTimeout := fs.Duration("lock-timeout", 5*time.Second, "give up when a table lock is not granted within this long (0: wait); while CREATE/DROP TRIGGER waits for a lock, the table's writers queue behind it")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: querycache %s --dsn DSN [flags]\n\nFlags:\n", cmd)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "querycache %s: unexpected argument %q (flags only; did you mean --tables %s?)\n", cmd, fs.Arg(0), fs.Arg(0))
		return exitUsage
	}
	opts := migrations.Options{Schema: *schema, Channel: *channel}
	if *tables != "" {
		for i, t := range strings.Split(*tables, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				fmt.Fprintf(stderr, "querycache %s: --tables %q: name %d is empty; give names separated by single commas\n", cmd, *tables, i+1)
				return exitUsage
			}
			opts.Tables = append(opts.Tables, t)
		}
	}

	if *dryRun {
		var q string
		var err error
		if cmd == "migrate" {
			q, err = migrations.PostgresInstallSQL(opts)
		} else {
			q, err = migrations.PostgresUninstallSQL(opts)
		}
		if err == nil && *ddl {
			var d string
			if cmd == "migrate" {
				d, err = migrations.PostgresDDLNotifySQL(opts)
			} else {
				d, err = migrations.PostgresDDLUninstallSQL(opts)
			}
			q += "\n" + d
		}
		if err != nil {
			fmt.Fprintf(stderr, "querycache %s: %v\n", cmd, err)
			return exitUsage
		}
		fmt.Fprintf(stdout, "-- querycache %s --dry-run: apply with psql -1 -v ON_ERROR_STOP=1 -f FILE\n%s", cmd, q)
		return exitOK
	}
	if *dsn == "" {
		fmt.Fprintf(stderr, "querycache %s: --dsn is required (e.g. --dsn postgres://user@localhost:5432/mydb), or use --dry-run to print the SQL\n", cmd)
		return exitUsage
	}
	// Options are checked before connecting, so a usage mistake is exit 2
	// whatever the state of the server.
	if _, err := migrations.PostgresInstallSQL(opts); err != nil {
		fmt.Fprintf(stderr, "querycache %s: %v\n", cmd, err)
		return exitUsage
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	db, err := sql.Open("pgx", *dsn)
	if err != nil {
		fmt.Fprintf(stderr, "querycache %s: --dsn: %v\n", cmd, err)
		return exitUsage
	}
	defer db.Close()
	// One connection, so that the session's lock_timeout applies to the
	// statements that follow.
	conn, err := db.Conn(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "querycache %s: connecting: %v\n", cmd, err)
		return exitFail
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET lock_timeout = %d", lockTimeout.Milliseconds())); err != nil {
		fmt.Fprintf(stderr, "querycache %s: setting lock_timeout: %v\n", cmd, err)
		return exitFail
	}

	if cmd == "uninstall" {
		if err := migrations.UninstallPostgresTriggers(ctx, conn, opts); err != nil {
			fmt.Fprintf(stderr, "querycache %s: %v%s\n", cmd, err, lockHint(err))
			return exitFail
		}
		if *ddl {
			if err := migrations.UninstallPostgresDDLNotify(ctx, conn, opts); err != nil {
				fmt.Fprintf(stderr, "querycache %s: %v%s\n", cmd, err, lockHint(err))
				return exitFail
			}
			fmt.Fprintln(stdout, "uninstalled the DDL event triggers of the channel")
		}
		what := "every querycache trigger and function"
		if len(opts.Tables) > 0 {
			what = "the querycache triggers of " + strings.Join(opts.Tables, ", ")
		}
		fmt.Fprintf(stdout, "uninstalled %s from %s\n", what, schemaName(opts.Schema))
		return exitOK
	}

	res, err := migrations.InstallPostgresTriggers(ctx, conn, opts)
	if err != nil {
		fmt.Fprintf(stderr, "querycache %s: %v%s\n", cmd, err, lockHint(err))
		return exitFail
	}
	if *ddl {
		if err := migrations.InstallPostgresDDLNotify(ctx, conn, opts); err != nil {
			fmt.Fprintf(stderr, "querycache %s: the row triggers are installed, the DDL event triggers not: %v\n", cmd, err)
			return exitFail
		}
		fmt.Fprintln(stdout, "DDL event triggers installed: DDL by other programs is told on the channel")
	}
	if len(res) == 0 {
		fmt.Fprintf(stdout, "no tables in %s: the functions are installed; run migrate again once tables exist\n", schemaName(opts.Schema))
		return exitOK
	}
	ch := opts.Channel
	if ch == "" {
		ch = migrations.DefaultChannel
	}
	fmt.Fprintf(stdout, "channel %q:\n", ch)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tMODE\tNOTE")
	for _, r := range res {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Table, r.Mode, r.Note)
	}
	_ = tw.Flush()
	return exitOK
}

// lockHint explains a lock timeout (SQLSTATE 55P03): nothing was changed,
// the statement is atomic.
func lockHint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "55P03" {
		return "\n(a transaction holds a lock on a table; nothing was changed: run again when it is done, or raise --lock-timeout)"
	}
	return ""
}

func schemaName(s string) string {
	if s == "" {
		return "the current schema"
	}
	return "schema " + s
}
