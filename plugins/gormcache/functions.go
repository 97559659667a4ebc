package gormcache

import (
	"context"
	"database/sql"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
	"querycache.dev/sqlinspect"
)

// fnFlags is what the catalog says of every overload of one function name:
// pg_proc on PostgreSQL; on SQLite pragma_function_list, and only for the
// functions the application registered.
type fnFlags uint8

const (
	// fnImmutable: every overload, in every schema, is IMMUTABLE.
	fnImmutable fnFlags = 1 << iota
	// fnMayWrite: some overload outside pg_catalog is VOLATILE (or an
	// aggregate with a volatile support function, or a function whose
	// argument defaults call one), or one added to pg_catalog after
	// initdb may be (postgresBuiltinFunctionsQuery); on SQLite some
	// registration is not deterministic. Calling it may write (a user's
	// function called by a SELECT).
	fnMayWrite
	// fnMayWriteOnPath: PostgreSQL, some VOLATILE overload outside
	// pg_catalog is in a schema of the search_path (of the connection the
	// list was read on), where an unqualified call may resolve to it:
	// lower(bigint) in public is what lower(id) calls for a bigint id,
	// pg_catalog having no lower of an integer.
	fnMayWriteOnPath
	// fnRowWriter: PostgreSQL, some VOLATILE overload outside pg_catalog
	// (not C) takes one row (a table's type, record, anyelement ...):
	// SQL calls it by attribute notation, o.f, as if it were a column.
	fnRowWriter
	// fnRelWriter: PostgreSQL, some VOLATILE overload outside pg_catalog
	// is called by a view's query, a row-security policy or a CHECK
	// constraint (pg_depend): reading or writing a relation may call it.
	fnRelWriter
	// fnRowFunc: PostgreSQL, some overload outside pg_catalog that is not
	// IMMUTABLE (nor C) takes one row: attribute notation may call it on
	// a table's rows (depFacts.rowFuncs), and it may read other tables.
	fnRowFunc
	// fnSessionSetter: PostgreSQL, the body of some overload outside
	// pg_catalog may change its connection's session state (a SET that is
	// not LOCAL, set_config(..., false), an UPDATE of pg_settings), as a
	// DO block's may
	// (bodyChangesSession; any body of a language other than PL/pgSQL,
	// SQL, C or internal that mentions set or set_config): a call of it
	// changes what that connection's unqualified names mean afterwards
	// (callsSessionSetter, TestHostile32FunctionBodyChangesSession).
	fnSessionSetter
)

// fnList is what the catalog says of function names, keyed lower-cased.
// On PostgreSQL it is two lists: pg_catalog's, which is the same for every
// database of a server version and is read once per process
// (builtinFunctions), and the rest (the user's, extensions',
// information_schema's), read again after every DDL. Reading all of
// pg_proc with the user's columns after every DDL cost 10-20 ms of the
// server's time, and as long again to scan its 3,000 names.
type fnList struct {
	builtin map[string]fnFlags // shared, never written after it is built
	user    map[string]fnFlags
	// any ORs the user's functions' flags but fnImmutable and
	// fnMayWriteOnPath: whether any function is one (callsHiddenWriter),
	// and which of the catalog's questions about a table's functions
	// need asking (postgresDepsQuery).
	any fnFlags
	// Calls a statement's text does not show as calls (PostgreSQL;
	// callsHiddenWriter, ddlCallsWriter):
	//   - hiddenWriter: an operator (outside pg_catalog, or added to it
	//     after initdb) or a cast (added after initdb) has a VOLATILE
	//     function whose body may write (hiddenBodyMayWrite). Syntax calls
	//     operators where no symbol is written (IN and = , LIKE and ~~,
	//     BETWEEN, a negator the planner picks), so do a column's default,
	//     a CHECK, a view, a trigger's WHEN; an assignment cast runs where
	//     no text names it. Any statement may then write anything: while
	//     one exists, every statement invalidates everything and no read
	//     is cached (TestHostile22ImplicitOperatorSyntax), with a warning
	//     naming them (hiddenWriters);
	//   - ddlWriter: an enabled event trigger runs a function on DDL
	//     (one that is not VOLATILE cannot write, but the function of an
	//     event trigger must be plpgsql or C, and both are VOLATILE unless
	//     declared otherwise: any counts).
	hiddenWriter  bool
	hiddenWriters []string // what makes hiddenWriter true, for the warning
	ddlWriter     bool
	//   - writerDomains are the domains whose DEFAULT or CHECK (or a base
	//     domain's) calls a VOLATILE function of the user's: DDL naming
	//     one (ADD COLUMN z d, ALTER COLUMN v TYPE d) runs it on every row
	//     (ddlCallsWriter, TestHostile22DomainDDL).
	writerDomains []string
	// hidden are the operators' and casts' VOLATILE functions read with
	// the list, judged by resolveHidden once the built-ins are known.
	hidden []hiddenFunc
}

