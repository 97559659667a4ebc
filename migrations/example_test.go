package migrations_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"querycache.dev/migrations"
)

// Install the triggers on two tables of schema public, notifying channel
// "querycache" (the listener's default). With a pgxpool.Pool, pass
// stdlib.OpenDBFromPool(pool) instead of db.
func ExampleInstallPostgresTriggers() {
	ctx := context.Background()
	db, err := sql.Open("pgx", "postgres://app@localhost:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	res, err := migrations.InstallPostgresTriggers(ctx, db, migrations.Options{
		Schema: "public",
		Tables: []string{"users", "orders"}, // nil: every table of the schema
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range res {
		fmt.Println(r.Table, r.Mode, r.Note) // e.g. "public.users keys installed"
	}
}

// Print the SQL instead of running it, to review it or apply it with psql.
func ExamplePostgresInstallSQL() {
	q, err := migrations.PostgresInstallSQL(migrations.Options{Schema: "public", Channel: "querycache"})
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range strings.Split(q, "\n") {
		if strings.HasPrefix(line, "CREATE OR REPLACE FUNCTION") || strings.HasPrefix(line, "SELECT table_name") {
			fmt.Println(line)
		}
	}
	// Output:
	// CREATE OR REPLACE FUNCTION "public".querycache_notify() RETURNS trigger
	// CREATE OR REPLACE FUNCTION "public".querycache_install(p_schema name, p_tables text[], p_channel text)
	// SELECT table_name, mode, note FROM "public".querycache_install('public', NULL, 'querycache');
}
