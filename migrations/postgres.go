// Package migrations installs, in a user's PostgreSQL database, the
// triggers that tell querycache about writes made outside the application:
// other services, psql sessions, cron jobs, triggers writing other tables,
// foreign-key cascades. Every statement that writes a watched table sends a
// NOTIFY on a channel when it commits; the listener in package invalidation
// turns those into invalidations.
//
// The same SQL is in postgres_install.sql and postgres_uninstall.sql, for
// users who apply migrations with psql; the functions here run it for a
// chosen schema, tables and channel, and return it for a dry run. Each
// statement that changes rows of a watched table sends, at commit, one
// notification naming the table (then its partition or inheritance
// ancestors) and, when they fit in 7999 bytes, the primary keys of the
// changed rows (old and new ones for an UPDATE):
//
//	{"v":1,"op":"UPDATE","t":["public.child","public.parent"],"k":[["1"],["7"]]}
//
// Cost: PostgreSQL makes a transaction that has sent a NOTIFY hold a
// cluster-wide lock through its commit, so concurrent transactions writing
// watched tables commit one at a time. Watch the tables written outside the
// application, not every table.
package migrations

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"strings"
)

//go:embed postgres_install.sql
var postgresInstall string

//go:embed postgres_uninstall.sql
var postgresUninstall string

// DefaultChannel is the channel notified when Options.Channel is empty.
const DefaultChannel = "querycache"

// maxIdentLen is PostgreSQL's identifier limit (NAMEDATALEN-1): a longer
// schema or table name is silently truncated by the server, a longer channel
// name is refused by pg_notify.
const maxIdentLen = 63

// Conn is what the functions of this package run SQL on: *sql.DB, *sql.Conn
// and *sql.Tx satisfy it. With pgx, open the database through its
// database/sql driver: stdlib.OpenDBFromPool(pool), or
// sql.Open("pgx", dsn) after importing github.com/jackc/pgx/v5/stdlib.
//
// The install runs as two statements (the functions, then the call that
// puts the triggers on the tables), each atomic on its own; given a *sql.Tx
// they run inside it.
type Conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Options chooses what is installed or uninstalled.
type Options struct {
	// Schema holds the querycache_* functions and the tables to watch,
	// named as stored in the catalog (case-sensitive, unquoted). Empty: the
	// connection's current schema (the first existing schema of its
	// search_path, normally public).
	Schema string
	// Tables to watch in Schema, named as stored (case-sensitive,
	// unquoted, without the schema); their partitions and inheritance
	// children are watched too. Empty: every table of Schema (except
	// querycache's own querycache_* tables). Views, materialized views and
	// foreign tables are skipped with a note.
	Tables []string
	// Channel notified; the listener must LISTEN on the same one. Empty:
	// DefaultChannel. At most 63 bytes.
	Channel string
}

// TableResult is what the install did to one table.
type TableResult struct {
	// Table is schema-qualified, each part quoted as PostgreSQL needs.
	Table string
	// Mode is "keys" (notifications carry the primary keys of the changed
	// rows when they fit), "tables" (table names only: the table has no
	// primary key) or "skipped" (no triggers: see Note).
	Mode string
	// Note says "installed", "unchanged" (the triggers were already as
	// wanted, nothing was touched), or why the table was skipped.
	Note string
}

// validate checks opts and fills in defaults. Its errors say how to fix
// the option.
func (o Options) validate() (Options, error) {
	if o.Channel == "" {
		o.Channel = DefaultChannel
	}
	if err := checkName("Channel", o.Channel); err != nil {
		return o, err
	}
	if o.Schema != "" {
		if err := checkName("Schema", o.Schema); err != nil {
			return o, err
		}
	}
	seen := make(map[string]bool, len(o.Tables))
	tables := make([]string, 0, len(o.Tables))
	for i, t := range o.Tables {
		if t == "" {
			return o, fmt.Errorf("migrations: Tables[%d] is empty: remove it, or leave Tables empty to watch every table of the schema", i)
		}
		if err := checkName(fmt.Sprintf("Tables[%d]", i), t); err != nil {
			return o, err
		}
		if !seen[t] {
			seen[t] = true
			tables = append(tables, t)
		}
	}
	o.Tables = tables
	return o, nil
}

func checkName(field, v string) error {
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("migrations: %s %q contains a NUL byte, which PostgreSQL names cannot hold", field, v)
	}
	if len(v) > maxIdentLen {
		return fmt.Errorf("migrations: %s %q is %d bytes long; PostgreSQL names are at most %d bytes: use the name as the catalog stores it", field, v, len(v), maxIdentLen)
	}
	return nil
}

