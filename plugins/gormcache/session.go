package gormcache

import (
	"strconv"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/keys"
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

// sessionWarning explains the stop for session state.
const sessionWarning = "gormcache: a statement changed connection state (SET, SET ROLE, set_config, UPDATE pg_settings, RESET, ATTACH, a PRAGMA that changes results) outside a transaction-local scope; connections may now return different rows for the same SQL, so this plugin no longer serves or fills the cache for this database (bypass \"session_state\"). To keep caching: qualify table names with their schema instead of SET search_path; give every connection the same state in the DSN or connection setup; or put the state in the cache key with gormcache.Tenant and declare it with gormcache.SessionStateInKey()."

// noteSession applies the session-state rule to a raw statement:
//   - inside a managed transaction, any statement that may change
//     connection state (SET, SET LOCAL, set_config, UPDATE pg_settings,
//     anything but one plain read, write or DDL statement) marks the
//     transaction: its reads never use the cache, even with
//     ReadsInTransactions;
//   - a change that outlives the transaction or is made outside one
//     (sqlinspect's SessionState: not SET LOCAL nor set_config(..., true);
//     an UPDATE of pg_settings is a SET, never transaction-local) stops
//     caching for the database, unless SessionStateInKey.
//
// setter is callsSessionSetter's verdict: the statement calls a function
// whose body may make such a change, which counts as one.
func (p *Plugin) noteSession(db *gorm.DB, sc scope, info sqlinspect.Statement, setter bool) {
	if p.broken["session"] {
		return
	}
	if sc.kind == scopeManaged && (setter || changesState(info)) {
		sc.tx.session.Store(true)
	}
	if p.w.stateInKey {
		return
	}
	if setter || info.SessionState && !localConfigOnly(db, info) || p.doSession(db, info) {
		p.stop("session_state", sessionWarning)
	}
}

// callsSessionSetter reports whether a PostgreSQL statement calls a
// function of the user's whose body may change its connection's session
// state (fnSessionSetter): SELECT use_tenant('acme') running SET
// search_path = acme in PL/pgSQL changes what the connection's
// unqualified names mean after it returns, as the SET sent alone does,
// and reads filled there were served to every connection
// (TestHostile32FunctionBodyChangesSession). Names are matched in every
// schema (an overload anywhere counts); pg_catalog's own functions are
// judged by the text (set_config). learn says whether the catalog may be
// read on the statement's connection. When it may and the function list
// still cannot be read, a call counts, as a DO block's body not read
// does; when it may not (Rows() still open) and no spare connection can
// read it, the call is not judged (the list is known in the common case:
// it is kept until the next DDL, and the statement's purity check read
// it). Calls the text does not show are not followed here: a trigger's, a
// default's and a CHECK's are (firedSessionChange); a view's and a
// policy's are not. A body calling another function that changes the
// session counts (addSessionCallers).
func (p *Plugin) callsSessionSetter(db *gorm.DB, info sqlinspect.Statement, learn bool) bool {
	if p.dialect != "postgres" || len(info.Functions) == 0 || p.broken["session"] {
		return false
	}
	if info.Kind == sqlinspect.KindDDL {
		// A definition names the functions it will call, and runs none:
		// CREATE FUNCTION f() ... BEGIN ATOMIC SELECT use_tenant(); END
		// stopped caching when made.
		if toks, ok := lexSQL(db.Statement.SQL.String()); ok && (!ddlRunsExpressions(toks) || createsView(toks)) {
			return false
		}
	}
	var (
		funcs   *fnList
		learned bool
	)
	for _, f := range info.Functions {
		if f.Schema == "pg_catalog" {
			continue
		}
		if !learned {
			funcs, learned = p.functionsLearning(db, learn), true
			if funcs == nil {
				return learn
			}
			if funcs.any&fnSessionSetter == 0 {
				return false
			}
		}
		if funcs.flags(f.Name)&fnSessionSetter != 0 {
			return true
		}
	}
	return false
}

// createsView reports whether toks are CREATE [OR REPLACE] [TEMP] VIEW,
// which defines a query and runs none (a materialized view's is run).
func createsView(toks []lexTok) bool {
	return createdKind(toks, "TEMP", "TEMPORARY", "RECURSIVE") == "VIEW"
}

// triggersChangeSession reports whether one of triggers that o fires may
// change the session of the connection whose write fires it.
func triggersChangeSession(p *Plugin, db *gorm.DB, triggers []trigger, o opSet, learn bool) bool {
	for i := range triggers {
		tr := &triggers[i]
		if tr.events&o != 0 && (tr.session || len(tr.calls) > 0 && p.callsSessionSetter(db, sqlinspect.Statement{Functions: tr.calls}, learn)) {
			return true
		}
	}
	return false
}

// noteFiredSession is the trigger walk's session rule for a write that
// invalidates everything without walking (a function it calls may write,
// its schema is pending): the triggers of the tables its text writes are
// still asked (TestHostile33WriterValueHidesSetterTrigger).
func (p *Plugin) noteFiredSession(db *gorm.DB, info *sqlinspect.Statement, learn bool) {
	if p.dialect != "postgres" || info.Kind != sqlinspect.KindWrite || p.broken["session"] {
		return
	}
	for _, t := range info.Writes {
		if t == keys.CatalogTable {
			continue
		}
		if f := p.depFactsOf(db, t, learn); f != nil && triggersChangeSession(p, db, f.deps.triggers, opDML|opTruncate, learn) {
			p.firedSessionChange(db)
			return
		}
	}
}

// firedSessionChange applies the session-state rule to a write that fires
// a trigger whose body may change the session of the writing connection
// (trigger.session, or a call of a fnSessionSetter): as a SET sent by the
// application would.
func (p *Plugin) firedSessionChange(db *gorm.DB) {
	p.noteSession(db, scopeOf(db.Statement.ConnPool), sqlinspect.Statement{Kind: sqlinspect.KindWrite, Statements: 1}, true)
}

// doSession reports whether a PostgreSQL statement is a DO block whose body
// may change session state (dosession.go).
func (p *Plugin) doSession(db *gorm.DB, info sqlinspect.Statement) bool {
	if p.dialect != "postgres" || info.Kind != sqlinspect.KindUnknown {
		return false
	}
	sql := db.Statement.SQL.String()
	toks, ok := lexSQL(sql)
	if !ok {
		return true // not read with certainty
	}
	for i, t := range toks {
		// A DO heading a statement, after comments or other statements
		// (TestHostile31DOBlockSessionChangeHidden).
		if t.word == "DO" && (i == 0 || toks[i-1].punct == ';') && doChangesSession(sql[t.start:]) {
			return true
		}
	}
	return false
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

func identChar(b byte) bool {
	return b == '_' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b >= 0x80
}
