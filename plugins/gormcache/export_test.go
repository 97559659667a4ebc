package gormcache

import "time"

// BreakForTest disables one invalidation source ("create", "update",
// "delete", "raw", "read_write", "commit") so that tests can show they catch
// its absence.
func BreakForTest(p *Plugin, source string) {
	if p.broken == nil {
		p.broken = map[string]bool{}
	}
	p.broken[source] = true
}

// SetCatalogMaxAgeForTest shortens how long learned catalog facts are
// trusted (catalogMaxAge).
func SetCatalogMaxAgeForTest(p *Plugin, d time.Duration) { p.cat.maxAge.Store(int64(d)) }

// CatalogGenForTest is the plugin's catalog generation: it moves each time
// the plugin forgets what it learned of the schema.
func CatalogGenForTest(p *Plugin) uint64 { return p.cat.gen.Load() }

// StopCatalogWatchForTest stops the plugin's catalog watch: its polls
// reach the store every 100 ms, which a test of what the store does on
// its first call after a restart must not have happen first.
func StopCatalogWatchForTest(p *Plugin) {
	if p.stopWatch != nil {
		p.stopWatch()
	}
}

// RowWritePlannedForTest reports whether a GORM write of sql has a
// remembered verdict (rowwrite.go).
func RowWritePlannedForTest(p *Plugin, sql string) bool {
	return p.inspection(sql).rowWrite.Load() != nil
}
