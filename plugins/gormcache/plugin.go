package gormcache

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// Plugin is the GORM plugin. Register one per *gorm.DB with db.Use; several
// databases may share one querycache.Cache.
type Plugin struct {
	cache *querycache.Cache
	ns    keys.Namespace

	dbID       string
	dialect    string
	sqlDialect sqlinspect.Dialect
	// escapeStrings: PostgreSQL sessions begin with
	// standard_conforming_strings off (settings.go, inspectSQL).
	escapeStrings atomic.Bool
	inner         gorm.ConnPool
	tenant        func(context.Context) string
	models        map[string]time.Duration
	modelList     []modelTTL
	txReads       bool
	beginLock     bool        // the SQLite DSN begins transactions with the write lock (txsnapshot.go)
	dirtyReads    bool        // the SQLite DSN opens a shared cache (Initialize)
	protocol      string      // how pgx sends bound values (postgresProtocol) and PGOPTIONS, in every key
	isoChanged    atomic.Bool // SQL text may have changed the default isolation (txsnapshot.go)
	snapBytes     int64
	snaps         *snapshots
	inspected     *otter.Cache[string, *inspection]
	front         *inspectionFront // the last inspections looked up (inspect.go)
	presets       atomic.Int64     // writes of preset SQL under way (writes.go, notePresetSQL)
	lates         atomic.Int64     // writes left to the default transaction's end (writechain.go, written)
	wc            writeChain       // whether GORM's write callbacks are still wrapped (writechain.go)
	names         sync.Map         // table -> versionNames
	hits          hitMemo          // a fingerprint's key (hitmemo.go)
	cat           catalog
	sets          settings
	namesCount    atomic.Int64
	// hiddenWarned is the last set of hidden writers warned of
	// (functions.go, warnHiddenWriters).
	hiddenWarned atomic.Pointer[string]
	err          error
	broken       map[string]bool // tests only: invalidation sources switched off
	w            watch           // transactions and connection state the plugin cannot see (txwatch.go)
	rf           replicaFence    // reads routed to replicas (replica.go)
	observers    []observer      // the options' (Observe, the sampler): see every marked statement's event (observe.go)
	sibs         *siblings       // the plugins on the same cache (catalogwatch.go), once registered
	evLog        *eventLogger    // the Debug line of every marked statement, when the cache has a logger (visibility_log.go)
	shapesOff    bool            // the shapes' counters are not kept (WithoutShapesForTest)
	mis          misconfig       // mistakes reported once (misconfig.go)
	sampler      *sampler        // the freshness sampler, when on (sampler.go)
	// samplerObserved: the sampler's observer is among observers (once,
	// whatever SampleFreshness options follow each other).
	samplerObserved bool
	shapes          shapeRegistry // per query shape counters and the decline rule (shapes.go)
	sig             signals       // OnChange subscriptions and delivery (signals.go)

	catalogPoll time.Duration // CatalogWatch's period: 0 the default, negative off
	stopWatch   func()        // stops the catalog watch (catalogwatch.go); nil without one
	// otherDDLs counts the catalog changes of other processes the watch
	// followed; factsUsed is one more than its value when a write last
	// began reading facts (0: never). See otherDDL (catalogwatch.go).
	otherDDLs, factsUsed atomic.Uint64
}

type modelTTL struct {
	model any
	ttl   time.Duration
}

// Option configures a Plugin.
type Option func(*Plugin)

// CacheModels caches every read of the listed models (their tables) for the
// default TTL, without marking each query, like django-cachalot. NoCache
// still opts a query out.
func CacheModels(models ...any) Option { return CacheModelsFor(0, models...) }

// CacheModelsFor is CacheModels with a TTL.
func CacheModelsFor(ttl time.Duration, models ...any) Option {
	return func(p *Plugin) {
		for _, m := range models {
			p.modelList = append(p.modelList, modelTTL{m, ttl})
		}
	}
}