// hiddenFunc is the VOLATILE function of an operator or a cast.
type hiddenFunc struct {
	what       string // "operator #+#", "cast"
	lang, body string
}

// resolveHidden sets hiddenWriter from the operators' and casts'
// functions, once the list (built-ins included) can judge the functions
// their bodies call.
func (l *fnList) resolveHidden() {
	for _, h := range l.hidden {
		// One whose body changes the session counts too: while it
		// exists no read is cached, so no connection's change is served
		// to another (TestHostile33OperatorSetter).
		if hiddenBodyMayWrite(h.lang, h.body, l) || (h.lang == "plpgsql" || h.lang == "sql") && bodyChangesSession(h.body) {
			l.hiddenWriter = true
			l.hiddenWriters = append(l.hiddenWriters, h.what)
		}
	}
	l.hidden = nil
}

// hiddenBodyMayWrite reports whether a VOLATILE function of language lang
// and source body may write. VOLATILE is the default: a LANGUAGE sql
// operator function that only computes (SELECT a.v * b) is VOLATILE unless
// declared otherwise, and counting it would make every statement
// invalidate everything (TestHostile22VolatileLabelOverInvalidates). A sql
// body that is one plain SELECT, and a plpgsql body with no write, no
// dynamic SQL and no statement it does not understand, may write only
// through the functions they call: none may be one that may write (or
// unknown). C and internal functions are an extension's, trusted to write
// no table (as volatileUserFunc); any other language may do anything.
func hiddenBodyMayWrite(lang, body string, l *fnList) bool {
	var calls []sqlinspect.Func
	switch lang {
	case "c", "internal":
		return false
	case "sql":
		st := sqlinspect.InspectDialect(body, sqlinspect.DialectPostgres)
		if st.Undetermined || st.Kind != sqlinspect.KindSelect || len(st.Writes) > 0 || st.SessionState || len(st.TxOps) > 0 || st.Catalog {
			return true
		}
		calls = st.Functions
	case "plpgsql":
		tr := scanPLpgSQL(body)
		if tr.all || len(tr.writes) > 0 {
			return true
		}
		calls = tr.calls
	default:
		return true
	}
	for _, f := range calls {
		if fl, known := l.lookup(f.Name); !known || fl&fnMayWrite != 0 {
			return true
		}
	}
	return false
}

// lookup returns what the list says of name (lower-cased, as SQL compares
// unquoted names) and whether any function has that name. A nil list (not
// known) knows no name.
func (l *fnList) lookup(name string) (fnFlags, bool) {
	if l == nil {
		return 0, false
	}
	u, inUser := l.user[name]
	b, inBuiltin := l.builtin[name]
	switch {
	case inUser && inBuiltin:
		return mergeFlags(u, b), true
	case inUser:
		return u, true
	default:
		return b, inBuiltin
	}
}

// flags is lookup's flags alone (none for a name no function has).
func (l *fnList) flags(name string) fnFlags {
	f, _ := l.lookup(name)
	return f
}

