package gormcache

import (
	"context"
	"database/sql"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/invalidation"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// A write changes more than the tables its SQL names: the database itself
// carries it further, by foreign-key actions (ON DELETE CASCADE / SET NULL
// / SET DEFAULT, ON UPDATE ...), triggers, rules, the rows of partitions
// and inheritance children that a parent shows, and the base tables of an
// updatable view. None of that is in the statement's text, so it is read
// from the catalog (the truth, whatever the Go models declare), learned
// once per table with the other facts (catalog.go) and forgotten on DDL.
//
// withDependents walks those edges from the written tables, following what
// each step does (a cascaded DELETE deletes further, a SET NULL updates),
// and adds every table reached to the change, in bulk. What it cannot know
// (facts that cannot be read now, a trigger it cannot read, a rule)
// invalidates everything: over-invalidating costs misses, missing a table
// serves stale rows until the TTL.

// opSet is what a statement does to a table.
type opSet uint8

const (
	opInsert opSet = 1 << iota
	opUpdate
	opDelete
	opTruncate
	// opDrop is DROP TABLE: SQLite deletes the rows first (foreign-key
	// actions run, triggers do not); a dropped partition's rows leave
	// its parent, a dropped partitioned table takes its partitions.
	opDrop
	// opAlter is ALTER TABLE on PostgreSQL: a column added, dropped or
	// retyped on a parent is so on its partitions and children.
	opAlter
)

const opDML = opInsert | opUpdate | opDelete

// fkChild is a foreign key referencing the table.
type fkChild struct {
	table              string
	onUpdate, onDelete byte     // 'c' cascade, 'n' set null, 'd' set default, other: none
	cols               []string // the referenced (parent) columns, lower-cased; nil: unknown
}

// depFacts is what the catalog says a write to one table may change
// beyond it.
type depFacts struct {
	children []fkChild // foreign keys referencing the table
	triggers []trigger // triggers on it (not the project's own notify triggers)
	rules    bool      // PostgreSQL: a rule other than a view's _RETURN
	parents  []string  // tables it inherits from (its partitioned parent)
	inherits []string  // its partitions and inheritance children
	bases    []string  // a view's relations
	unknown  bool      // a related relation could not be named
	// PostgreSQL: functions of the user's that take the table's row (or
	// any row) as their one argument, which SQL calls by attribute
	// notation (o.f, (o).f) as if they were columns: one that is not
	// immutable may read other tables (rowFuncs). (Whether a statement
	// calls a volatile one is read from its text by name: callsHiddenWriter.)
	rowFuncs bool
	// readWriter: PostgreSQL, reading the relation calls a volatile
	// function of the user's that no text shows: a view's query calls one,
	// or a row-security policy of the table does.
	readWriter bool
	// refreshWriter: PostgreSQL, a materialized view whose query calls a
	// volatile function of the user's, which REFRESH runs.
	refreshWriter bool
	// viewCalls: SQLite, the functions a view's query calls, judged when
	// it is read (callsHiddenWriter): one the application registered as
	// not deterministic may write.
	viewCalls []sqlinspect.Func
}

func (d *depFacts) empty() bool {
	return len(d.children) == 0 && len(d.triggers) == 0 && !d.rules && len(d.parents) == 0 &&
		len(d.inherits) == 0 && len(d.bases) == 0 && !d.unknown && !d.rowFuncs
}

// catalogName normalises a relation name read from the catalog (exact
// case, never quoted) as the SQL that names it would be.
func catalogName(rel string) string {
	return sqlinspect.NormalizeTable(`"` + strings.ReplaceAll(rel, `"`, `""`) + `"`)
}

// postgresDepsQuery reads every edge of one relation in one round trip,
// the branches that only functions of the user's can make left out when
// the function list (need: its any, or every flag when it is not known)
// shows none of their kind: planning all ten cost 10-20 ms of the
// server's time per table learned.
//
// Foreign keys: each constraint referencing it (partitions' clones
// included), with its actions and the referenced columns (none listed
// when one is generated: an UPDATE of any column may change it,
// TestHostile20GeneratedColumnReferencedByCascade). Triggers:
// those not made by the system (foreign keys' own triggers are) nor by
// the project's migration (querycache_*, which only notify), with their
// function's language and source, and their definition when they have a
// WHEN condition. Rules other than a view's _RETURN.
// Inheritance both ways (partitions are inheritance too). A view's
// relations from the dependencies of its _RETURN rule. The user's
// functions its column defaults and its columns' domains' defaults call
// (the system's are pinned: pg_depend does not list them), with their
// volatility (fnMayWrite). The user's
// functions SQL may call on its rows by attribute notation (not
// immutable, not C: an extension's), with theirs (fnRowFunc). The user's
// functions a CHECK constraint of it or of a column's domain (or of a
// domain the column's type reaches: its base domains, an array's element,
// a composite's fields, TestHostile22IndirectDomain), its view's
// query or its row-security policies call (fnRelWriter).
func postgresDepsQuery(need fnFlags) string {
	return depsQueries[depsIndex(need)]
}

// depsIndex numbers the query variants of postgresDepsQuery.
func depsIndex(need fnFlags) int {
	i := 0
	if need&fnMayWrite != 0 {
		i |= 1
	}
	if need&fnRelWriter != 0 {
		i |= 2
	}
	if need&fnRowFunc != 0 {
		i |= 4
	}
	return i
}

var depsQueries = func() (qs [8]string) {
	for i := range qs {
		with, calls := depsWith, ""
		if i&1 != 0 {
			calls = depsDefaults
		}
		if i&2 != 0 {
			if calls != "" {
				calls += "\nUNION ALL\n"
			}
			calls += depsRelWriters
		}
		if calls != "" {
			with += ",\ncalled(tag, fn) AS (\n" + calls + ")"
		}
		q := with + "\n" + depsAlways
		if calls != "" {
			q += "\nUNION ALL\n" + depsCalled
		}
		if i&4 != 0 {
			q += "\nUNION ALL\n" + depsRowFuncs
		}
		qs[i] = q
	}
	return qs
}()

const depsWith = `WITH r AS (SELECT unnest($1::text::int8[])::oid AS oid)`

// depsAlways: a foreign key referencing the relation is found from the
// dependency every one records on the relation it references (pg_depend's
// reference index; a row per key column, hence DISTINCT): pg_constraint
// has no index on confrelid, and reading all of it took 2-3 ms per table
// learned on the test server, in proportion to the constraints of the
// database (TestDepsQueryFindsWhatTheScansFind). The listener's own
// triggers (migrations/: named querycache_notify_<event>, calling
// querycache_notify) only notify and are left out; an application's
// trigger merely named querycache_... is not
// (TestHostile49PgWritesTriggerNamedLikeListenerIgnored).
const depsAlways = `SELECT 'f', c.relname::text, con.confupdtype::text, con.confdeltype::text,
	CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.confrelid AND a.attnum = ANY(con.confkey) AND a.attgenerated <> '') THEN ''
	ELSE COALESCE((SELECT string_agg(a.attname::text, ',') FROM pg_attribute a WHERE a.attrelid = con.confrelid AND a.attnum = ANY(con.confkey)), '') END
FROM r, LATERAL (SELECT DISTINCT d.objid FROM pg_depend d
	WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = r.oid AND d.classid = 'pg_constraint'::regclass) dc
JOIN pg_constraint con ON con.oid = dc.objid JOIN pg_class c ON c.oid = con.conrelid
WHERE con.contype = 'f' AND con.confrelid = r.oid
UNION ALL
SELECT 't', t.tgname::text, t.tgtype::text || CASE WHEN t.tgqual IS NULL THEN '' ELSE ' ' || pg_get_triggerdef(t.oid) END,
	l.lanname::text, p.prosrc
FROM r, pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang
WHERE t.tgrelid = r.oid AND NOT t.tgisinternal AND NOT (p.proname = 'querycache_notify' AND t.tgname LIKE 'querycache\_notify\_%')
UNION ALL
SELECT 'r', w.rulename::text, '', '', '' FROM r, pg_rewrite w WHERE w.ev_class = r.oid AND w.rulename <> '_RETURN'
UNION ALL
SELECT 'p', c.relname::text, '', '', '' FROM r, pg_inherits i JOIN pg_class c ON c.oid = i.inhparent WHERE i.inhrelid = r.oid
UNION ALL
SELECT 'c', c.relname::text, '', '', '' FROM r, pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = r.oid
UNION ALL
SELECT DISTINCT 'v', c.relname::text, '', '', ''
FROM r, pg_rewrite w JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_class'::regclass
JOIN pg_class c ON c.oid = d.refobjid
WHERE w.ev_class = r.oid AND w.rulename = '_RETURN' AND d.refobjid <> r.oid`

// depsVolLang is a called function's volatility and language, as
// volatileUserFunc reads them. An aggregate's own are always IMMUTABLE and
// internal in pg_proc: a user's is volatile ('v', in a language named for
// the case) when a support function is a volatile one of the user's (a
// view computing it runs that function on every read:
// TestHostile16ViewCallingAggregateWithVolatileTransition). So is a
// function a default of whose arguments calls one: the default runs at
// every call that leaves the argument out
// (TestHostile17DefaultArgumentCallsWriter).
const depsVolLang = `CASE WHEN p.prokind = 'a' AND EXISTS (SELECT 1 FROM pg_aggregate ag
	JOIN pg_proc s ON s.oid IN (ag.aggtransfn, ag.aggfinalfn, ag.aggcombinefn, ag.aggserialfn,
		ag.aggdeserialfn, ag.aggmtransfn, ag.aggminvtransfn, ag.aggmfinalfn)
	JOIN pg_language sl ON sl.oid = s.prolang
	WHERE ag.aggfnoid = p.oid AND s.provolatile = 'v' AND sl.lanname NOT IN ('c', 'internal')) THEN 'v'
	WHEN p.proargdefaults IS NOT NULL AND EXISTS (SELECT 1 FROM pg_depend dd JOIN pg_proc s ON s.oid = dd.refobjid
		JOIN pg_language sl ON sl.oid = s.prolang
		WHERE dd.classid = 'pg_proc'::regclass AND dd.objid = p.oid AND dd.refclassid = 'pg_proc'::regclass
			AND s.provolatile = 'v' AND sl.lanname NOT IN ('c', 'internal')) THEN 'v'
	ELSE p.provolatile::text END,
	CASE WHEN p.prokind = 'a' OR p.proargdefaults IS NOT NULL THEN 'with defaults' ELSE l.lanname::text END`

// depsDefaults and depsRelWriters list the functions called (tag, fn)
// that depsCalled reads the names, volatility and language of, once for
// all of them: with that expression (two subqueries) in each of five
// branches, planning the query took 10 ms of a new backend's time.
const depsDefaults = `SELECT 'd', d.refobjid
FROM r, pg_attrdef ad JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_proc'::regclass
WHERE ad.adrelid = r.oid
UNION ALL
SELECT 'd', d.refobjid
FROM r, pg_attribute a JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = a.atttypid AND d.refclassid = 'pg_proc'::regclass
WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped`

// A CHECK of the relation itself and one of a domain its columns reach are
// two branches: joined by OR, neither could use pg_constraint's indexes.
// The domains' branch reads pg_constraint per type found (OFFSET 0 keeps
// the server from reordering it): where the catalogs' statistics were
// stale (autovacuum off, as on the test server) it read every dependency of
// every constraint on a function instead, 2-5 ms per table learned.
const depsRelWriters = `SELECT 'd', d.refobjid
FROM r, pg_constraint con JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid AND d.refclassid = 'pg_proc'::regclass
WHERE con.contype = 'c' AND con.conrelid = r.oid
UNION ALL
SELECT 'd', d.refobjid
FROM r, LATERAL (WITH RECURSIVE ty(oid, depth) AS (
	SELECT a.atttypid, 0 FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
	UNION
	SELECT x.oid, ty.depth + 1 FROM ty JOIN pg_type t ON t.oid = ty.oid CROSS JOIN LATERAL (
		SELECT t.typbasetype AS oid WHERE t.typbasetype <> 0
		UNION ALL SELECT t.typelem WHERE t.typelem <> 0 AND t.typcategory = 'A'
		UNION ALL SELECT a2.atttypid FROM pg_attribute a2 WHERE t.typtype = 'c' AND a2.attrelid = t.typrelid AND a2.attnum > 0 AND NOT a2.attisdropped) x
	WHERE ty.depth < 8)
	SELECT DISTINCT oid FROM ty) ty,
LATERAL (SELECT d.refobjid FROM pg_constraint con
	JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = con.oid AND d.refclassid = 'pg_proc'::regclass
	WHERE con.contypid = ty.oid AND con.contype = 'c' OFFSET 0) d
UNION ALL
SELECT 'w', d.refobjid
FROM r, pg_rewrite w JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = w.oid AND d.refclassid = 'pg_proc'::regclass
WHERE w.ev_class = r.oid AND w.rulename = '_RETURN'
UNION ALL
SELECT 'q', d.refobjid
FROM r, pg_policy pol JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid AND d.refclassid = 'pg_proc'::regclass
WHERE pol.polrelid = r.oid`

// depsCalled names the functions of called: for a view's query ('w') and
// a policy ('q') only the user's (pg_catalog's own are pinned).
const depsCalled = `SELECT DISTINCT k.tag, p.proname::text, ` + depsVolLang + `, ''
FROM called k JOIN pg_proc p ON p.oid = k.fn JOIN pg_language l ON l.oid = p.prolang
WHERE k.tag = 'd' OR p.pronamespace <> 'pg_catalog'::regnamespace OR p.oid >= 16384`

const depsRowFuncs = `SELECT DISTINCT 'a', p.proname::text, p.provolatile::text, '', ''
FROM r JOIN pg_class c ON c.oid = r.oid, pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid >= 16384 AND p.provolatile <> 'i' AND l.lanname NOT IN ('c', 'internal')
	AND p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1
	AND p.proargtypes[0] IN (c.reltype, 'record'::regtype, 'anyelement'::regtype, 'anynonarray'::regtype,
		'anycompatible'::regtype, 'anycompatiblenonarray'::regtype)`

func learnPostgresDeps(ctx context.Context, cp gorm.ConnPool, oids []int64, need fnFlags, f *tableFacts) error {
	rows, err := cp.QueryContext(ctx, postgresDepsQuery(need), oidArray(oids))
	if err != nil {
		return err
	}
	defer rows.Close()
	d := &f.deps
	for rows.Next() {
		var tag, name, a, b, c string
		if err := rows.Scan(&tag, &name, &a, &b, &c); err != nil {
			return err
		}
		rel := catalogName(name)
		if rel == "" && tag != "t" && tag != "r" && tag != "d" && tag != "a" && tag != "w" && tag != "q" {
			d.unknown = true
			continue
		}
		switch tag {
		case "f":
			fk := fkChild{table: rel}
			if a != "" {
				fk.onUpdate = a[0]
			}
			if b != "" {
				fk.onDelete = b[0]
			}
			if c != "" {
				fk.cols = strings.Split(strings.ToLower(c), ",")
			}
			d.children = append(d.children, fk)
		case "t":
			// tgtype, and the trigger's definition when it has a WHEN
			// condition (which may call a function that writes:
			// TestHostile20TriggerWhenCallsWriter).
			typ, def, _ := strings.Cut(a, " ")
			tgtype, err := strconv.Atoi(typ)
			if err != nil {
				d.triggers = append(d.triggers, trigger{events: opDML | opTruncate, all: true})
				continue
			}
			tr := postgresTrigger(tgtype, b, c)
			if def != "" {
				tr.addWhen(postgresWhen(def))
			}
			d.triggers = append(d.triggers, tr)
		case "r":
			d.rules = true
		case "a":
			d.rowFuncs = true
		case "w":
			// A view calling a volatile function of the user's writes
			// whenever it is read (TestHostile14ViewCallingWriterFunction),
			// a materialized view's query runs only on REFRESH
			// (TestHostile15MaterializedViewReadInvalidatesAll). Views are
			// never cached (derivedRefusal): only this matters.
			writer := volatileUserFunc(a, b)
			switch f.relkind {
			case 'v':
				d.readWriter = d.readWriter || writer
			case 'm':
				d.refreshWriter = d.refreshWriter || writer
			}
		case "q":
			// A row-security policy calling one writes whenever the
			// table is read (TestHostile15RowSecurityPolicyCallsWriter).
			d.readWriter = d.readWriter || volatileUserFunc(a, b)
		case "d":
			// A column default calling a volatile function of the user's
			// (an invoice number taken from a counter table), or a CHECK
			// constraint or a column's domain's CHECK calling one
			// (TestHostile15HiddenCallConstraintsAndViews), may write
			// anything when a row is inserted or updated: as a trigger
			// whose writes are not known. Stable and immutable
			// functions cannot write; nor, here, C functions (an
			// extension's, as uuid-ossp's uuid_generate_v4: a row's key,
			// not a write).
			if volatileUserFunc(a, b) {
				// The call is kept: one whose body changes the session
				// changes the writing connection's (firedSessionChange).
				d.triggers = append(d.triggers, trigger{events: opInsert | opUpdate, all: true,
					calls: []sqlinspect.Func{{Name: strings.ToLower(name)}}})
			}
		case "p":
			d.parents = append(d.parents, rel)
		case "c":
			d.inherits = append(d.inherits, rel)
		case "v":
			if f.relkind == 'v' {
				d.bases = append(d.bases, rel)
			}
		}
	}
	return rows.Err()
}

// volatileUserFunc reports whether a function of the catalog's rows, of
// volatility vol (provolatile) and language lang, may write: VOLATILE and
// not C or internal (an extension's, as uuid-ossp's uuid_generate_v4).
func volatileUserFunc(vol, lang string) bool {
	return vol == "v" && lang != "c" && lang != "internal"
}

func learnSQLiteDeps(ctx context.Context, cp gorm.ConnPool, table string, f *tableFacts) error {
	d := &f.deps
	if f.relkind != 'v' {
		// SQLite enforces foreign keys only with PRAGMA foreign_keys=ON,
		// which the plugin cannot see per connection: the actions count
		// either way (over-invalidating is harmless).
		// A referenced column that is generated (pragma_table_xinfo's
		// hidden 2 or 3) changes with the columns it is computed from.
		rows, err := cp.QueryContext(ctx, `SELECT m.name, f."to", f.on_update, f.on_delete,
	COALESCE((SELECT x.hidden IN (2, 3) FROM pragma_table_xinfo(?) x WHERE x.name = f."to" COLLATE NOCASE), 0)
FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f
WHERE m.type = 'table' AND f."table" = ? COLLATE NOCASE`, table, table)
		if err != nil {
			return err
		}
		for rows.Next() {
			var name, onUpdate, onDelete string
			var to sql.NullString
			var generated bool
			if err := rows.Scan(&name, &to, &onUpdate, &onDelete, &generated); err != nil {
				rows.Close()
				return err
			}
			rel := catalogName(name)
			if rel == "" {
				d.unknown = true
				continue
			}
			fk := fkChild{table: rel, onUpdate: sqliteAction(onUpdate), onDelete: sqliteAction(onDelete)}
			switch {
			case generated:
				// No columns: any UPDATE may change it
				// (TestHostile21SQLiteGeneratedColumnReferencedByCascade).
			case to.Valid && to.String != "":
				fk.cols = []string{strings.ToLower(to.String)}
			case len(f.pk) > 0:
				fk.cols = f.pk // a key naming no column references the primary key
			}
			d.children = append(d.children, fk)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	// Temporary triggers may sit on a main table; those of other
	// connections are not visible here.
	rows, err := cp.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? COLLATE NOCASE
UNION ALL SELECT sql FROM sqlite_temp_master WHERE type = 'trigger' AND tbl_name = ? COLLATE NOCASE`, table, table)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ddl sql.NullString
		if err := rows.Scan(&ddl); err != nil {
			return err
		}
		d.triggers = append(d.triggers, parseSQLiteTrigger(ddl.String))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	return learnSQLiteDefaults(ctx, cp, table, d)
}

// learnSQLiteDefaults adds what the table's column defaults call as a
// trigger of INSERT and UPDATE (an ON DELETE|UPDATE SET DEFAULT action is
// an UPDATE of the child): SQLite allows DEFAULT (f()) for any function,
// one the application registered included, which runs on every row that
// takes the default (TestHostile22SQLiteDefaultCallsWriter). A default
// that cannot be read counts as anything.
func learnSQLiteDefaults(ctx context.Context, cp gorm.ConnPool, table string, d *depFacts) error {
	rows, err := cp.QueryContext(ctx, `SELECT dflt_value FROM pragma_table_xinfo(?) WHERE dflt_value IS NOT NULL AND instr(dflt_value, '(') > 0`, table)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var dflt string
		if err := rows.Scan(&dflt); err != nil {
			return err
		}
		st := sqlinspect.InspectDialect("SELECT "+dflt, sqlinspect.DialectSQLite)
		tr := trigger{events: opInsert | opUpdate, calls: st.Functions}
		if st.Undetermined || st.Kind != sqlinspect.KindSelect || len(st.Writes) > 0 {
			tr.all = true
		}
		if tr.all || len(tr.calls) > 0 {
			d.triggers = append(d.triggers, tr)
		}
	}
	return rows.Err()
}

func sqliteAction(a string) byte {
	switch strings.ToUpper(a) {
	case "CASCADE":
		return 'c'
	case "SET NULL":
		return 'n'
	case "SET DEFAULT":
		return 'd'
	}
	return 'a'
}

// rawBase is what a raw statement invalidates by its text, and whether it
// is TRUNCATE ... CASCADE, whose other tables withDependents adds from the
// schema (invalidation.FromInspected alone invalidates everything for it).
func rawBase(info sqlinspect.Statement, sql string) (querycache.Change, bool) {
	if info.Cascade && info.Statements == 1 && info.Kind == sqlinspect.KindDDL && !info.Undetermined {
		if head, _ := headWords(sql); head == "TRUNCATE" {
			named := info
			named.Cascade = false
			return invalidation.FromInspected(named), true
		}
	}
	return invalidation.FromInspected(info), false
}

// statementOps returns what the statement does to the tables it writes,
// from its head keyword: 0 when it changes no rows of another table
// whatever the schema (CREATE, PRAGMA, a read).
func statementOps(info sqlinspect.Statement, sql string) opSet {
	if info.Statements != 1 {
		switch info.Kind {
		case sqlinspect.KindWrite, sqlinspect.KindDDL, sqlinspect.KindUnknown:
			return opDML | opTruncate | opDrop | opAlter
		}
		return 0
	}
	head, second := headWords(sql)
	var ops opSet
	switch info.Kind {
	case sqlinspect.KindWrite:
		switch head {
		case "INSERT":
			ops = opInsert
			if containsFold(sql, "CONFLICT") || containsFold(sql, "DUPLICATE") {
				ops |= opUpdate
			}
		case "REPLACE":
			ops = opInsert | opDelete
		case "UPDATE":
			ops = opUpdate
		case "DELETE":
			ops = opDelete
		case "REFRESH":
			return 0 // a materialized view: no keys, triggers or children
		case "COPY":
			ops = opInsert
		default: // WITH, MERGE, SELECT INTO, anything else
			ops = opDML
		}
		if info.Replace {
			ops |= opDelete
		}
	case sqlinspect.KindDDL:
		switch head {
		case "TRUNCATE":
			ops = opTruncate
		case "DROP":
			if second == "TABLE" || second == "FOREIGN" {
				ops = opDrop
			}
		case "ALTER":
			ops = opAlter
		}
	case sqlinspect.KindUnknown:
		ops = opDML | opTruncate | opDrop | opAlter
	}
	return ops
}

// headWords returns the first two words of sql, upper-cased, after
// comments and opening parentheses.
func headWords(sql string) (string, string) {
	toks, _ := lexSQL(prefix(sql, 256))
	var w []string
	for _, t := range toks {
		if t.punct == '(' && len(w) == 0 {
			continue
		}
		if t.word == "" {
			break
		}
		w = append(w, t.word)
		if len(w) == 2 {
			break
		}
	}
	for len(w) < 2 {
		w = append(w, "")
	}
	return w[0], w[1]
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// containsFold reports whether s contains the upper-case ASCII word sub in
// any case.
func containsFold(s, sub string) bool {
	n := len(sub)
outer:
	for i := 0; i+n <= len(s); i++ {
		for j := 0; j < n; j++ {
			c := s[i+j]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != sub[j] {
				continue outer
			}
		}
		return true
	}
	return false
}

// schemaPending reports whether the statement runs in a transaction that
// has changed the schema: the facts remembered may miss a trigger or a
// key it created, and what it sees may be rolled back.
func (p *Plugin) schemaPending(db *gorm.DB) bool {
	tx, inTx := managedTx(db.Statement.ConnPool)
	return inTx && tx != nil && tx.buf.WroteCatalog()
}

// depFactsOf returns the facts of a table reached by a write: remembered,
// or learned on the statement's connection when learn allows, or on a
// spare connection of the pool.
func (p *Plugin) depFactsOf(db *gorm.DB, table string, learn bool) *tableFacts {
	st := p.cat.current()
	if f, ok := st.tables.Load(table); ok {
		return f.(*tableFacts)
	}
	var cp gorm.ConnPool
	if learn {
		cp = p.learnConn(db)
	}
	if cp == nil {
		cp = p.spareConn()
	}
	return p.learnFacts(db, st, cp, table)
}

// beforeAssigns reports whether a BEFORE UPDATE row trigger of the table
// may change one of cols in the row being written (NEW.code := ...): an
// UPDATE whose SET list names none of them may still fire the ON UPDATE
// actions of a foreign key referencing them
// (TestHostile20BeforeTriggerChangesReferencedColumn).
func beforeAssigns(triggers []trigger, cols []string) bool {
	for i := range triggers {
		tr := &triggers[i]
		if tr.events&opUpdate == 0 {
			continue
		}
		if tr.all {
			return true
		}
		if tr.before && tr.movesKey(opUpdate, cols) {
			return true
		}
	}
	return false
}

// visit is how far the walk has carried writes to one table.
type visit struct {
	ops     opSet
	down    bool // its partitions and children are written too
	reached bool // reached by an edge (not only named by the statement)
}

// withDependents adds to ch the tables the database changes because of
// the statement (info, sql) beyond the ones it names. learn says whether
// the catalog may be read on the statement's connection now. cascade is
// TRUNCATE ... CASCADE, which empties every table referencing a truncated
// one, whatever its foreign key's actions.
//
// info is not modified: it may be the memo's own inspection. known are
// facts the caller has read already (writeChange's).
func (p *Plugin) withDependents(db *gorm.DB, ch querycache.Change, info *sqlinspect.Statement, sql string, learn, cascade bool, known knownFacts) querycache.Change {
	if ch.All || ch.Empty() || p.broken["dependents"] {
		if ch.All {
			p.noteFiredSession(db, info, learn) // everything, yet the session too
		}
		return ch
	}
	if p.schemaPending(db) {
		p.noteFiredSession(db, info, learn)
		return querycache.Change{All: true}
	}
	if p.w.tempTrigCount.Load() > 0 && p.w.writesTempTriggered(ch) {
		p.noteFiredSession(db, info, learn)
		return querycache.Change{All: true} // a temporary trigger may fire (noteTempTriggers)
	}
	if info.Attached && info.Kind != sqlinspect.KindSelect {
		// SQLite: a relation of an attached database (aux.items), whose
		// catalog is not read: its triggers and foreign keys are not in
		// the facts, which are the main schema's relation of that name
		// (TestHostile29AttachedInConnectHook).
		return querycache.Change{All: true}
	}
	var startBuf [4]string // the common write names one table: no allocation
	start := startBuf[:0]
	for _, t := range ch.Tables {
		if t != keys.CatalogTable {
			start = append(start, t)
		}
	}
	for _, r := range ch.Rows {
		start = append(start, r.Table)
	}
	// The common case, a DML write to tables nothing depends on, costs a
	// lookup per table.
	if info.Kind == sqlinspect.KindWrite {
		plain := true
		for _, t := range start {
			f := known.f
			if f == nil || t != known.table {
				f = p.depFactsOf(db, t, learn)
			}
			if f == nil || f.exists && (f.replaces || !f.deps.empty() || f.relkind == 'f') {
				plain = false
				break
			}
			if !f.exists && p.dialect == "sqlite" && !(p.w.tempCount.Load() > 0 && p.w.readsTemp([]string{t})) {
				// Written, yet not in the main schema: an attached
				// database's table named without its schema, whose
				// triggers and foreign keys the facts do not show.
				return querycache.Change{All: true}
			}
		}
		if plain {
			return ch
		}
	}
	ops := statementOps(*info, sql)
	if ops == 0 {
		return ch
	}
	all := querycache.Change{All: true}
	if ops&(opDrop|opAlter) != 0 {
		if p.dialect == "sqlite" && ops&opDrop == 0 {
			return ch // SQLite's ALTER TABLE changes no other table's rows
		}
		// Facts learned inside a transaction just after its DDL may be
		// rolled back, and a table dropped can no longer be asked about;
		// ALTER TABLE ... [NO] INHERIT changes a parent the facts of the
		// child knew nothing of (or no longer show).
		if _, inTx := p.inTransaction(db.Statement.ConnPool); inTx {
			return all
		}
		if p.dialect == "postgres" && ops&opAlter != 0 && containsFold(sql, "INHERIT") {
			return all
		}
	}

	movesPartition := ops&opAlter != 0 && (containsFold(sql, "ATTACH") || containsFold(sql, "DETACH"))
	seen := map[string]*visit{}
	var queue []string
	push := func(t string, o opSet, down, edge bool) {
		if o == 0 {
			return
		}
		v := seen[t]
		if v == nil {
			v = &visit{}
			seen[t] = v
		}
		// Reached by an edge for the first time, a written table loses
		// the SET-list refinement (a trigger may update what it skipped):
		// walk it again.
		changed := o&^v.ops != 0 || down && !v.down || edge && !v.reached
		v.ops |= o
		v.down = v.down || down
		v.reached = v.reached || edge
		if changed {
			queue = append(queue, t)
		}
	}
	for _, t := range start {
		push(t, ops, true, false)
	}
	// An UPDATE that assigns none of the columns a foreign key references
	// fires no ON UPDATE action; only the statement's own SET list is
	// known (a cascaded update's columns are not).
	var assigned []string
	assignedKnown := false
	if ops == opUpdate {
		assigned, assignedKnown = sqlinspect.AssignedColumns(sql, p.sqlDialect)
	}
	startSet := map[string]bool{}
	for _, t := range start {
		startSet[t] = true
	}
	var moved []string // written tables whose rows a trigger may move to other keys
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		if p.w.tempTrigCount.Load() > 0 {
			if _, ok := p.w.tempTrigs.Load(t); ok {
				// Reached through an edge (a trigger's write, a cascade):
				// a temporary trigger on it, on some connection, is not in
				// its facts (TestHostile30TempTriggerReachedThroughEdge).
				return all
			}
		}
		v := seen[t]
		o := v.ops
		var f *tableFacts
		if o&opDrop != 0 {
			f = p.cachedFacts(t) // the table is gone: what was known before
		} else {
			f = p.depFactsOf(db, t, learn)
		}
		if f == nil || f.deps.unknown {
			return all
		}
		if !f.exists {
			if v.reached {
				return all // the catalog names a relation that cannot be looked up
			}
			// The statement failed, wrote a temporary table of another
			// connection, or dropped a table that did not exist.
			continue
		}
		d := &f.deps
		if o&opUpdate != 0 && (len(d.parents) > 0 || len(d.inherits) > 0) {
			// PostgreSQL runs an UPDATE that moves a row to another
			// partition as a DELETE from its partition and an INSERT into
			// the other: their DELETE and INSERT triggers fire.
			o |= opInsert | opDelete
		}
		if f.replaces && o&(opInsert|opUpdate) != 0 {
			o |= opDelete // ON CONFLICT REPLACE deletes the conflicting rows
		}
		if d.rules && o&(opDML|opTruncate) != 0 {
			return all // a rule rewrites the statement into anything
		}
		if f.relkind == 'f' && o&(opDML|opTruncate) != 0 {
			// A foreign table's rows are another server's, which may be
			// this database (postgres_fdw on a loopback server:
			// TestHostile20LoopbackWriters).
			return all
		}
		for _, fk := range d.children {
			var co opSet
			if o&(opDelete|opDrop) != 0 {
				switch fk.onDelete {
				case 'c':
					co |= opDelete
				case 'n', 'd':
					co |= opUpdate
				}
			}
			if o&opUpdate != 0 && (!assignedKnown || !startSet[t] || v.reached || assigns(assigned, fk.cols) || beforeAssigns(d.triggers, fk.cols)) {
				switch fk.onUpdate {
				case 'c', 'n', 'd':
					co |= opUpdate
				}
			}
			if o&opTruncate != 0 && cascade {
				co |= opTruncate
			}
			push(fk.table, co, true, true)
		}
		if o&(opDML|opTruncate) != 0 {
			// Every trigger that fires is asked first: one that may do
			// anything returns below before the triggers after it are
			// read (TestHostile33AllTriggerHidesSetter).
			if triggersChangeSession(p, db, d.triggers, o, learn) {
				p.firedSessionChange(db)
			}
			for i := range d.triggers {
				tr := &d.triggers[i]
				if tr.events&o == 0 {
					continue
				}
				if startSet[t] && tr.movesKey(o, f.pk) && !slices.Contains(moved, t) {
					moved = append(moved, t) // its rows may be stored under other keys
				}
				if tr.all || len(tr.calls) > 0 && p.mayWrite(db, sqlinspect.Statement{Functions: tr.calls}, learn) ||
					len(tr.reads) > 0 && p.readsHiddenWriter(db, tr.reads, learn) || p.namesWriterDomain(db, tr.names, learn) {
					return all
				}
				for _, w := range tr.writes {
					push(w, tr.ops, true, true)
				}
			}
		}
		if f.relkind == 'v' && o&opDML != 0 {
			for _, b := range d.bases {
				push(b, o&opDML, true, true)
			}
		}
		// The parent shows the partition's rows: it changes as they do,
		// loses them when the partition is dropped, and is not altered
		// by an ALTER of the partition, unless the ALTER attaches or
		// detaches a partition of its own: its rows come or go, and so
		// do its parent's (TestHostile20AttachDetachUnderSubpartition).
		up := o &^ (opDrop | opAlter)
		if o&opDrop != 0 {
			up |= opDelete
		}
		if o&opAlter != 0 && movesPartition {
			up |= opInsert | opDelete
		}
		for _, a := range d.parents {
			push(a, up, false, true)
		}
		if v.down {
			for _, c := range d.inherits {
				push(c, o, true, true) // the parent's write reaches its partitions
			}
		}
	}
	var extra []string
	for t, v := range seen {
		if v.reached && t != keys.CatalogTable {
			extra = append(extra, t)
		}
	}
	if len(moved) > 0 {
		// A row written under one key may be stored under another: the
		// table's rows in bulk, not those the statement named.
		rows := make([]querycache.Row, 0, len(ch.Rows))
		for _, r := range ch.Rows {
			if !slices.Contains(moved, r.Table) {
				rows = append(rows, r)
			}
		}
		ch = querycache.Change{Rows: rows, Tables: append(append([]string(nil), ch.Tables...), moved...), Cause: ch.Cause}
	}
	if len(extra) == 0 {
		return ch
	}
	sort.Strings(extra)
	out := querycache.Change{Rows: ch.Rows, Tables: append(append([]string(nil), ch.Tables...), extra...)}
	return out
}

// assigns reports whether an UPDATE's SET list names one of cols (nil:
// unknown, so yes).
func assigns(assigned, cols []string) bool {
	if cols == nil {
		return true
	}
	for _, a := range assigned {
		if isRowidAlias(a) {
			return true // SQLite: the rowid is an INTEGER PRIMARY KEY
		}
		for _, c := range cols {
			if strings.EqualFold(a, c) {
				return true
			}
		}
	}
	return false
}
