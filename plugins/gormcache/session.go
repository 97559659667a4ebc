package gormcache

import (
	"context"
	"strconv"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// SessionStateInKey declares that the function given to Tenant returns a
// different value whenever the connection state a statement runs with
// differs: every SET search_path, SET ROLE, set_config(...), ATTACH or
// result-changing PRAGMA the application sends is matched by a different
// Tenant value in the context of the statements that run under it.
//
// Without it, such a statement sent outside a transaction (or a non-local
// one inside) makes the plugin stop serving and filling the cache for the
// database, because connections may now return different rows for the
// same SQL (counted as the bypass "session_state", logged once). With it,
// the plugin trusts the key and keeps caching; a wrong declaration serves
// one state's rows to another. Reads inside a transaction that changed
// state never use the cache either way, and temporary tables are handled
// apart (see fenced). Requires Tenant.
func SessionStateInKey() Option { return func(p *Plugin) { p.w.stateInKey = true } }

// maxTempNames bounds the names remembered as temporary tables; beyond it
// caching stops.
const maxTempNames = 1024

// sessionWarning explains the stop for session state.
const sessionWarning = "gormcache: a statement changed connection state (SET, SET ROLE, set_config, RESET, ATTACH, a PRAGMA that changes results) outside a transaction-local scope; connections may now return different rows for the same SQL, so this plugin no longer serves or fills the cache for this database (bypass \"session_state\"). To keep caching: qualify table names with their schema instead of SET search_path; give every connection the same state in the DSN or connection setup; or put the state in the cache key with gormcache.Tenant and declare it with gormcache.SessionStateInKey()."

// noteSession applies the session-state rule to a raw statement:
//   - inside a managed transaction, any statement that may change
//     connection state (SET, SET LOCAL, set_config, anything but one plain
//     read, write or DDL statement) marks the transaction: its reads never
//     use the cache, even with ReadsInTransactions;
//   - a change that outlives the transaction or is made outside one
//     (sqlinspect's SessionState: not SET LOCAL nor set_config(..., true))
//     stops caching for the database, unless SessionStateInKey.
func (p *Plugin) noteSession(db *gorm.DB, sc scope, info sqlinspect.Statement) {
	if p.broken["session"] {
		return
	}
	if sc.kind == scopeManaged && changesState(info) {
		sc.tx.session.Store(true)
	}
	if info.SessionState && !p.w.stateInKey && !localConfigOnly(db, info) {
		p.w.stop("session_state", sessionWarning)
	}
}

// localConfigOnly reports whether a statement's only session change is
// transaction-local: one SELECT whose every set_config call passes true as
// is_local (literally or bound), the usual way to give row-level security
// a tenant for one transaction. Its effect ends with the transaction (with
// the statement, outside one), so it does not change what connections
// return afterwards.
func localConfigOnly(db *gorm.DB, info sqlinspect.Statement) bool {
	if info.Statements != 1 || info.Kind != sqlinspect.KindSelect || !setsConfig(info) {
		return false
	}
	return localSetConfig(db.Statement.SQL.String(), db.Statement.Vars)
}

// localSetConfig scans sql for set_config calls and reports whether there
// is at least one and each has three arguments, the third being true. Any
// text it cannot read with certainty (comments, quoted identifiers,
// dollar-quoted or escape strings) makes the answer false.
func localSetConfig(sql string, vars []any) bool {
	const name = "set_config"
	found := false
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '\'':
			end := skipString(sql, i)
			if end < 0 {
				return false
			}
			i = end
		case c == '"', c == '`', c == '[':
			return false
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-', c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			return false
		case c == '$' && (i+1 >= len(sql) || sql[i+1] < '0' || sql[i+1] > '9'):
			return false
		case (c == 'e' || c == 'E') && i+1 < len(sql) && sql[i+1] == '\'' && (i == 0 || !identChar(sql[i-1])):
			return false
		case identChar(c) && (i == 0 || !identChar(sql[i-1])):
			j := i
			for j < len(sql) && identChar(sql[j]) {
				j++
			}
			if !strings.EqualFold(sql[i:j], name) {
				i = j - 1
				continue
			}
			args, end, ok := callArgs(sql, j)
			if !ok || len(args) != 3 {
				return false
			}
			if !trueArg(strings.TrimSpace(args[2]), vars) {
				return false
			}
			found = true
			i = end
		}
	}
	return found
}

// skipString returns the index of the quote closing the string literal
// opened at sql[i], or -1.
func skipString(sql string, i int) int {
	for j := i + 1; j < len(sql); j++ {
		if sql[j] == '\'' {
			if j+1 < len(sql) && sql[j+1] == '\'' {
				j++
				continue
			}
			return j
		}
	}
	return -1
}

// callArgs splits the argument list of a call whose name ends at sql[from]
// into its top-level arguments; end is the index of the closing
// parenthesis. Strings may hold commas and parentheses; anything harder
// makes ok false.
func callArgs(sql string, from int) (args []string, end int, ok bool) {
	i := from
	for i < len(sql) && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r') {
		i++
	}
	if i >= len(sql) || sql[i] != '(' {
		return nil, 0, false
	}
	depth, start := 0, i+1
	for j := i; j < len(sql); j++ {
		switch sql[j] {
		case '\'':
			k := skipString(sql, j)
			if k < 0 {
				return nil, 0, false
			}
			j = k
		case '"', '$', '-', '/':
			if sql[j] == '$' && j+1 < len(sql) && sql[j+1] >= '0' && sql[j+1] <= '9' {
				continue
			}
			return nil, 0, false
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return append(args, sql[start:j]), j, true
			}
		case ',':
			if depth == 1 {
				args = append(args, sql[start:j])
				start = j + 1
			}
		}
	}
	return nil, 0, false
}