// mergeFlags joins what two lists say of one name: immutable only if both
// are, any writer flag of either. A quoted "Lower" and lower share an
// entry: pg_catalog's immutable lower made a volatile "Lower" cacheable
// (TestHostile14QuotedMixedCaseFunctionTakenForBuiltin).
func mergeFlags(a, b fnFlags) fnFlags {
	return a&^fnImmutable | b&^fnImmutable | a&b&fnImmutable
}

// add records one row of the catalog's list under its lower-cased name.
func (l *fnList) add(name string, f fnFlags) {
	key := strings.ToLower(name)
	if old, seen := l.user[key]; seen {
		f = mergeFlags(f, old)
	}
	l.user[key] = f
	l.any |= f & (fnMayWrite | fnRowWriter | fnRelWriter | fnRowFunc | fnSessionSetter)
}

// functions returns what the catalog says of function names; nil when it
// is not known and cannot be learned now (inside a transaction that
// changed the schema, say).
func (p *Plugin) functions(db *gorm.DB) *fnList {
	if l := p.cat.current().funcs.Load(); l != nil {
		return l // known: no connection to choose (a hit asks, purityRefusal)
	}
	return p.functionsOn(db, p.learnConn(db))
}

// functionsLearning is functions when learn is set; otherwise what is
// known, or what can be read on a spare connection of the pool.
func (p *Plugin) functionsLearning(db *gorm.DB, learn bool) *fnList {
	if l := p.cat.current().funcs.Load(); l != nil {
		return l
	}
	if learn {
		return p.functions(db)
	}
	return p.functionsOn(db, p.spareConn())
}

