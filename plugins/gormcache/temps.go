package gormcache

import (
	"context"
	"slices"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// Temporary relations and triggers live on the connection that made them:
// the names the plugin saw made temporary (or found made by code the text
// does not show) are remembered here, and decide what reads bypass and
// what writes invalidate (DESIGN.md, session state).

// maxTempNames bounds the names remembered as temporary tables; beyond it
// caching stops.
const maxTempNames = 1024

// noteTempTables remembers names created as temporary tables: on the
// connection that created one, it shadows the permanent relation of that
// name, so no lookup reading the name uses the cache any more. The names
// are also invalidated, for an entry filled from the temporary table on
// that connection between its creation and now.
func (p *Plugin) noteTempTables(db *gorm.DB, names []string) {
	p.noteTempTablesCtx(stmtContext(db), names)
}

// noteTempTablesCtx is noteTempTables with the context of its invalidation.
func (p *Plugin) noteTempTablesCtx(ctx context.Context, names []string) {
	if p.broken["temp"] {
		return
	}
	ch := querycache.Change{Cause: causeTempTable}
	others := p.siblingPlugins() // as for temporary triggers (noteTempTriggers)
	for _, n := range names {
		n = sqlinspect.NormalizeTable(n)
		if n == "" {
			continue
		}
		p.rememberEverywhere(others, n, (*Plugin).rememberTemp)
		ch.Tables = append(ch.Tables, n)
	}
	if len(ch.Tables) > 0 {
		p.apply(ctx, ch)
	}
}

// rememberEverywhere has p and others (the other plugins on its cache:
// siblingPlugins) remember the temporary name n, each with remember, but
// for a plugin whose temporary names a test switched off.
func (p *Plugin) rememberEverywhere(others []*Plugin, n string, remember func(*Plugin, string)) {
	remember(p, n)
	for _, o := range others {
		if !o.broken["temp"] {
			remember(o, n)
		}
	}
}

// rememberTemp remembers a name created as a temporary table.
func (p *Plugin) rememberTemp(n string) {
	if _, loaded := p.w.temps.LoadOrStore(n, struct{}{}); !loaded {
		if p.w.tempCount.Add(1) > maxTempNames {
			p.stop("temp_tables", "gormcache: more than 1024 names were created as temporary tables; this plugin no longer serves or fills the cache for this database (bypass \"temp_tables\").")
		}
	}
}

// noteTempTriggers remembers the tables temporary triggers were created
// on. Such a trigger fires for writes on the connection that created it
// only, and the catalog's facts, read on whichever connection is free,
// may not show it (TestHostile28TempTriggerOnOneConnection): every later
// write of such a table invalidates everything (withDependents). What a
// write on that connection fired between the trigger's creation and now
// is not known either: everything is invalidated now, once.
func (p *Plugin) noteTempTriggers(db *gorm.DB, tables []string) {
	if p.broken["temp"] {
		return
	}
	// Every plugin on the cache remembers them: another *gorm.DB over the
	// same *sql.DB runs its writes on the trigger's connection too
	// (TestHostile53SiblingTempTriggerSharedPool). One whose database is
	// another only widens its writes of a table of that name.
	others := p.siblingPlugins()
	for _, n := range tables {
		n = sqlinspect.NormalizeTable(n)
		if n == "" {
			continue
		}
		p.rememberEverywhere(others, n, (*Plugin).rememberTempTrigger)
	}
	p.apply(stmtContext(db), querycache.Change{All: true, Cause: causeTempTrigger})
}

// rememberTempTrigger remembers a table a temporary trigger is on.
func (p *Plugin) rememberTempTrigger(n string) {
	if _, loaded := p.w.tempTrigs.LoadOrStore(n, struct{}{}); !loaded {
		if p.w.tempTrigCount.Add(1) > maxTempNames {
			p.stop("temp_tables", "gormcache: temporary triggers were created on more than 1024 tables; this plugin no longer serves or fills the cache for this database (bypass \"temp_tables\").")
		}
	}
}

// noteTriggersOnTemps notes, on SQLite, a trigger created without TEMP on
// a name known as a temporary table: SQLite makes it a temporary trigger
// (it cannot live in the main schema on a temporary table), which fires
// on its connection only, and which the catalog's facts, read on another
// connection, do not show (TestHostile53SQLiteTriggerOnTempTable). The
// inspector tells a temporary trigger by its TEMP keyword or temp schema
// alone: every temporary name the statement writes is marked (over-marking
// costs only invalidations and bypasses).
func (p *Plugin) noteTriggersOnTemps(db *gorm.DB, info sqlinspect.Statement) {
	if p.dialect != "sqlite" || info.Kind != sqlinspect.KindDDL || p.w.tempCount.Load() == 0 || !containsFold(db.Statement.SQL.String(), "TRIGGER") {
		return
	}
	var names []string
	for _, t := range info.Writes {
		if _, temp := p.w.temps.Load(t); temp && !slices.Contains(info.TempTriggers, t) {
			names = append(names, t)
		}
	}
	if len(names) > 0 {
		p.noteTempTriggers(db, names)
	}
}

// noteTempViews remembers names created as temporary views (noteTempTables
// has remembered them as temporary relations): a view shadowing a table on
// its connection runs its query when read or written through, which may
// call a function that writes, and the catalog's facts describe the main
// schema's relation (callsHiddenWriter).
func (p *Plugin) noteTempViews(names []string) {
	if p.broken["temp"] {
		return
	}
	others := p.siblingPlugins() // as for temporary triggers (noteTempTriggers)
	for _, n := range names {
		n = sqlinspect.NormalizeTable(n)
		if n == "" {
			continue
		}
		p.rememberEverywhere(others, n, (*Plugin).rememberTempView)
	}
}

// rememberTempView remembers a name created as a temporary view.
func (p *Plugin) rememberTempView(n string) {
	if _, loaded := p.w.tempViews.LoadOrStore(n, struct{}{}); !loaded {
		p.w.tempViewCount.Add(1) // bounded by the temporary names' limit (noteTempTables)
	}
}

// followTempNames carries what is remembered of temporary names across DDL
// that writes one of them with other names: ALTER TABLE x RENAME TO items
// makes items the temporary table x was (shadowing the main schema's items
// on its connection: TestHostile29TempTableRenamedOverMain,
// TestHostile29TempRenamedShadows), and renaming a table a temporary
// trigger is on moves the trigger (TestHostile29TempTriggerTableRenamed).
// The inspector does not say which name is the rename's target: every
// other name the statement writes is marked (over-marking costs only
// bypasses and invalidations).
func (p *Plugin) followTempNames(db *gorm.DB, info sqlinspect.Statement) {
	if info.Kind != sqlinspect.KindDDL || len(info.Writes) < 2 {
		return
	}
	var temp, view, trig bool
	for _, t := range info.Writes {
		_, isTemp := p.w.temps.Load(t)
		_, isView := p.w.tempViews.Load(t)
		_, isTrig := p.w.tempTrigs.Load(t)
		temp, view, trig = temp || isTemp, view || isView, trig || isTrig
	}
	if !temp && !view && !trig {
		return
	}
	names := make([]string, 0, len(info.Writes))
	for _, t := range info.Writes {
		if t != keys.CatalogTable {
			names = append(names, t)
		}
	}
	if view {
		p.noteTempViews(names)
	}
	if temp {
		p.noteTempTables(db, names)
	}
	if trig {
		p.noteTempTriggers(db, names)
	}
}

// runsHiddenCode reports whether a PostgreSQL statement ran code its text
// does not show, which may have created temporary relations (CREATE TEMP
// TABLE in a DO block or a function's body): a statement the inspector
// cannot classify, or a call of a function that may write.
func (p *Plugin) runsHiddenCode(db *gorm.DB, info sqlinspect.Statement) bool {
	return p.dialect == "postgres" && (info.Kind == sqlinspect.KindUnknown ||
		len(info.Functions) > 0 && p.mayWrite(db, info, false))
}

// tempShadowsQuery lists the temporary relations of every session whose
// name a permanent relation in a schema of the search_path also has
// (pg_class shows other sessions' temporary relations, once committed):
// the names a connection may read differently from the others. A
// temporary name no such permanent relation has shadows nothing the
// application reads unqualified. (Other sessions' may be another
// application's: marking their names costs bypasses only.) The path's
// schemas are compared, not pg_table_is_visible: on the connection with
// the temporary table, that one hides the permanent one.
const tempShadowsQuery = `SELECT DISTINCT t.relname, t.relkind = 'v' FROM pg_catalog.pg_class t
WHERE t.relpersistence = 't' AND t.relkind IN ('r', 'v', 'p', 'f', 'm')
AND EXISTS (SELECT 1 FROM pg_catalog.pg_class o WHERE o.relname = t.relname AND o.relpersistence <> 't'
  AND o.relkind IN ('r', 'v', 'p', 'f', 'm')
  AND o.relnamespace IN (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = ANY (pg_catalog.current_schemas(false))))`

// discoverTemps notes the temporary relations that shadow permanent ones
// (tempShadowsQuery) after code the text does not show ran (runsHiddenCode):
// a temporary table made by a DO block is otherwise never known, and its
// rows, read on its connection, were served to every connection
// (TestHostile29PostgresTempFromDOShadows). Read on the pool (waiting for
// a connection up to catalogTimeout); when the read fails, caching stops
// for the database (what shadows what cannot be known).
func (p *Plugin) discoverTemps(ctx context.Context) {
	p.discoverTempsOn(ctx, p.inner)
}

// discoverTempsAfter is discoverTemps after a statement on the pool. When
// the pool has no connection to give at once (none idle, and at its
// MaxOpenConns), the look runs on a goroutine of its own: the statement
// returns, and every lookup bypasses the cache (temp_table) until the look
// has ended. Read in the statement's goroutine, it waited for a connection,
// and when the caller held them all (the statement's own Rows still open,
// on a pool of one or two) the statement returned after catalogTimeout
// (5 s) and caching stopped for good
// (TestHiddenCodeOnExhaustedPoolKeepsCaching). With a connection free it
// reads at once, as before: a look on a goroutine made every lookup of the
// process bypass for its length, after every such statement
// (TestHostile32FunctionBodyWithoutSessionChangeKeepsCaching).
func (p *Plugin) discoverTempsAfter(ctx context.Context) {
	if db, err := sqlDB(p.inner); err == nil {
		if s := db.Stats(); s.Idle > 0 || s.MaxOpenConnections <= 0 || s.OpenConnections < s.MaxOpenConnections {
			p.discoverTemps(ctx)
			return
		}
	}
	p.w.tempsLooking.Add(1)
	ctx = context.WithoutCancel(ctx)
	go func() {
		defer p.w.tempsLooking.Add(-1) // after the names are noted
		p.discoverTemps(ctx)
	}()
}

// tempsLookAgain looks for temporary tables again after a change that may
// have created permanent relations, once hidden code has been looked
// after: the look keeps only the temporary names a permanent relation has,
// and one created later under such a name was shadowed on the temporary
// table's connection, unmarked (TestHostileTmpPermanentCreatedLater).
func (p *Plugin) tempsLookAgain() {
	if p.w.tempsLooked.Load() && !p.broken["temp"] {
		p.discoverTempsAfter(context.Background())
	}
}

// discoverTempsOn is discoverTemps read on cp: a db.Connection's statement
// looks on its own connection, which its caller holds (on the pool, with
// every other connection busy, the look waited for it until it timed out).
func (p *Plugin) discoverTempsOn(ctx context.Context, cp gorm.ConnPool) {
	p.w.tempsLooked.Store(true)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catalogTimeout)
	defer cancel()
	rows, err := cp.QueryContext(ctx, tempShadowsQuery)
	if err != nil {
		p.tempsUnknown(err)
		return
	}
	defer rows.Close()
	var names, views []string
	for rows.Next() {
		var name string
		var view bool
		if err := rows.Scan(&name, &view); err != nil {
			p.tempsUnknown(err)
			return
		}
		n, err := keys.Table(`"` + strings.ReplaceAll(name, `"`, `""`) + `"`)
		if err != nil {
			continue
		}
		if _, known := p.w.temps.Load(n); known {
			continue
		}
		names = append(names, n)
		if view {
			views = append(views, n)
		}
	}
	if err := rows.Err(); err != nil {
		p.tempsUnknown(err)
		return
	}
	if len(views) > 0 {
		p.noteTempViews(views)
	}
	if len(names) > 0 {
		p.noteTempTablesCtx(ctx, names)
	}
}

