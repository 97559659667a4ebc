package gormcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/keys"
)

// Which database a cached result came from.
//
// Entries are keyed by the database's identity (DatabaseID, and on
// PostgreSQL the identity read from the server among the settings), so
// that two databases sharing a store never share an entry. Versions are
// not: a write to users in one database invalidates users in every
// database on the store's prefix, which costs misses, never stale data.
// So an identity that differs for one database (two spellings of its DSN)
// only keeps processes from sharing entries; one that is the same for two
// databases serves one database's rows to the other. The DSN's text alone
// was such an identity (a hostile run, issue 8's forty-first session):
//
//   - PostgreSQL: the same DSN reaches another database, server or port
//     when they come from the environment (PGDATABASE, PGHOST, PGPORT: a
//     deployment per tenant), or when a name resolves elsewhere;
//   - SQLite: sqlite.Open("app.db") in two working directories names two
//     files.
//
// So SQLite's identity is its database files as SQLite reports them
// (PRAGMA database_list: main and attached, by full path, device and
// inode) with the host, the driver and the DSN parameters that change
// results (sqliteDatabaseID), and PostgreSQL's is read from the server
// (postgresIdentity) and put in every key with the settings.

// defaultDatabaseID derives an identity from the dialect and DSN, hashed so
// that no password ends up in a key. An in-memory SQLite database, or a
// dialector whose DSN cannot be found, gets an identity of its own.
func defaultDatabaseID(d gorm.Dialector) string {
	dsn := dsnOf(d)
	lower := strings.ToLower(dsn)
	if dsn == "" || strings.Contains(lower, ":memory:") || strings.Contains(lower, "mode=memory") {
		return ownDatabaseID()
	}
	return keys.Sum([]byte(d.Name() + "\x00" + dsn)).String()[:16]
}

// ownDatabaseID is an identity no other database or process has: entries
// of a database no other process can reach (in memory) are not shared.
func ownDatabaseID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "mem-" + hex.EncodeToString(b[:])
}

// sqliteDatabaseID is the identity of the SQLite database cp opens: its
// main file's full path, which SQLite resolves (a relative DSN is read
// from the working directory), with the file's device and inode and the
// host's name (a file replaced under its path while a process keeps the
// old one open, and two hosts' or containers' own /data/app.db, are other
// databases), and likewise every database attached to the connection (a
// connect hook may ATTACH a tenant's file under one name: an unqualified
// or aux-qualified table then reads it). A database with no file (in
// memory, or temporary) has an identity of its own. When SQLite cannot be
// asked, the DSN's identity is taken with the working directory, which a
// relative path depends on.
func sqliteDatabaseID(ctx context.Context, cp gorm.ConnPool, d gorm.Dialector) string {
	rows, err := cp.QueryContext(ctx, "PRAGMA database_list")
	if err == nil {
		defer rows.Close()
		host, _ := os.Hostname()
		b := keys.NewBuilder()
		b.String("sqlite files")
		b.String(host)
		// The driver (a connect hook of a registered driver may set a
		// pragma) and the DSN's parameters that may change a result
		// (_cslike, _loc, _time_format): one file opened two ways is two
		// identities.
		b.String(dialectorField(d, "DriverName"))
		b.String(sqliteResultParams(dsnOf(d)))
		main := false
		for rows.Next() {
			var (
				seq        int
				name, file string
			)
			if err := rows.Scan(&seq, &name, &file); err != nil {
				main = false
				break
			}
			if name == "temp" {
				continue // the connection's own: nothing another reads
			}
			if file == "" {
				b.Release()
				return ownDatabaseID() // in memory: no other process reaches it
			}
			main = main || name == "main"
			b.String(name)
			b.String(filepath.Clean(file))
			b.String(fileIdentity(file))
		}
		if rows.Err() == nil && main {
			return b.Sum().String()[:16]
		}
		b.Release()
	}
	id := defaultDatabaseID(d)
	if strings.HasPrefix(id, "mem-") {
		return id
	}
	wd, _ := os.Getwd()
	return keys.Sum([]byte(id + "\x00" + wd)).String()[:16]
}