// PostgresInstallSQL returns the SQL that InstallPostgresTriggers runs for
// opts, without running it (a dry run): the functions of
// postgres_install.sql, created in opts.Schema, then the SELECT that puts
// the triggers on the tables. It can be applied with
// psql -1 -v ON_ERROR_STOP=1 -f.
func PostgresInstallSQL(opts Options) (string, error) {
	opts, err := opts.validate()
	if err != nil {
		return "", err
	}
	fns, err := installFunctions(opts)
	if err != nil {
		return "", err
	}
	return fns + "\n" + installCall(opts) + "\n", nil
}

// InstallPostgresTriggers creates (or replaces) the querycache_* functions
// in opts.Schema and the statement-level AFTER INSERT, UPDATE, DELETE and
// TRUNCATE triggers on the chosen tables, and returns what it did to each
// table. Running it again is harmless: triggers already as wanted are left
// alone, new tables and partitions are picked up, a changed channel or a
// primary key added since is applied. Re-run it after creating or attaching
// tables or partitions: a table without the triggers is not watched.
//
// Creating a trigger locks its table against writes (SHARE ROW EXCLUSIVE),
// and while it waits for a lock the table's writers queue behind it: set
// lock_timeout on conn first (a *sql.Conn) as cmd/querycache does. The
// install is atomic: a lock timeout changes nothing. Two installs into one
// schema at the same moment may fail with "tuple concurrently updated";
// retry.
func InstallPostgresTriggers(ctx context.Context, conn Conn, opts Options) ([]TableResult, error) {
	opts, err := opts.validate()
	if err != nil {
		return nil, err
	}
	fns, err := installFunctions(opts)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, fns); err != nil {
		return nil, fmt.Errorf("migrations: creating the querycache_* functions in %s: %w", schemaDesc(opts.Schema), err)
	}
	rows, err := conn.QueryContext(ctx, installCall(opts))
	if err != nil {
		return nil, fmt.Errorf("migrations: installing the triggers in %s: %w", schemaDesc(opts.Schema), err)
	}
	defer rows.Close()
	var out []TableResult
	for rows.Next() {
		var r TableResult
		if err := rows.Scan(&r.Table, &r.Mode, &r.Note); err != nil {
			return nil, fmt.Errorf("migrations: reading the install's result: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrations: installing the triggers in %s: %w", schemaDesc(opts.Schema), err)
	}
	return out, nil
}

// PostgresUninstallSQL returns the SQL that UninstallPostgresTriggers runs
// for opts, without running it.
func PostgresUninstallSQL(opts Options) (string, error) {
	opts, err := opts.validate()
	if err != nil {
		return "", err
	}
	return uninstallBlock(opts)
}

// UninstallPostgresTriggers removes what InstallPostgresTriggers installed.
// With opts.Tables empty it drops every querycache trigger of opts.Schema
// (and those on partitions elsewhere that call its function), then the
// querycache_* functions; with Tables, only the triggers of those tables and
// their partitions and children, keeping the functions for the others.
// Uninstalling what is not installed does nothing. opts.Channel is ignored.
func UninstallPostgresTriggers(ctx context.Context, conn Conn, opts Options) error {
	q, err := PostgresUninstallSQL(opts)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("migrations: uninstalling from %s: %w", schemaDesc(opts.Schema), err)
	}
	return nil
}

func schemaDesc(schema string) string {
	if schema == "" {
		return "the current schema"
	}
	return "schema " + quoteIdent(schema)
}

// section returns the text of file between "-- querycache:<name> begin"
// and "-- querycache:<name> end".
func section(file, name string) (string, error) {
	begin, end := "-- querycache:"+name+" begin\n", "-- querycache:"+name+" end\n"
	i := strings.Index(file, begin)
	j := strings.Index(file, end)
	if i < 0 || j < i {
		return "", errors.New("migrations: embedded SQL lacks the " + name + " markers (a broken build)")
	}
	return file[i+len(begin) : j], nil
}

