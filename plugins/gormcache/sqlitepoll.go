package gormcache

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"querycache.dev/invalidation"
)

// WatchSQLite starts an invalidation.SQLitePoller for the SQLite file of
// db, which must have this plugin registered: commits made to the file by
// other processes or connections stop being served within the poller's
// Interval (5ms by default). Unless opts names a DSN or a *sql.DB, the
// poller opens a connection of its own with db's DSN; with a DSN and no
// DriverName, it opens it with db's driver name. When
// the poller sees another program change the schema, the plugin forgets
// what it learned from the catalog. Call Close on the poller when done.
func WatchSQLite(ctx context.Context, db *gorm.DB, opts invalidation.SQLitePollOptions) (*invalidation.SQLitePoller, error) {
	const fn = "gormcache.WatchSQLite"
	if db == nil {
		return nil, errors.New(fn + ": db is nil")
	}
	p, ok := db.Config.Plugins[(&Plugin{}).Name()].(*Plugin)
	if !ok {
		return nil, errors.New(fn + ": db has no gormcache plugin; call db.Use(gormcache.New(cache)) first")
	}
	if name := db.Dialector.Name(); name != "sqlite" {
		return nil, fmt.Errorf("%s: db is a %s database; the data_version poller is for SQLite (PostgreSQL has its trigger listener)", fn, name)
	}
	if opts.DSN == "" && opts.DB == nil {
		opts.DSN = dsnOf(db.Dialector)
		if opts.DSN == "" {
			return nil, errors.New(fn + ": db's dialector has no DSN (opened from an existing connection?); set opts.DSN to the file's DSN")
		}
	}
	if opts.DSN != "" && opts.DriverName == "" {
		// db's driver also for a DSN given: a driver registered with a
		// ConnectHook (ATTACH on every connection) attaches the same
		// databases to the poller's connection, whose commits it then
		// sees (TestHostile49SQLitePollExplicitDSNMissesAttached).
		opts.DriverName = driverNameOf(db.Dialector)
	}
	// DDL by another program: forget the primary keys and collations
	// learned from the old schema, as the plugin does for its own DDL.
	user := opts.OnSchemaChange
	opts.OnSchemaChange = func() {
		p.cat.forget()
		if user != nil {
			user()
		}
	}
	poller, err := invalidation.NewSQLitePoller(p.cache, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	if err := poller.Start(ctx); err != nil {
		_ = poller.Close()
		return nil, fmt.Errorf("%s: %w", fn, err)
	}
	return poller, nil
}

// driverNameOf reads sqlite.Dialector.DriverName without importing the
// driver; "" lets the poller use its default.
func driverNameOf(d gorm.Dialector) string { return dialectorField(d, "DriverName") }
