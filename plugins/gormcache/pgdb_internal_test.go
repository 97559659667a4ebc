package gormcache

import (
	"database/sql"
	"testing"

	"querycache.dev/internal/testenv"
)

// pgSchemaDB opens a pool on a fresh PostgreSQL schema of the test's own
// (testenv.PostgresSchema), closed when the test ends, for the tests that
// put the plugin's catalog queries to the server directly.
func pgSchemaDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", testenv.PostgresSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		testenv.Unavailable(t, "PostgreSQL", err)
	}
	return db
}