// installFunctions is the functions part of postgres_install.sql, each
// CREATE naming opts.Schema (unqualified, they would go to the current
// schema, which is what an empty Schema means).
func installFunctions(opts Options) (string, error) {
	fns, err := section(postgresInstall, "functions")
	if err != nil {
		return "", err
	}
	const create = "CREATE OR REPLACE FUNCTION querycache_"
	if n := strings.Count(fns, create); n != 2 {
		return "", fmt.Errorf("migrations: embedded SQL has %d function definitions, want 2 (a broken build)", n)
	}
	if opts.Schema != "" {
		fns = strings.ReplaceAll(fns, create, "CREATE OR REPLACE FUNCTION "+quoteIdent(opts.Schema)+".querycache_")
	}
	return strings.TrimSpace(fns) + "\n", nil
}

// installCall is the SELECT that installs the triggers, every value a
// literal so that the dry run shows exactly what runs.
func installCall(opts Options) string {
	fn, schema := "querycache_install", "current_schema()"
	if opts.Schema != "" {
		fn = quoteIdent(opts.Schema) + ".querycache_install"
		schema = quoteLiteral(opts.Schema)
	}
	return fmt.Sprintf("SELECT table_name, mode, note FROM %s(%s, %s, %s);", fn, schema, textArray(opts.Tables), quoteLiteral(opts.Channel))
}

func uninstallBlock(opts Options) (string, error) {
	q, err := section(postgresUninstall, "uninstall")
	if err != nil {
		return "", err
	}
	const schemaLine = "v_schema name := current_schema(); -- querycache:schema"
	const tablesLine = "v_tables text[] := NULL; -- querycache:tables"
	const quote = "$querycache$"
	if strings.Count(q, schemaLine) != 1 || strings.Count(q, tablesLine) != 1 || strings.Count(q, quote) != 2 {
		return "", errors.New("migrations: embedded uninstall SQL lacks its parameter lines or dollar quotes (a broken build)")
	}
	// The names become literals inside the DO block's dollar quotes: a
	// name holding the tag would end the block early. So the tag is one
	// no name holds, put in before the names are.
	q = strings.ReplaceAll(q, quote, dollarTag(opts.Schema+"\x00"+strings.Join(opts.Tables, "\x00")))
	if opts.Schema != "" {
		q = strings.Replace(q, schemaLine, "v_schema name := "+quoteLiteral(opts.Schema)+";", 1)
	}
	q = strings.Replace(q, tablesLine, "v_tables text[] := "+textArray(opts.Tables)+";", 1)
	return q, nil
}

// textArray renders names as a text[] literal expression, NULL when empty.
func textArray(names []string) string {
	if len(names) == 0 {
		return "NULL"
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = quoteLiteral(n)
	}
	return "ARRAY[" + strings.Join(parts, ", ") + "]::text[]"
}

// quoteIdent quotes an identifier the way PostgreSQL's quote_ident does
// when quoting is needed: double quotes, inner quotes doubled. Always
// quoting is correct too, and simpler to trust.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// quoteLiteral renders s as a string literal that reads back as s whatever
// standard_conforming_strings says: an E” literal (backslashes doubled)
// when s holds a backslash, else a plain one. Quotes are doubled in both.
// Names were checked to hold no NUL byte.
func quoteLiteral(s string) string {
	q := strings.ReplaceAll(s, `'`, `''`)
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(q, `\`, `\\`) + `'`
	}
	return `'` + q + `'`
}

// watchedQuery lists the tables whose querycache_notify_insert trigger
// calls a querycache_notify function with channel $1 as first argument
// (pg_trigger.tgargs is each argument followed by a zero byte).
const watchedQuery = `SELECT format('%I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
 WHERE t.tgname = 'querycache_notify_insert' AND NOT t.tgisinternal
   AND p.proname = 'querycache_notify'
   AND position(pg_catalog.convert_to($1, pg_catalog.getdatabaseencoding()) || pg_catalog.decode('00', 'hex') IN t.tgargs) = 1
 ORDER BY n.nspname, c.relname`

// WatchedPostgresTables returns the tables, in every schema, whose
// querycache triggers notify channel (empty: DefaultChannel),
// schema-qualified and quoted as in the notifications' "t". A listener
// that was not listening for a while has missed their notifications, and
// can invalidate exactly these.
func WatchedPostgresTables(ctx context.Context, conn Conn, channel string) ([]string, error) {
	if channel == "" {
		channel = DefaultChannel
	}
	if err := checkName("channel", channel); err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, watchedQuery, channel)
	if err != nil {
		return nil, fmt.Errorf("migrations: listing the watched tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("migrations: listing the watched tables: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrations: listing the watched tables: %w", err)
	}
	return out, nil
}
