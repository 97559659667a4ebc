package gormcache

import (
	"gorm.io/gorm"
	"querycache.dev/sqlinspect"
)

// connGuard returns a non-empty bypass reason when the statement must not
// use the cache because of the connection it runs on: a transaction the
// plugin cannot see, or session state that changes results.
func (p *Plugin) connGuard(db *gorm.DB) string { return "" }

// fenced returns a non-empty bypass reason when any of tables has a write
// whose commit the plugin cannot see yet.
func (p *Plugin) fenced(tables []string) string { return "" }

// observeRaw is told of every statement written by the user (db.Exec,
// db.Raw) after it ran: transaction control and session state changes.
func (p *Plugin) observeRaw(db *gorm.DB, info sqlinspect.Statement) {}