// DatabaseID names the database in cache keys. Processes sharing a store
// share entries only if they give the same ID; two databases must never
// have the same one. The default on SQLite is the database files'
// (main and attached: full path, device and inode) with the host's name
// (a database in memory gets an ID of its own); on PostgreSQL it is
// derived from the DSN, and the database's identity read from the server
// (its name and OID, the server's address and port, the cluster's system
// identifier) is in every key besides, so that a DSN reaching another
// database through the environment (PGDATABASE, PGHOST) never shares
// entries (identity.go). The session settings a connection starts with
// are read from the server and keyed too (settings.go), except a custom
// setting (app.tenant, read by a row-security policy) given in a DSN's
// options, which no catalog shows: processes whose DSNs give different
// ones must not share an ID, nor SQLite processes whose DSNs set
// different parameters that change results (_cslike, _loc), which the
// default ID takes in.
func DatabaseID(id string) Option { return func(p *Plugin) { p.dbID = id } }

// Tenant adds a value taken from each query's context (a tenant, a schema,
// a role) to its cache key, for applications whose same SQL returns
// different rows per tenant.
//
// A nil f is an error of db.Use: it would share every tenant's results.
func Tenant(f func(ctx context.Context) string) Option {
	return func(p *Plugin) {
		if f == nil {
			p.optionError(errors.New("gormcache.Tenant: the function is nil, which would share every tenant's cached results; pass a func(ctx) string returning the tenant, or leave the option out"))
		}
		p.tenant = f
	}
}

// ReadsInTransactions lets marked queries inside a transaction read the
// cache for tables the transaction has not written (never fill it). Off by
// default: a transaction usually expects its own snapshot. A transaction
// that reads one snapshot, which the cache's latest rows may have passed,
// still bypasses it (reason "transaction_snapshot"): on PostgreSQL one at
// REPEATABLE READ or SERIALIZABLE; on SQLite one that does not hold the
// write lock (begun DEFERRED, the driver's default, and not yet written;
// a DSN with _txlock=immediate begins every transaction with it).
func ReadsInTransactions() Option { return func(p *Plugin) { p.txReads = true } }

// SnapshotBytes bounds the process memory kept for snapshots: the scanned
// destinations that make hits on structs and slices of structs cheap (see
// snapshot.go). 0 means 64 MiB; a negative value turns snapshots off, and
// every hit is then replayed through GORM's scanning.
func SnapshotBytes(n int64) Option { return func(p *Plugin) { p.snapBytes = n } }

// New returns the plugin for cache. Errors in cache or options are reported
// by db.Use.
func New(cache *querycache.Cache, opts ...Option) *Plugin {
	p := &Plugin{cache: cache}
	if cache == nil {
		p.err = errors.New("gormcache.New: cache is nil; create one with querycache.New")
		return p
	}
	if cache.Store() == nil {
		// &querycache.Cache{}: its methods would panic at the first
		// statement (TestMisconfigPluginOptions).
		p.err = errors.New("gormcache.New: the *querycache.Cache was not made by querycache.New (it has no store); create it with querycache.New")
		return p
	}
	p.ns = cache.Namespace()
	for i, o := range opts {
		if o == nil {
			p.optionError(fmt.Errorf("gormcache.New: option %d of %d is nil; leave it out, or pass an Option such as gormcache.CacheModels(&User{})", i+1, len(opts)))
			continue
		}
		o(p)
	}
	return p
}

// Name implements gorm.Plugin.
func (p *Plugin) Name() string { return "querycache" }

// Cache returns the cache the plugin serves from.
func (p *Plugin) Cache() *querycache.Cache { return p.cache }

// parseModels returns the tables of the models CacheModels named, with
// their TTLs.
func (p *Plugin) parseModels(db *gorm.DB) (map[string]time.Duration, error) {
	models := map[string]time.Duration{}
	for _, m := range p.modelList {
		stmt := &gorm.Statement{DB: db}
		if err := stmt.Parse(m.model); err != nil {
			return nil, fmt.Errorf("gormcache: CacheModels: %T is not a model GORM can parse: %w", m.model, err)
		}
		models[stmt.Schema.Table] = m.ttl
	}
	return models, nil
}