// postgresUserFunctionsQuery reads what the plugin needs of every function
// outside pg_catalog, grouped by name, and, in a last row with an empty
// name, a fingerprint of pg_catalog's functions (builtinFunctions: their
// count and the sum of a 64-bit hash of each one's name, seeded with its
// oid and volatility: 0.7 ms where hashing the three as one text took
// 1.2-1.9 ms, and an md5 of them all three times that) and whether
// one added after initdb is not IMMUTABLE, is an aggregate or has
// argument defaults (its third column: every gate opens). Rows whose last
// column is a tag rather than a fingerprint say what runs a VOLATILE
// function where no call is written (fnList.hidden, writerDomains,
// ddlWriter):
// 'operator <language>\n<source>' (one row per operator), 'cast
// <language>\n<source>', 'domain' (a writer domain's name), 'event
// trigger'; and 'session <language>\n<source>' is the source of a
// function whose body mentions SET or set_config (fnSessionSetter; an
// UPDATE of pg_settings, a SET by another name, has its SET). A
// SQL-standard body (BEGIN ATOMIC ... END, RETURN expr; PostgreSQL 14 and
// later) is not in prosrc, which is empty: its source is then the whole
// CREATE FUNCTION text pg_get_functiondef gives (in every version, where
// pg_get_function_sqlbody is 14's), whose header's SET clause follows no
// statement head and is not read as a SET.
//
// f is MATERIALIZED: inlined, its vol expression (two subqueries) was
// planned once for each of the six aggregates that read it, and planning
// took 5-6.5 ms of a new backend's time where it now takes 3.3-4.3 ms
// (the plugin reads this list again after every DDL it sees).
//
// An aggregate's own volatility is always IMMUTABLE in pg_proc ("not
// needed for agg"): a user's takes that of its support functions (a
// VOLATILE transition function writes once per row:
// TestHostile14CatalogReaderNameOverloadedOnSearchPath). An overload on
// the search_path that ties with pg_catalog's (same argument types) is
// not on_path: pg_catalog, searched first, wins (pgcrypto's
// gen_random_uuid() in public).
const postgresUserFunctionsQuery = `WITH agg AS (
	SELECT a.aggfnoid, CASE WHEN bool_or(s.provolatile = 'v') THEN 'v' WHEN bool_or(s.provolatile = 's') THEN 's' ELSE 'i' END AS vol
	FROM pg_aggregate a JOIN pg_proc s ON s.oid IN (a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
		a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn)
	WHERE a.aggfnoid IN (SELECT oid FROM pg_proc WHERE prokind = 'a' AND pronamespace <> 'pg_catalog'::regnamespace)
	GROUP BY a.aggfnoid),
f AS MATERIALIZED (
	SELECT p.oid, p.proname,
		p.pronamespace = ANY (ARRAY(SELECT oid FROM pg_namespace WHERE nspname = ANY (current_schemas(false))))
			AND NOT EXISTS (SELECT 1 FROM pg_proc c WHERE c.proname = p.proname
				AND c.pronamespace = 'pg_catalog'::regnamespace AND c.proargtypes = p.proargtypes) AS on_path,
		p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1 AND l.lanname NOT IN ('c', 'internal')
			AND (t.typtype = 'c' OR t.oid IN ('record'::regtype, 'anyelement'::regtype, 'anynonarray'::regtype,
				'anycompatible'::regtype, 'anycompatiblenonarray'::regtype)) AS row_arg,
		CASE WHEN p.proargdefaults IS NOT NULL AND EXISTS (SELECT 1 FROM pg_depend dd JOIN pg_proc s ON s.oid = dd.refobjid
			WHERE dd.classid = 'pg_proc'::regclass AND dd.objid = p.oid AND dd.refclassid = 'pg_proc'::regclass
				AND s.provolatile = 'v') THEN 'v'
			ELSE COALESCE(agg.vol, p.provolatile::text) END AS vol
	FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
	LEFT JOIN pg_type t ON t.oid = p.proargtypes[0]
	LEFT JOIN agg ON agg.aggfnoid = p.oid
	WHERE p.pronamespace <> 'pg_catalog'::regnamespace)
SELECT proname::text, bool_and(vol = 'i'), bool_or(vol = 'v'), bool_or(vol = 'v' AND on_path),
	COALESCE(bool_or(vol = 'v' AND row_arg), false),
	bool_or(vol = 'v' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_proc'::regclass
		AND d.refobjid = f.oid AND d.classid IN ('pg_rewrite'::regclass, 'pg_policy'::regclass, 'pg_constraint'::regclass))),
	COALESCE(bool_or(vol <> 'i' AND row_arg), false), ''
FROM f GROUP BY proname
UNION ALL
SELECT o.oprname::text, false, true, false, false, false, false, 'operator ' || l.lanname::text || E'\n' || p.prosrc
FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode JOIN pg_language l ON l.oid = p.prolang
WHERE (o.oprnamespace <> 'pg_catalog'::regnamespace OR o.oid >= 16384) AND p.provolatile = 'v'
UNION ALL
SELECT '', false, true, false, false, false, false, 'cast ' || l.lanname::text || E'\n' || p.prosrc
FROM pg_cast c JOIN pg_proc p ON p.oid = c.castfunc JOIN pg_language l ON l.oid = p.prolang
WHERE c.oid >= 16384 AND p.provolatile = 'v'
UNION ALL
SELECT t.typname::text, false, true, false, false, false, false, 'domain'
FROM pg_type t WHERE t.typtype = 'd' AND t.oid IN (WITH RECURSIVE w(oid) AS (
	SELECT COALESCE(c.contypid, d.objid) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
	JOIN pg_depend d ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid AND d.classid IN ('pg_type'::regclass, 'pg_constraint'::regclass)
	LEFT JOIN pg_constraint c ON d.classid = 'pg_constraint'::regclass AND c.oid = d.objid
	WHERE p.provolatile = 'v' AND l.lanname NOT IN ('c', 'internal') AND (p.pronamespace <> 'pg_catalog'::regnamespace OR p.oid >= 16384)
	UNION
	SELECT b.oid FROM pg_type b JOIN w ON b.typbasetype = w.oid WHERE b.typtype = 'd')
	SELECT oid FROM w)
UNION ALL
SELECT p.proname::text, false, false, false, false, false, false, 'session ' || l.lanname::text || E'\n' || s.src
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang,
	LATERAL (SELECT CASE WHEN p.prosrc <> '' THEN p.prosrc ELSE pg_get_functiondef(p.oid) END AS src) s
WHERE p.pronamespace <> 'pg_catalog'::regnamespace AND l.lanname NOT IN ('c', 'internal')
	AND s.src ~* '(set_config|\m(re)?set\M)'
UNION ALL
SELECT '', false, true, false, false, false, false, 'event trigger'
FROM pg_event_trigger WHERE evtenabled <> 'D' HAVING count(*) > 0
UNION ALL
SELECT '', false, COALESCE(bool_or(oid >= 16384 AND (provolatile <> 'i' OR prokind = 'a' OR proargdefaults IS NOT NULL)), false),
	false, false, false, false,
	count(*)::text || '/' || COALESCE(sum(hashtextextended(proname::text, oid::int8 * 256 + ascii(provolatile::text))), 0)::text
FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace`