// trueArg reports whether an argument is PostgreSQL's boolean true: the
// keyword, a string PostgreSQL reads as true, or a $n placeholder bound to
// one (set_config exists only on PostgreSQL, where GORM numbers them).
func trueArg(a string, vars []any) bool {
	var v any
	switch {
	case len(a) > 1 && a[0] == '$':
		n, err := strconv.Atoi(a[1:])
		if err != nil || n < 1 || n > len(vars) {
			return false
		}
		v = vars[n-1]
	case strings.EqualFold(a, "true"):
		return true
	case len(a) >= 2 && a[0] == '\'' && a[len(a)-1] == '\'':
		v = a[1 : len(a)-1]
	default:
		return false
	}
	switch x := v.(type) {
	case bool:
		return x
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "t", "true", "y", "yes", "on", "1":
			return true
		}
	}
	return false
}

// changesState reports whether a raw statement may change connection
// state, erring towards yes.
func changesState(info sqlinspect.Statement) bool {
	if info.SessionState || setsConfig(info) || info.Statements > 1 {
		return true
	}
	switch info.Kind {
	case sqlinspect.KindSelect, sqlinspect.KindWrite, sqlinspect.KindDDL, sqlinspect.KindTx:
		return false
	}
	return true
}

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
	for _, n := range names {
		n = sqlinspect.NormalizeTable(n)
		if n == "" {
			continue
		}
		if _, loaded := p.w.temps.LoadOrStore(n, struct{}{}); !loaded {
			if p.w.tempCount.Add(1) > maxTempNames {
				p.w.stop("temp_tables", "gormcache: more than 1024 names were created as temporary tables; this plugin no longer serves or fills the cache for this database (bypass \"temp_tables\").")
			}
		}
		ch.Tables = append(ch.Tables, n)
	}
	if len(ch.Tables) > 0 {
		p.apply(ctx, ch)
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
	for _, n := range tables {
		n = sqlinspect.NormalizeTable(n)
		if n == "" {
			continue
		}
		if _, loaded := p.w.tempTrigs.LoadOrStore(n, struct{}{}); !loaded {
			if p.w.tempTrigCount.Add(1) > maxTempNames {
				p.w.stop("temp_tables", "gormcache: temporary triggers were created on more than 1024 tables; this plugin no longer serves or fills the cache for this database (bypass \"temp_tables\").")
			}
		}
	}
	p.apply(stmtContext(db), querycache.Change{All: true, Cause: causeTempTrigger})
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
	for _, n := range names {
		n = sqlinspect.NormalizeTable(n)
		if n == "" {
			continue
		}
		if _, loaded := p.w.tempViews.LoadOrStore(n, struct{}{}); !loaded {
			p.w.tempViewCount.Add(1) // bounded by the temporary names' limit (noteTempTables)
		}
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
		if p.w.tempCount.Load() > 0 && p.w.readsTemp([]string{t}) {
			temp = true
		}
		if p.w.tempViewCount.Load() > 0 && p.w.readsTempView([]string{t}) {
			view = true
		}
		if p.w.tempTrigCount.Load() > 0 {
			if _, ok := p.w.tempTrigs.Load(t); ok {
				trig = true
			}
		}
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
// name a permanent relation on the search_path also has (pg_class shows
// other sessions' temporary relations, once committed): the names a
// connection may read differently from the others. A temporary name no
// such permanent relation has shadows nothing the application reads
// unqualified. (Other sessions' may be another application's: marking
// their names costs bypasses only.)
const tempShadowsQuery = `SELECT DISTINCT t.relname, t.relkind = 'v' FROM pg_catalog.pg_class t
WHERE t.relpersistence = 't' AND t.relkind IN ('r', 'v', 'p', 'f', 'm')
AND EXISTS (SELECT 1 FROM pg_catalog.pg_class o WHERE o.relname = t.relname AND o.relpersistence <> 't'
  AND o.relkind IN ('r', 'v', 'p', 'f', 'm') AND pg_catalog.pg_table_is_visible(o.oid))`

// discoverTemps notes the temporary relations that shadow permanent ones
// (tempShadowsQuery) after code the text does not show ran (runsHiddenCode):
// a temporary table made by a DO block is otherwise never known, and its
// rows, read on its connection, were served to every connection
// (TestHostile29PostgresTempFromDOShadows). Read on the pool (waiting for
// a connection up to catalogTimeout); when the read fails, caching stops
// for the database (what shadows what cannot be known).
func (p *Plugin) discoverTemps(ctx context.Context) {
	cp := p.inner
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catalogTimeout)
	defer cancel()
	rows, err := cp.QueryContext(ctx, tempShadowsQuery)
	if err != nil {
		p.w.stop("temp_tables", "gormcache: looking for temporary tables made by code the SQL text does not show failed ("+err.Error()+"); this plugin no longer serves or fills the cache for this database (bypass \"temp_tables\").")
		return
	}
	defer rows.Close()
	var names, views []string
	for rows.Next() {
		var name string
		var view bool
		if err := rows.Scan(&name, &view); err != nil {
			break
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
		p.w.stop("temp_tables", "gormcache: looking for temporary tables made by code the SQL text does not show failed ("+err.Error()+"); this plugin no longer serves or fills the cache for this database (bypass \"temp_tables\").")
		return
	}
	if len(views) > 0 {
		p.noteTempViews(views)
	}
	if len(names) > 0 {
		p.noteTempTablesCtx(ctx, names)
	}
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

func identChar(b byte) bool {
	return b == '_' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b >= 0x80
}