// postgresIdentityQuery reads what tells one PostgreSQL database from
// another, for any role: its name and OID (a database dropped and created
// again under its name has another), the server's address and port (two
// clusters copied from one data directory, a restored backup beside its
// origin, have one system identifier, OIDs and names), its start time,
// and whether the role may read the cluster's system identifier. Every
// function is qualified: a schema ahead of pg_catalog on the search_path
// could define its own current_database(). (pg_control_system() cannot
// be named in a query whose role may not run it, even in a branch not
// taken: the query fails, and on a transaction's connection its
// transaction too.)
const postgresIdentityQuery = `SELECT pg_catalog.concat_ws(E'\x1f', pg_catalog.current_database(),
	(SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())::text,
	pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')::text,
	COALESCE(pg_catalog.host(pg_catalog.inet_server_addr()), 'local'), pg_catalog.current_setting('port'),
	pg_catalog.pg_postmaster_start_time()::text)`

// postgresIdentity returns the identity of the database cp reaches, put
// in every key with the settings: the database's name and OID, the
// server's address and port, and the cluster's system identifier (the
// same on its physical standbys, which hold the same rows) or, for a role
// that may not read it, the server's start time. A restart then changes
// the identity, which only stops processes on either side of it from
// sharing entries. A standby reached at another address has another
// identity: no sharing, never another database's rows.
func postgresIdentity(ctx context.Context, cp gorm.ConnPool) (string, error) {
	var id string
	if err := cp.QueryRowContext(ctx, postgresIdentityQuery).Scan(&id); err != nil {
		return "", err
	}
	f := strings.Split(id, "\x1f")
	if len(f) == 6 && f[2] == "true" {
		var sys string
		if err := cp.QueryRowContext(ctx, "SELECT system_identifier::text FROM pg_catalog.pg_control_system()").Scan(&sys); err != nil {
			return "", err
		}
		f[5] = "system " + sys
	}
	return strings.Join(f, "\x1d"), nil
}

// sqliteReadsUncommitted reports whether a connection of cp reads
// uncommitted rows (PRAGMA read_uncommitted on: a connect hook sets it on
// every connection). Asking fails only without a connection: then no.
func sqliteReadsUncommitted(cp gorm.ConnPool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), catalogTimeout)
	defer cancel()
	var on int
	return cp.QueryRowContext(ctx, "PRAGMA read_uncommitted").Scan(&on) == nil && on != 0
}

// postgresProtocol is how pgx sends the bound values of the dialector's
// connections, which a key must tell apart: the simple protocol writes a
// []byte into the SQL as the text '\x6869', which matches another row of
// a text column than the bytes sent as a parameter, and the exec modes
// encode a time.Time for a timestamp column differently (a hostile run,
// issue 8's forty-first session: two processes, one with
// PreferSimpleProtocol, shared entries and one was served the other's
// rows). Read from postgres.Config.PreferSimpleProtocol and the DSN's
// default_query_exec_mode; "" is pgx's default.
func postgresProtocol(d gorm.Dialector) string {
	mode := ""
	dsn := dsnOf(d)
	if i := strings.Index(dsn, "default_query_exec_mode="); i >= 0 {
		mode = dsn[i+len("default_query_exec_mode="):]
		if j := strings.IndexAny(mode, " &'\""); j >= 0 {
			mode = mode[:j]
		}
	}
	if v, ok := dialectorStruct(d); ok {
		if c, ok := dialectorConfig(v); ok {
			if g := c.FieldByName("PreferSimpleProtocol"); g.IsValid() && g.Kind() == reflect.Bool && g.Bool() {
				mode = "simple_protocol"
			}
		}
	}
	return mode
}

// sqliteNeutralParams are DSN parameters of mattn/go-sqlite3 (and SQLite's
// URI) that change no result of a read: locking, waiting, journaling,
// caching. Every other parameter is part of the database's identity.
var sqliteNeutralParams = map[string]bool{
	"_busy_timeout": true, "_timeout": true, "_txlock": true, "_journal_mode": true, "_journal": true,
	"_synchronous": true, "_sync": true, "_cache_size": true, "_mutex": true, "cache": true,
	"mode": true, "vfs": true, "_locking_mode": true, "_locking": true,
}

// sqliteResultParams returns the DSN's parameters that may change a
// result, sorted (their order changes nothing).
func sqliteResultParams(dsn string) string {
	i := strings.IndexByte(dsn, '?')
	if i < 0 {
		return ""
	}
	var kept []string
	for _, kv := range strings.Split(dsn[i+1:], "&") {
		name, _, _ := strings.Cut(kv, "=")
		if kv != "" && !sqliteNeutralParams[strings.ToLower(name)] {
			kept = append(kept, kv)
		}
	}
	slices.Sort(kept)
	return strings.Join(kept, "&")
}