// postgresBuiltinFunctionsQuery reads pg_catalog's function names,
// whether every overload of each is IMMUTABLE, and whether one may write:
// only a function added after initdb (oid 16384 and up, by an extension
// or a superuser) that is VOLATILE, an aggregate (whose support functions
// may be) or has argument defaults (which may call one) counts
// (TestHostile17PgCatalogViewWriter).
const postgresBuiltinFunctionsQuery = `SELECT proname::text,
	bool_and(provolatile = 'i' AND NOT (oid >= 16384 AND (prokind = 'a' OR proargdefaults IS NOT NULL))),
	bool_or(oid >= 16384 AND (provolatile = 'v' OR prokind = 'a' OR proargdefaults IS NOT NULL))
FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace GROUP BY proname`

// sqliteFunctionsQuery reads the functions the application registered.
// 0x800 is SQLITE_DETERMINISTIC. (Names are not searched by schema: the
// fourth column repeats the third. No attribute notation, views or
// policies calling functions: 0, 0, 0.)
const sqliteFunctionsQuery = `SELECT name, min((flags & 2048) <> 0), max((flags & 2048) = 0), max((flags & 2048) = 0), 0, 0, 0, ''
FROM pragma_function_list WHERE builtin = 0 GROUP BY name`

// functionsOn is functions reading the catalog on cp, if needed and cp is
// not nil.
func (p *Plugin) functionsOn(db *gorm.DB, cp gorm.ConnPool) *fnList {
	st := p.cat.current()
	if l := st.funcs.Load(); l != nil {
		return l
	}
	if cp == nil || p.w.catalogFenced() {
		return nil
	}
	// By generation, as learnFacts' flight: a reading begun before a DDL
	// (CREATE OR REPLACE FUNCTION) is not handed to a statement after it.
	v, err, _ := p.cat.flight.Do("funcs\x00"+strconv.FormatUint(st.gen, 10), func() (any, error) {
		var l *fnList
		err := p.catalogRead(context.WithoutCancel(stmtContext(db)), cp, func(ctx context.Context) error {
			if err := p.freshCatalog(ctx, cp); err != nil {
				return err
			}
			q := postgresUserFunctionsQuery
			if p.dialect == "sqlite" {
				q = sqliteFunctionsQuery
			}
			var (
				fingerprint string
				err         error
			)
			if l, fingerprint, err = readFunctions(ctx, cp, q); err != nil {
				return err
			}
			if l.any&fnSessionSetter != 0 {
				if err = l.addSessionCallers(ctx, cp); err != nil {
					return err
				}
			}
			if p.dialect == "postgres" {
				if l.builtin, err = builtinFunctions(ctx, cp, fingerprint); err == nil {
					l.resolveHidden()
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if st.gen == p.cat.current().gen {
			st.funcs.Store(l)
			st.stored.Add(1) // after: a plan judged on no list is stale now
		}
		p.warnHiddenWriters(l)
		return l, nil
	})
	if err != nil {
		p.cache.CountBypass("catalog_unavailable")
		return nil
	}
	return v.(*fnList)
}

// readFunctions reads a list of function names and their flags: name,
// immutable, may write, on the path, row writer, relation writer, row
// function; and an empty name's last column is pg_catalog's fingerprint.
func readFunctions(ctx context.Context, cp gorm.ConnPool, q string) (*fnList, string, error) {
	rows, err := cp.QueryContext(ctx, q)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	l := &fnList{user: make(map[string]fnFlags, 16)}
	var fingerprint string
	for rows.Next() {
		var name, fp string
		var immutable, mayWrite, onPath, rowWriter, relWriter, rowFunc bool
		if err := rows.Scan(&name, &immutable, &mayWrite, &onPath, &rowWriter, &relWriter, &rowFunc, &fp); err != nil {
			return nil, "", err
		}
		if kind, rest, tagged := strings.Cut(fp, " "); tagged && kind == "session" {
			// A body that mentions SET or set_config (the query's filter):
			// read as a DO block's is; another language's counts as it is.
			lang, body, _ := strings.Cut(rest, "\n")
			if (lang != "plpgsql" && lang != "sql") || bodyChangesSession(body) {
				l.add(name, fnSessionSetter)
			}
			continue
		} else if tagged && (kind == "operator" || kind == "cast") {
			lang, body, _ := strings.Cut(rest, "\n")
			what := kind
			if kind == "operator" {
				what += " " + name
			}
			l.hidden = append(l.hidden, hiddenFunc{what: what, lang: lang, body: body})
			continue
		}
		switch fp {
		case "event trigger":
			l.ddlWriter = true
			continue
		case "domain":
			l.writerDomains = append(l.writerDomains, strings.ToLower(name))
			continue
		}
		if name == "" {
			fingerprint = fp
			if mayWrite {
				// A function added to pg_catalog after initdb (by an
				// extension or a superuser), not IMMUTABLE: the table
				// facts' questions about functions must all be asked, as
				// pg_depend lists it like a user's
				// (TestHostile16PgCatalogWriterCalledByTableGateClosed,
				// TestHostile16PgCatalogRowFunctionGateClosed).
				l.any |= fnMayWrite | fnRelWriter | fnRowFunc
			}
			continue
		}
		var f fnFlags
		if immutable {
			f |= fnImmutable
		}
		if mayWrite {
			f |= fnMayWrite
		}
		if onPath {
			f |= fnMayWriteOnPath
		}
		if rowWriter {
			f |= fnRowWriter
		}
		if relWriter {
			f |= fnRelWriter
		}
		if rowFunc {
			f |= fnRowFunc
		}
		l.add(name, f)
	}
	return l, fingerprint, rows.Err()
}

// sessionCallersQuery lists the functions outside pg_catalog whose source
// names one of the functions matched by the regular expression $1: a body
// that calls a function which changes the session changes it too (a name
// in a body is taken for a call; any language but C and internal).
// A SQL-standard body is read as postgresUserFunctionsQuery reads it.
// So is an aggregate whose support function is one of them (an aggregate
// has no body: TestHostile33AggregateSetter).
const sessionCallersQuery = `SELECT DISTINCT p.proname::text FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace <> 'pg_catalog'::regnamespace AND (l.lanname NOT IN ('c', 'internal')
	AND (CASE WHEN p.prosrc <> '' THEN p.prosrc ELSE pg_get_functiondef(p.oid) END) ~* $1
	OR p.prokind = 'a' AND EXISTS (SELECT 1 FROM pg_aggregate a JOIN pg_proc s ON s.oid IN (a.aggtransfn, a.aggfinalfn,
		a.aggcombinefn, a.aggserialfn, a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn)
		WHERE a.aggfnoid = p.oid AND s.proname ~* $1))`

// maxSessionCallerRounds bounds addSessionCallers' rounds (the depth of
// the calls it follows): past it, every function that names a function
// of the user's counts.
const maxSessionCallerRounds = 8

// addSessionCallers marks as fnSessionSetter the functions whose bodies
// call one that is, to any depth: set_tenant(t) calling _apply_path(t)
// whose body runs SET search_path changes the session as much
// (TestHostile32FunctionBodyChangesSession/nested). One query per level of
// calls, only while some function changes the session.
func (l *fnList) addSessionCallers(ctx context.Context, cp gorm.ConnPool) error {
	var frontier []string
	for name, f := range l.user {
		if f&fnSessionSetter != 0 {
			frontier = append(frontier, name)
		}
	}
	for round := 0; len(frontier) > 0; round++ {
		pattern := `\m(` + strings.Join(quoteRegexps(frontier), "|") + `)\M`
		if round == maxSessionCallerRounds {
			pattern = `\m\w+\s*\(` // any call: the rest is not followed
		}
		rows, err := cp.QueryContext(ctx, sessionCallersQuery, pattern)
		if err != nil {
			return err
		}
		var next []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return err
			}
			if l.flags(strings.ToLower(name))&fnSessionSetter == 0 {
				l.add(name, fnSessionSetter)
				next = append(next, strings.ToLower(name))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if round == maxSessionCallerRounds {
			return nil
		}
		frontier = next
	}
	return nil
}

// quoteRegexps escapes names for a PostgreSQL regular expression.
func quoteRegexps(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = regexp.QuoteMeta(n)
	}
	return out
}

// builtinLists holds pg_catalog's function lists by fingerprint (hashes
// of every function's oid, name and volatility: a sum of oids and
// volatilities missed two names swapped, TestHostile16BuiltinFingerprintIgnoresNames):
// a process talks to one server or a few, whose pg_catalog changes only
// with the server's version or an extension installed into it.
var builtinLists struct {
	mu    sync.Mutex
	lists map[string]map[string]fnFlags
}

// maxBuiltinLists bounds builtinLists: past it a list is read for every
// catalog generation, as for a fingerprint not seen yet.
const maxBuiltinLists = 8

// builtinFunctions returns pg_catalog's function list of fingerprint,
// read on cp unless an earlier reading had the same fingerprint.
func builtinFunctions(ctx context.Context, cp gorm.ConnPool, fingerprint string) (map[string]fnFlags, error) {
	builtinLists.mu.Lock()
	m, ok := builtinLists.lists[fingerprint]
	builtinLists.mu.Unlock()
	if ok {
		return m, nil
	}
	rows, err := cp.QueryContext(ctx, postgresBuiltinFunctionsQuery)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m = make(map[string]fnFlags, 4096)
	for rows.Next() {
		var name string
		var immutable, mayWrite sql.NullBool
		if err := rows.Scan(&name, &immutable, &mayWrite); err != nil {
			return nil, err
		}
		var f fnFlags
		if immutable.Bool {
			f = fnImmutable
		}
		if mayWrite.Bool {
			f |= fnMayWrite
		}
		key := strings.ToLower(name)
		if old, seen := m[key]; seen {
			f = mergeFlags(f, old)
		}
		m[key] = f
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if fingerprint != "" {
		builtinLists.mu.Lock()
		if builtinLists.lists == nil {
			builtinLists.lists = make(map[string]map[string]fnFlags)
		}
		if len(builtinLists.lists) < maxBuiltinLists {
			builtinLists.lists[fingerprint] = m
		}
		builtinLists.mu.Unlock()
	}
	return m, nil
}

// warnHiddenWriters logs, once for each set, the operators and casts that
// make every statement invalidate everything and no read cacheable
// (fnList.hiddenWriter): loud, since the cache then does nothing.
func (p *Plugin) warnHiddenWriters(l *fnList) {
	what := strings.Join(l.hiddenWriters, ", ")
	if prev := p.hiddenWarned.Load(); prev != nil && *prev == what || prev == nil && what == "" {
		return
	}
	p.hiddenWarned.Store(&what)
	if what != "" {
		p.w.log.Warn(context.Background(), "gormcache: an operator or a cast runs a VOLATILE function that may write (%s), which any statement may call without naming it: "+
			"every statement now invalidates everything and no read is cached; declare the function IMMUTABLE or STABLE if it writes nothing", what)
	}
}
