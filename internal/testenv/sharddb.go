package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WithDatabase returns dsn (a URL or keyword/value DSN) naming database
// name instead of its own.
func WithDatabase(dsn, name string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		u.Path = "/" + name
		return u.String()
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "dbname=") {
			// Replaced where it is, not appended: pgx takes the last
			// dbname, but readers of the DSN (pgField) the first.
			fields[i] = "dbname=" + name
			return strings.Join(fields, " ")
		}
	}
	return dsn + " dbname=" + name
}

// DatabaseName returns the database dsn (a URL or keyword/value DSN)
// names, "" when it names none.
func DatabaseName(dsn string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return ""
		}
		return strings.TrimPrefix(u.Path, "/")
	}
	return pgField(dsn, "dbname")
}

// shardDatabases creates a PostgreSQL database for each shard after the
// first and returns the DSN each shard is to use ("" for the first: it
// keeps PostgresDSN's) and a function that drops them. With the server out
// of reach it returns no DSNs: the shards' tests then skip or fail on
// their own.
//
// Why a database each: the plugin notices DDL database-wide (its catalog
// watch, its catalog facts), and tests that check what another process's
// DDL does (or that nothing else's does) failed in CI when the other shard
// ran DDL on the same database at the same moment. One process's tests
// were already written to share a database with each other; two processes
// are not.
func shardDatabases(shards int) ([]string, func()) {
	base := PostgresDSN()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return nil, func() {}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var current string
	if err := admin.QueryRowContext(ctx, "SELECT current_database()").Scan(&current); err != nil {
		admin.Close()
		return nil, func() {}
	}
	pkg := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")))
	prefix := current + "_shard_" + pkg + "_"
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	dropLeftovers(ctx, admin, prefix)

	dsns := make([]string, shards)
	var made []string
	stamp := time.Now().Unix()
	for i := 1; i < shards; i++ {
		name := fmt.Sprintf("%s%d_%d_%d", prefix, stamp, os.Getpid(), i+1)
		if _, err := admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: the shards share PostgreSQL database %s (creating one per shard: %v)\n", current, err)
			dsns = nil
			break
		}
		made = append(made, name)
		dsns[i] = WithDatabase(base, name)
	}
	return dsns, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range made {
			_, _ = admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
		}
		admin.Close()
	}
}

// dropLeftovers drops the shard databases of this package's earlier runs
// that were killed before they dropped their own: those whose name says
// they were made more than two hours ago (no run lives that long: go
// test's -timeout). A younger one may be a concurrent run's.
func dropLeftovers(ctx context.Context, admin *sql.DB, prefix string) {
	rows, err := admin.QueryContext(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
	if err != nil {
		return
	}
	var old []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(name, prefix), "_")
		if s, err := strconv.ParseInt(stamp, 10, 64); err == nil && time.Since(time.Unix(s, 0)) > 2*time.Hour {
			old = append(old, name)
		}
	}
	rows.Close()
	for _, name := range old {
		_, _ = admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`)
	}
}
