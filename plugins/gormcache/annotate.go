package gormcache

import (
	"context"
	"time"

	"gorm.io/gorm"
)

// CacheOptions says how one query (or every query run with a context) may
// be cached.
type CacheOptions struct {
	// TTL of the entry; 0 means the cache's DefaultTTL.
	TTL time.Duration
	// Tables declares tables the statement depends on beyond those read from
	// its SQL: the tables behind a view, or read by a function. Declaring
	// them also lets a statement whose tables cannot be read from its SQL be
	// cached.
	Tables []string
	// AllowNondeterministic caches statements whose result is not a
	// function of the data alone, which are otherwise refused: NOW(),
	// RANDOM(), current_setting(), any function that is not IMMUTABLE on
	// PostgreSQL or not a deterministic built-in on SQLite, a bound 'now'.
	// The cached value then stays until it expires or a dependency changes.
	AllowNondeterministic bool
	// Catalog caches statements reading system catalogs
	// (information_schema, pg_catalog, sqlite_master, pragmas), which are
	// otherwise refused even under a context-wide mark, so that the
	// Migrator always sees the real schema. Any DDL statement invalidates
	// them.
	Catalog bool
}

type mark struct {
	off  bool // NoCache: never cache, even a listed model
	opts CacheOptions
	err  error // a misconfigured mark (negative TTL): the statement's error (misconfig.go)
}

type markKey struct{}

// WithCache returns a context whose queries may be cached for ttl (0: the
// default TTL). Preload sub-queries and hooks running with the context keep
// the mark. It does not undo an opt-out already in ctx.
func WithCache(ctx context.Context, ttl time.Duration) context.Context {
	return WithCacheOptions(ctx, CacheOptions{TTL: ttl})
}

// WithCacheOptions is WithCache with every option.
//
// A negative TTL, or a name in Tables that spells no table, makes every
// statement run with the context fail with an error saying so. Without any gormcache plugin registered in the
// process, it warns once (slog.Default) that nothing will be cached.
func WithCacheOptions(ctx context.Context, o CacheOptions) context.Context {
	if optedOut(ctx) {
		return ctx
	}
	warnIfNoPlugin()
	return context.WithValue(ctx, markKey{}, mark{opts: o, err: checkMarkOptions("gormcache.WithCache", o)})
}

// WithoutCache returns a context whose queries are never served from the
// cache, not even those of models cached by default or marked Cacheable
// later: an opt-out always wins.
func WithoutCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, markKey{}, offMark)
}

// Cacheable is a GORM scope marking a query as cacheable for the default
// TTL: db.Scopes(gormcache.Cacheable()).First(&post, 42). On a *gorm.DB
// without the plugin (db.Use(gormcache.New(cache))), the statement fails
// with an error saying so, as with CacheFor and CacheWith.
func Cacheable() func(*gorm.DB) *gorm.DB { return cacheableScope }

// The common marks are allocated once: a hit should cost as little as
// possible beyond building the statement.
var (
	defaultMark    any = mark{}
	offMark        any = mark{off: true}
	cacheableScope     = func(db *gorm.DB) *gorm.DB {
		if !hasPlugin(db) {
			_ = db.AddError(errNoPlugin("gormcache.Cacheable"))
			return db
		}
		if !optedOut(stmtContext(db)) {
			db.Statement.Context = context.WithValue(stmtContext(db), markKey{}, defaultMark)
		}
		return db
	}
	noCacheScope = func(db *gorm.DB) *gorm.DB {
		db.Statement.Context = context.WithValue(stmtContext(db), markKey{}, offMark)
		return db
	}
)

// CacheFor is a GORM scope marking a query as cacheable for ttl (0: the
// cache's DefaultTTL). A negative ttl is the statement's error.
func CacheFor(ttl time.Duration) func(*gorm.DB) *gorm.DB {
	return cacheWith("gormcache.CacheFor", CacheOptions{TTL: ttl})
}

// CacheWith is a GORM scope marking a query as cacheable with o. An
// opt-out (NoCache, WithoutCache) already on the query wins. A negative
// TTL, a name in Tables that spells no table, or a *gorm.DB without the
// plugin, is the statement's error.
func CacheWith(o CacheOptions) func(*gorm.DB) *gorm.DB { return cacheWith("gormcache.CacheWith", o) }

func cacheWith(fn string, o CacheOptions) func(*gorm.DB) *gorm.DB {
	bad := checkMarkOptions(fn, o)
	return func(db *gorm.DB) *gorm.DB {
		if bad != nil {
			_ = db.AddError(bad)
			return db
		}
		if !hasPlugin(db) {
			_ = db.AddError(errNoPlugin(fn))
			return db
		}
		if !optedOut(stmtContext(db)) {
			db.Statement.Context = WithCacheOptions(stmtContext(db), o)
		}
		return db
	}
}

// optedOut reports whether ctx carries NoCache or WithoutCache: an opt-out
// is never overridden by a later mark, so code that must read fresh data
// (after its own write, say) can rely on it.
func optedOut(ctx context.Context) bool {
	m, ok := ctx.Value(markKey{}).(mark)
	return ok && m.off
}

// NoCache is a GORM scope keeping a query away from the cache, even when
// its model is cached by default.
func NoCache() func(*gorm.DB) *gorm.DB { return noCacheScope }

func stmtContext(db *gorm.DB) context.Context {
	if db.Statement.Context != nil {
		return db.Statement.Context
	}
	return context.Background()
}

// markOf returns how the statement may be cached; ok is false when it must
// not touch the cache.
func (p *Plugin) markOf(db *gorm.DB) (CacheOptions, bool) {
	if m, found := stmtContext(db).Value(markKey{}).(mark); found {
		if m.err != nil {
			p.badMark(db, m.err)
			return CacheOptions{}, false
		}
		return m.opts, !m.off
	}
	if s := db.Statement.Schema; s != nil && len(p.models) > 0 {
		if ttl, ok := p.models[s.Table]; ok {
			return CacheOptions{TTL: ttl}, true
		}
	}
	return CacheOptions{}, false
}
