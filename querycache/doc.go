// Package querycache is the cache engine behind the GORM plugin: stores,
// versioned entries, fills with stampede control, invalidation and
// statistics. It neither parses nor inspects the application's SQL and
// knows nothing of GORM (its PostgreSQL store speaks SQL to its own tables
// only); plugins (see querycache.dev/plugins/gormcache) decide what a
// statement's key and dependencies are and hand the engine opaque bytes.
//
// The consistency rules it enforces are in docs/DESIGN.md (C1 to C5). In
// short: every entry records the random tokens of the versions it depends
// on, read before the value was computed; an entry is served only while all
// of them are unchanged; a write replaces the tokens after it commits. A
// value computed before a write therefore can never be served after it.
package querycache