// Initialize implements gorm.Plugin: it replaces GORM's query and row
// callbacks, registers after-write callbacks and wraps the connection pool.
func (p *Plugin) Initialize(db *gorm.DB) error {
	if p.err != nil {
		return p.err
	}
	if p.cache == nil {
		// db.Use(&gormcache.Plugin{}): a plugin New did not make has no
		// cache, and panicked in the checks below (TestMisconfigPluginOptions).
		return errors.New("gormcache: the Plugin was not made by gormcache.New; use db.Use(gormcache.New(cache, options...))")
	}
	if skip, err := p.replicaSetup(db); skip || err != nil {
		return err // skip: a replica opened by dbresolver (replica.go)
	}
	if _, wrapped := db.ConnPool.(*pool); wrapped {
		return errors.New("gormcache: this *gorm.DB already has a gormcache plugin")
	}
	if err := p.claim(db); err != nil {
		return err
	}
	// What can still refuse the registration, before anything is changed:
	// a refused plugin is released (unclaim), so that it can be registered
	// again, there or on another *gorm.DB (TestHostile47FailedUseThenReuse).
	models, err := p.parseModels(db)
	if err == nil {
		err = p.checkCallbacks(db) // another query cache, a later replacement (misconfig.go)
	}
	if err == nil {
		err = p.signalsInit(db) // models of OnChange subscriptions (signals.go)
	}
	if err != nil {
		p.unclaim()
		return err
	}
	p.models = models
	p.dialect = db.Dialector.Name()
	p.beginLock = p.dialect == "sqlite" && sqliteLocksAtBegin(dsnOf(db.Dialector))
	// A SQLite shared cache's connections may read a transaction's
	// uncommitted rows (PRAGMA read_uncommitted, which a connect hook may
	// set unseen): a fill is not stored while a transaction of the
	// plugin's may have written its tables, or after one rolled back
	// while it ran (querycache.LookupOptions.SeesUncommitted). Known from
	// the DSN, or from a connection (a *sql.DB passed as the dialector's
	// Conn has no DSN here: TestDirtyReadConnDialector).
	p.dirtyReads = p.dialect == "sqlite" && (strings.Contains(strings.ToLower(dsnOf(db.Dialector)), "cache=shared") || sqliteReadsUncommitted(db.ConnPool))
	p.sqlDialect = sqlinspect.DialectOf(p.dialect)
	if p.dialect == "postgres" {
		p.protocol = postgresProtocol(db.Dialector)
		if opts := os.Getenv("PGOPTIONS"); opts != "" {
			// pgx sends it to the server with every connection made from
			// a DSN: a custom setting in it (-c app.tenant=acme, read by
			// a row-security policy) is in no catalog the settings read.
			p.protocol += "\x00PGOPTIONS=" + opts
		}
	}
	switch {
	case p.snapBytes == 0:
		p.snaps = newSnapshots(64 << 20)
	case p.snapBytes > 0:
		p.snaps = newSnapshots(p.snapBytes)
	}
	p.inspected = newInspections()
	p.front = &inspectionFront{seed: maphash.MakeSeed()}
	if p.dbID == "" {
		if p.dialect == "sqlite" {
			ctx, cancel := context.WithTimeout(context.Background(), catalogTimeout)
			p.dbID = sqliteDatabaseID(ctx, db.ConnPool, db.Dialector)
			cancel()
		} else {
			p.dbID = defaultDatabaseID(db.Dialector)
		}
	}
	cb := db.Callback()
	steps := []error{
		cb.Query().Replace("gorm:query", p.queryCallback),
		cb.Row().Replace("gorm:row", p.rowCallback),
		cb.Create().Before("gorm:create").Register("querycache:preset_sql", p.notePresetSQL),
		cb.Update().Before("gorm:update").Register("querycache:preset_sql", p.notePresetSQL),
		cb.Delete().Before("gorm:delete").Register("querycache:preset_sql", p.notePresetSQL),
		p.wrapWrites(db), // GORM's writes, db.Exec and the commit, wrapped (writechain.go)
	}
	if err := errors.Join(steps...); err != nil {
		return fmt.Errorf("gormcache: registering callbacks: %w", err)
	}
	if err := p.initVisibility(db); err != nil { // FromCache, GORM's logger, slog, spans (visibility.go)
		return err
	}

	p.inner = db.ConnPool
	w := &pool{ConnPool: db.ConnPool, p: p}
	p.rf.outer = w
	db.ConnPool = w
	if db.Statement != nil {
		db.Statement.ConnPool = w
	}
	p.learnSettings(p.inner)
	p.joinSiblings() // DDL through other plugins on the cache (catalogwatch.go)
	p.watchCatalog() // and through other processes sharing the store
	return nil
}

