package gormcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
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
// So SQLite's identity is the main database file's full path, as SQLite
// reports it (PRAGMA database_list), and PostgreSQL's is read from the
// server (postgresIdentity) and put in every key with the settings.

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
// from the working directory), or an identity of its own for a database
// with no file (in memory, or temporary). When SQLite cannot be asked, the
// DSN's identity is taken with the working directory, which a relative
// path depends on.
func sqliteDatabaseID(ctx context.Context, cp gorm.ConnPool, d gorm.Dialector) string {
	rows, err := cp.QueryContext(ctx, "PRAGMA database_list")
	if err == nil {
		defer rows.Close()
		for rows.Next() {
			var (
				seq        int
				name, file string
			)
			if rows.Scan(&seq, &name, &file) != nil || name != "main" {
				continue
			}
			if file == "" {
				return ownDatabaseID()
			}
			return keys.Sum([]byte("sqlite\x00file\x00" + filepath.Clean(file))).String()[:16]
		}
	}
	id := defaultDatabaseID(d)
	if strings.HasPrefix(id, "mem-") {
		return id
	}
	wd, _ := os.Getwd()
	return keys.Sum([]byte(id + "\x00" + wd)).String()[:16]
}

// postgresIdentityQuery reads what tells one PostgreSQL database from
// another, on any server and for any role: its name and OID (a database
// dropped and created again under its name has another), and whether
// the role may read the cluster's system identifier. The address, port
// and start time of the server are the identity when it may not: a
// restart then changes it, which only stops processes on either side of
// the restart from sharing entries. (pg_control_system() cannot be named
// in a query whose role may not run it, even in a branch not taken: the
// query fails, and on a transaction's connection its transaction too.)
const postgresIdentityQuery = `SELECT concat_ws(E'\x1f', current_database(),
	(SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())::text,
	has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')::text,
	coalesce(host(inet_server_addr()), 'local'), current_setting('port'),
	pg_postmaster_start_time()::text)`

// postgresIdentity returns the identity of the database cp reaches, put
// in every key with the settings: the database's name and OID and the
// cluster's system identifier (the same on its physical standbys, which
// hold the same rows), or, for a role that may not read the identifier,
// the name, OID, address, port and start time of the server.
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
		id = f[0] + "\x1f" + f[1] + "\x1fsystem " + sys
	}
	return strings.ReplaceAll(id, "\x1f", "\x1d"), nil
}