// tempsUnknown stops caching for the database when the look for temporary
// relations failed: what shadows what cannot be known.
func (p *Plugin) tempsUnknown(err error) {
	p.stop("temp_tables", "gormcache: looking for temporary tables made by code the SQL text does not show failed ("+err.Error()+"); this plugin no longer serves or fills the cache for this database (bypass \"temp_tables\").")
}

// readsTempView reports whether any of tables was ever created as a
// temporary view.
func (w *watch) readsTempView(tables []string) bool {
	for _, t := range tables {
		if _, ok := w.tempViews.Load(t); ok {
			return true
		}
	}
	return false
}

// writesTempTriggered reports whether ch names a table a temporary trigger
// was created on.
func (w *watch) writesTempTriggered(ch querycache.Change) bool {
	for _, t := range ch.Tables {
		if _, ok := w.tempTrigs.Load(t); ok {
			return true
		}
	}
	for _, r := range ch.Rows {
		if _, ok := w.tempTrigs.Load(r.Table); ok {
			return true
		}
	}
	return false
}

// readsTemp reports whether any of tables was ever created as a temporary
// table.
func (w *watch) readsTemp(tables []string) bool {
	for _, t := range tables {
		if _, ok := w.temps.Load(t); ok {
			return true
		}
	}
	return false
}