// dsnOf finds a DSN field in a dialector (sqlite.Dialector.DSN,
// postgres.Dialector.Config.DSN) without importing the drivers.
func dsnOf(d gorm.Dialector) string {
	v, ok := dialectorStruct(d)
	if !ok {
		return ""
	}
	if s := stringField(v, "DSN"); s != "" {
		return s
	}
	if c, ok := dialectorConfig(v); ok {
		return stringField(c, "DSN")
	}
	return ""
}

// dialectorConfig is the struct of the Config field of a dialector's
// struct v (postgres.Dialector.Config, through its pointer), if any.
func dialectorConfig(v reflect.Value) (reflect.Value, bool) {
	f := v.FieldByName("Config")
	if !f.IsValid() {
		return f, false
	}
	for f.Kind() == reflect.Pointer && !f.IsNil() {
		f = f.Elem()
	}
	return f, f.Kind() == reflect.Struct
}

// dialectorStruct is the struct a dialector is, or points to (through
// at most three pointers or interfaces).
func dialectorStruct(d gorm.Dialector) (reflect.Value, bool) {
	v := reflect.ValueOf(d)
	for i := 0; i < 3 && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface); i++ {
		if v.IsNil() {
			return v, false
		}
		v = v.Elem()
	}
	return v, v.Kind() == reflect.Struct
}

// dialectorField reads the string field name of a dialector's struct
// without importing its driver; "" when there is none.
func dialectorField(d gorm.Dialector, name string) string {
	v, ok := dialectorStruct(d)
	if !ok {
		return ""
	}
	return stringField(v, name)
}

// stringField is the string field name of the struct v, or "".
func stringField(v reflect.Value, name string) string {
	if f := v.FieldByName(name); f.IsValid() && f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}

// record notes that the statement's write changed ch: inside a managed
// transaction it waits for the commit; outside one (auto-commit) the write
// has already committed when the callback runs, so it applies now. Inside a
// transaction the plugin did not begin, it applies now, the tables stay
// fenced, and it applies again once the end is confirmed (txwatch.go).
func (p *Plugin) record(db *gorm.DB, source string, ch querycache.Change) {
	if ch.Empty() || p.broken[source] {
		return
	}
	p.recordScoped(db, ch)
	if p.sig.active.Load() { // OnChange subscribers (signals.go)
		p.signal(db, source, ch)
	}
}

func (p *Plugin) apply(ctx context.Context, ch querycache.Change) {
	// Errors are logged and counted by the cache, which keeps the
	// undelivered versions bypassed until they are delivered.
	p.schemaChanged(ch)
	// The replica fence is recorded by the cache's OnInvalidate hook, for
	// every plugin on the cache, before the versions change (replica.go,
	// siblings.fence).
	_ = p.cache.Invalidate(ctx, ch)
}
