package gormcache

import (
	"reflect"
	"slices"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"querycache.dev/invalidation"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// executed reports whether the write callback's statement reached the
// database (or may have): nothing to invalidate for a dry run or a
// statement GORM never built.
func executed(db *gorm.DB) bool {
	return !db.DryRun && db.Statement.SQL.Len() > 0
}

func writeTable(db *gorm.DB) string { return sqlinspect.NormalizeTable(db.Statement.Table) }

// presetSQL is the key, in a statement's Settings, of a write whose SQL
// was set before GORM's create, update or delete callback ran: GORM then
// runs that SQL as it is (db.Raw("DELETE FROM authors").Where("id = ?",
// 1).Delete(&a) deletes every author), and the clauses and the model the
// statement also carries do not say what it wrote.
type presetSQL struct{}

// notePresetSQL runs just before GORM's create, update and delete
// callbacks: SQL already there is the statement's own, not GORM's.
func (p *Plugin) notePresetSQL(db *gorm.DB) {
	if db.Statement.SQL.Len() > 0 {
		p.presets.Add(1)
		db.Statement.Settings.Store(presetSQL{}, db.Statement)
	}
}

// takeMark deletes key from the statement's settings and reports whether
// it was this statement's own mark. GORM copies a statement's settings
// into the statements that save its associations (saveAssociations ranges
// over them), so a copy of the mark reaches a child statement that never
// counted it: the child deletes it uncounted, and the parent's mark and
// count stay for the parent (TestHostile13PresetSQLWithAssociationsLatePath:
// the child took the parent's count, and the parent's preset SQL was then
// narrowed to its clauses' row).
func takeMark(db *gorm.DB, key any) bool {
	v, ok := db.Statement.Settings.LoadAndDelete(key)
	return ok && v == any(db.Statement)
}

// wasPreset reports (once) whether notePresetSQL saw the statement's SQL
// set before GORM's callback; such a write is invalidated as the SQL the
// user wrote is (presetChange), never narrowed by the statement's clauses
// or model (TestHostile9PresetSQLWriteKeepsEarlierWhere). While no such
// write is under way the statement's settings are not read (a lookup in
// a sync.Map hashed its key on every write).
func (p *Plugin) wasPreset(db *gorm.DB) bool {
	if p.presets.Load() == 0 {
		return false
	}
	if takeMark(db, presetSQL{}) {
		p.presets.Add(-1)
		return true
	}
	return false
}

// presetChange is what a write of preset SQL wrote, judged as afterRaw
// judges db.Exec's SQL.
func (p *Plugin) presetChange(db *gorm.DB, busy bool) querycache.Change {
	info := p.inspect(db.Statement.SQL.String())
	p.observeRaw(db, info, true)
	return announced(&info, duringDDL(busy, withCause(p.rawChange(db, info, true), rawCause(db.Statement.SQL.String()))))
}

// A gormWrite is one of GORM's write callbacks: create, update or delete.
type gormWrite struct {
	op     int    // index in writeChain.wrapped
	name   string // GORM's callback: "gorm:create", "gorm:update" or "gorm:delete"
	source string // "create", "update" or "delete": for record and OnChange
	cause  string // the change's cause
	// where is writeChange's argument: the WHERE clause confines the rows
	// (an update, a delete; a soft delete is an UPDATE the delete
	// callbacks build). A create's rows are the model's: each by primary
	// key when all are known (so a cached "not found" for that key is
	// dropped), otherwise the table's rows in bulk; an upsert may update
	// rows other than the ones passed in, so it always invalidates in bulk.
	where bool
}

var (
	gormCreate = gormWrite{op: 0, name: "gorm:create", source: "create", cause: "gorm create"}
	gormUpdate = gormWrite{op: 1, name: "gorm:update", source: "update", cause: "gorm update", where: true}
	gormDelete = gormWrite{op: 2, name: "gorm:delete", source: "delete", cause: "gorm delete", where: true}
)

// change returns what the write changed; ok is false when it ran nothing
// (a dry run). It reads the statement as GORM's write left it, before the
// associations are saved and the model's After hooks run: a hook may
// change the model, its primary key too.
func (p *Plugin) change(db *gorm.DB, w gormWrite) (querycache.Change, bool) {
	preset := p.wasPreset(db)
	if !executed(db) {
		return querycache.Change{}, false
	}
	busy := p.beforeFacts(true) // before any facts are read (ddlwindow.go)
	if preset {
		return p.presetChange(db, busy), true
	}
	in := p.writeInspection(db.Statement.SQL.String())
	ch, planned := p.plannedRowWrite(db, in, w)
	if !planned {
		st := p.cat.current()
		stored := st.stored.Load() // before the judgement: a fact stored during it is seen
		p.observeBuilt(db, in)
		var known knownFacts
		ch, known = p.writeChange(db, in, w.where)
		// Written in steps on one variable: each helper taking and
		// returning the change copied it twice, on every write.
		ch = p.withDependents(db, ch, &in.st, db.Statement.SQL.String(), true, false, known)
		p.rememberRowWrite(db, in, w, ch, known, st, stored)
	}
	ch.Cause = w.cause
	if busy {
		ch = duringDDL(busy, ch)
	}
	return ch, true
}

// observeBuilt tells observeRaw of a write GORM built that calls a
// function or changes session state (Update("x", gorm.Expr("set_config(
// ...)"))): what the text does to the connection counts whoever wrote it.
func (p *Plugin) observeBuilt(db *gorm.DB, in *inspection) {
	if len(in.st.Functions) > 0 || in.st.SessionState {
		p.observeRaw(db, in.st, true)
	}
}

// afterRaw invalidates what db.Exec's SQL writes (migrations included).
func (p *Plugin) afterRaw(db *gorm.DB) {
	if !executed(db) {
		return
	}
	info := p.inspect(db.Statement.SQL.String()) // the text only: no facts
	busy := p.beforeFacts(!changesSchema(&info)) // before any facts are read (ddlwindow.go)
	p.observeRaw(db, info, true)
	p.record(db, "raw", announced(&info, duringDDL(busy, withCause(p.rawChange(db, info, true), rawCause(db.Statement.SQL.String())))))
}

// withCause sets the change's Cause (querycache.Change.Cause, shown by
// Cache.RecentInvalidations and the debug page). Causes are constants: no
// allocation on the write path, and never a value.
func withCause(ch querycache.Change, cause string) querycache.Change {
	ch.Cause = cause
	return ch
}

// rawCause names a statement the user wrote by its first keyword only: the
// rest of the text may hold literal values, which a cause must not show.
// The tables are in the change itself.
func rawCause(sql string) string {
	sql = strings.TrimLeft(sql, " \t\r\n(")
	i := 0
	for i < len(sql) && i < 16 && (sql[i] >= 'a' && sql[i] <= 'z' || sql[i] >= 'A' && sql[i] <= 'Z') {
		i++
	}
	word := sql[:i]
	for _, c := range rawCauses {
		if strings.EqualFold(word, c.word) {
			return c.cause
		}
	}
	return "raw SQL"
}

var rawCauses = []struct{ word, cause string }{
	{"INSERT", "raw SQL: INSERT"}, {"UPDATE", "raw SQL: UPDATE"}, {"DELETE", "raw SQL: DELETE"},
	{"REPLACE", "raw SQL: REPLACE"}, {"MERGE", "raw SQL: MERGE"}, {"WITH", "raw SQL: WITH"},
	{"TRUNCATE", "raw SQL: TRUNCATE"}, {"CREATE", "raw SQL: DDL"}, {"ALTER", "raw SQL: DDL"},
	{"DROP", "raw SQL: DDL"}, {"COMMENT", "raw SQL: DDL"}, {"SELECT", "raw SQL: SELECT"},
}

// rawChange is what a statement the user wrote invalidates: the tables it
// writes, or everything when it calls a function that may write what the
// SQL does not show. learn says whether the catalog may be read now.
func (p *Plugin) rawChange(db *gorm.DB, info sqlinspect.Statement, learn bool) querycache.Change {
	sql := db.Statement.SQL.String()
	ch, cascade := rawBase(info, sql)
	if !ch.All && (p.mayWrite(db, info, learn) || p.callsHiddenWriter(db, &info, learn) || p.ddlCallsWriter(db, &info, sql, learn)) {
		p.noteFiredSession(db, &info, learn)
		return querycache.Change{All: true}
	}
	// What the schema carries further: foreign-key actions, triggers,
	// partitions, views (dependents.go).
	return p.withDependents(db, ch, &info, sql, learn, cascade, knownFacts{})
}

// hiddenVerdict says that a GORM write of a text calls no hidden writer
// (callsHiddenWriter) in the catalog state of generation gen while it has
// stored stored things: what that judgement read (the facts of the tables
// the text names, the function list) is what the state still holds.
type hiddenVerdict struct {
	gen, stored uint64
}

// writeCallsHiddenWriter is callsHiddenWriter for a GORM write of in's
// text, whose "no" is remembered with the text on SQLite. There the
// driver's FTS3 and R*Tree functions are registered as not deterministic,
// so every write looked up the facts of each table it names and asked
// whether each runs a writer: about a tenth of the plugin's share of an
// update, for the same answer until the catalog state changes. On
// PostgreSQL the function list answers at once in the common case, and
// the answer also depends on the transaction's search_path (mayWrite):
// not remembered.
//
// The generation and count are read before the judgement and compared
// after it: a fact or list stored meanwhile (learned by the judgement
// itself, say) leaves nothing remembered, so what is remembered was
// judged on exactly what the state holds while the count is unchanged.
// A judgement that met facts learned but not stored (past
// maxCatalogTables) is not remembered either.
func (p *Plugin) writeCallsHiddenWriter(db *gorm.DB, in *inspection) bool {
	if p.dialect != "sqlite" || p.w.tempViewCount.Load() > 0 {
		// (A temporary view created since the judgement changes it
		// without a new catalog state: not remembered once there is one.)
		return p.callsHiddenWriter(db, &in.st, true)
	}
	st := p.cat.current()
	stored := st.stored.Load()
	if v := in.noHidden.Load(); v != nil && v.gen == st.gen && v.stored == stored {
		return false
	}
	if p.callsHiddenWriter(db, &in.st, true) {
		return true
	}
	if p.cat.current() == st && st.stored.Load() == stored && st.n.Load() <= maxCatalogTables {
		in.noHidden.Store(&hiddenVerdict{gen: st.gen, stored: stored})
	}
	return false
}

// callsHiddenWriter reports whether a statement calls a volatile function
// of the user's that its text does not show as a call, which may write
// anything: by attribute notation (SELECT o.claim FROM t o, UPDATE t SET n
// = t.claim, (ROW(1)::t).claim: attributeCall), or by reading a view whose
// query calls one or a table whose row-security policy does (directly or
// through the views it reads), or by refreshing a materialized view whose
// query does; or, while an operator or a cast has a function that may
// write (fnList.hiddenWriter), any statement.
//
// While the function list shows no volatile function of the user's called
// that way (fnRowWriter, fnRelWriter), nothing else is looked up: the
// check is on every write and on every read GORM built that goes to the
// database. A relation whose facts cannot be learned now (every connection
// busy) counts as one that may write.
func (p *Plugin) callsHiddenWriter(db *gorm.DB, info *sqlinspect.Statement, learn bool) bool {
	if p.w.tempViewCount.Load() > 0 && (p.w.readsTempView(info.Reads) || p.w.readsTempView(info.Writes)) {
		// A name once created as a temporary view shadows, on the
		// connection that created it, the relation the catalog's facts
		// describe (SQLite's are read from sqlite_master, the main
		// schema's): its query may call a writer they do not show
		// (TestHostile28TempViewCallsWriter). A temporary table runs
		// nothing when read (its triggers: noteTempTriggers), and reads
		// of its name bypass the cache already: not counted here, or every
		// read of a common name would invalidate everything.
		return true
	}
	if p.dialect == "sqlite" {
		return p.readsHiddenWriter(db, info.Reads, learn) || p.readsHiddenWriter(db, info.Writes, learn)
	}
	if p.dialect != "postgres" {
		return false
	}
	// The list is the database's, not the statement's: read on a spare
	// connection when the statement's may not be used (a db.Connection's,
	// maybe inside a transaction opened by text), it does not make the
	// tables' facts known there.
	var cp gorm.ConnPool
	if learn {
		cp = p.learnConn(db)
	}
	if cp == nil {
		cp = p.spareConn()
	}
	funcs := p.functionsOn(db, cp)
	if funcs != nil {
		if funcs.hiddenWriter {
			// An operator's or a cast's function may write, and any
			// statement may call it without naming it
			// (TestHostile20ImplicitFunctionCalls, TestHostile22ImplicitOperatorSyntax).
			return true
		}
		if funcs.any&fnRowWriter != 0 && attributeCall(db.Statement.SQL.String(), funcs) {
			return true
		}
		if funcs.any&fnRelWriter == 0 {
			// No view, policy or constraint calls a writer: the relations'
			// facts need not be looked up (nor learned, on every read).
			return false
		}
	}
	var seen []string // views walked, for a view reading another
	var walk func(tables []string, written bool, depth int) bool
	walk = func(tables []string, written bool, depth int) bool {
		for _, t := range tables {
			if t == keys.CatalogTable || slices.Contains(seen, t) {
				continue
			}
			f := p.depFactsOf(db, t, learn)
			if f == nil {
				return true // not known now: it may (TestHostile15ViewWriterReadByRowOnBusyPool)
			}
			if f.deps.readWriter || written && f.deps.refreshWriter || funcs == nil && f.deps.rowFuncs {
				return true
			}
			if len(f.deps.bases) > 0 && depth < 16 {
				seen = append(seen, t)
				if walk(f.deps.bases, false, depth+1) {
					return true
				}
			}
		}
		return false
	}
	return walk(info.Reads, false, 0) || walk(info.Writes, true, 0)
}

// readsHiddenWriter reports whether reading one of the relations tables
// (a trigger body's, or a SQLite statement's) runs a function that may
// write: a view whose query calls one (on SQLite, one the application
// registered as not deterministic; on PostgreSQL a VOLATILE one of the
// user's, or a row-security policy's), directly or through the views it
// reads. While no such function exists, nothing is looked up. A relation
// whose facts cannot be learned now counts.
func (p *Plugin) readsHiddenWriter(db *gorm.DB, tables []string, learn bool) bool {
	if len(tables) == 0 {
		return false
	}
	funcs := p.functionsLearning(db, learn)
	switch {
	case p.dialect == "sqlite" && funcs != nil && funcs.any&fnMayWrite == 0,
		p.dialect == "postgres" && funcs != nil && funcs.any&fnRelWriter == 0,
		p.dialect != "sqlite" && p.dialect != "postgres":
		return false
	}
	// The tables themselves first, allocating nothing: on SQLite the
	// driver's FTS3 and R*Tree functions are registered as not
	// deterministic, so this runs on every write; only a view's relations
	// (rare in a write) are walked further.
	views := false
	for _, t := range tables {
		if t == keys.CatalogTable {
			continue
		}
		f := p.depFactsOf(db, t, learn)
		if p.relRunsWriter(db, f, learn) {
			return true
		}
		views = views || f.relkind == 'v' && len(f.deps.bases) > 0
	}
	if !views {
		return false
	}
	seen := slices.Clone(tables)
	var walk func(tables []string, depth int) bool
	walk = func(tables []string, depth int) bool {
		for _, t := range tables {
			if t == keys.CatalogTable || slices.Contains(seen, t) {
				continue
			}
			seen = append(seen, t)
			f := p.depFactsOf(db, t, learn)
			if p.relRunsWriter(db, f, learn) ||
				f.relkind == 'v' && len(f.deps.bases) > 0 && depth < 16 && walk(f.deps.bases, depth+1) {
				return true
			}
		}
		return false
	}
	for _, t := range tables {
		if t == keys.CatalogTable {
			continue
		}
		f := p.depFactsOf(db, t, learn)
		if f == nil || f.relkind == 'v' && walk(f.deps.bases, 1) {
			return true // nil: forgotten since the first look, not known now
		}
	}
	return false
}

// relRunsWriter reports whether reading the relation of facts f (nil:
// not known now) may run a function that writes: its view's query or a
// policy calls one (readWriter), or, on SQLite, a view's query calls one
// the application registered as not deterministic.
func (p *Plugin) relRunsWriter(db *gorm.DB, f *tableFacts, learn bool) bool {
	return f == nil || f.deps.readWriter ||
		len(f.deps.viewCalls) > 0 && p.mayWrite(db, sqlinspect.Statement{Functions: f.deps.viewCalls}, learn)
}

// namesWriterDomain reports whether names (a PL/pgSQL trigger body's)
// name a domain whose DEFAULT or CHECK calls a function that may write: a
// variable declared of it runs them on every assignment
// (TestHostile22TriggerBodyHiddenCalls). Not known now: no.
func (p *Plugin) namesWriterDomain(db *gorm.DB, names []string, learn bool) bool {
	if len(names) == 0 {
		return false
	}
	funcs := p.functionsLearning(db, learn)
	if funcs == nil || len(funcs.writerDomains) == 0 {
		return false
	}
	for _, n := range names {
		if slices.Contains(funcs.writerDomains, n) {
			return true
		}
	}
	return false
}

// attributeCall reports whether sql names, after a dot, a function the
// list marks as a volatile one of a row (fnRowWriter): o.claim, o . claim,
// o."claim", (o).claim. Every qualified name is looked up (a column
// authors.name as well), strings and comments included: a name found
// there only costs an invalidation. Quoted names are looked up lower-cased,
// as the list keys them.
func attributeCall(sql string, funcs *fnList) bool {
	for i := 0; i < len(sql); i++ {
		if sql[i] != '.' {
			continue
		}
		j := i + 1
		for j < len(sql) && (sql[j] == ' ' || sql[j] == '\t' || sql[j] == '\n' || sql[j] == '\r') {
			j++
		}
		if j >= len(sql) {
			break
		}
		var name string
		switch c := sql[j]; {
		case c == '"':
			k := j + 1
			for k < len(sql) && (sql[k] != '"' || k+1 < len(sql) && sql[k+1] == '"') {
				if sql[k] == '"' {
					k++
				}
				k++
			}
			name = strings.ToLower(strings.ReplaceAll(sql[j+1:min(k, len(sql))], `""`, `"`))
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80:
			k := j
			for k < len(sql) && (sql[k] == '_' || sql[k] == '$' || 'a' <= sql[k] && sql[k] <= 'z' || 'A' <= sql[k] && sql[k] <= 'Z' ||
				'0' <= sql[k] && sql[k] <= '9' || sql[k] >= 0x80) {
				k++
			}
			name = strings.ToLower(sql[j:k])
		default:
			continue
		}
		if funcs.flags(name)&fnRowWriter != 0 {
			return true
		}
	}
	return false
}

// writeChange builds the change of a GORM-built write. What it invalidates
// is read from the SQL GORM built, never from a name the user gave
// (db.Table("users AS u") names the alias u): every table the statement
// writes, in bulk. Only a write to exactly one table, whose real primary
// key (from the catalog) is the model's, that cannot delete rows it does
// not name (SQLite's REPLACE conflict resolution), and whose rows can be
// proven (updatedRows when updated, an UPDATE or DELETE; createdRows
// otherwise) is narrowed to those rows.
//
// in is the inspection of the statement's SQL, looked up once per write
// and shared with withDependents and the SET list's memo. The facts it
// read of the written table, if it did, are returned for withDependents.
//
// Its verdict on a write of one row is remembered for the text
// (rowwrite.go): a check added here that depends on more than the text,
// the model and the catalog state goes into plannedRowWrite too.
func (p *Plugin) writeChange(db *gorm.DB, in *inspection, updated bool) (querycache.Change, knownFacts) {
	info := &in.st
	if info.Kind != sqlinspect.KindWrite {
		// GORM built something it does not write with (a dialect's odd
		// form?): whatever it is, invalidate everything.
		return querycache.Change{All: true}, knownFacts{}
	}
	if len(info.Functions) > 0 && p.mayWrite(db, *info, true) || p.writeCallsHiddenWriter(db, in) {
		// Update("no", gorm.Expr("next_invoice_no()")): what the function
		// writes is not in the text (TestHostile12GormBuiltStatementCallingWriter);
		// nor when it is called by attribute notation, authors.claim
		// (TestHostile14AttributeNotationWriterInGormBuiltStatement).
		return querycache.Change{All: true}, knownFacts{}
	}
	if p.w.suspended.Load() > 0 {
		// A transaction opened by SQL text is open (reads are suspended
		// until it ends, which applies its writes again): a write is in
		// bulk, as the signals promise for writes inside it, whether or
		// not the table's facts happen to be known already.
		return invalidation.FromInspected(*info), knownFacts{}
	}
	// The written tables, in bulk (invalidation.FromInspected), built only
	// when the write is not narrowed to rows: the common write by primary
	// key allocates no list of tables it does not use. For a KindWrite,
	// FromInspected invalidates everything when the written tables are
	// unknown, and lists info.Writes otherwise.
	if info.Undetermined && !info.WritesKnown || info.Cascade || len(info.Writes) != 1 || info.Replace {
		return invalidation.FromInspected(*info), knownFacts{}
	}
	// An upsert may update rows other than the ones passed in. Only an
	// INSERT can be one: an UPDATE's or DELETE's text is not looked up in
	// the clauses (a map lookup, cold, on every write).
	if !updated || !isUpdateOrDelete(db.Statement.SQL.String()) {
		if _, upsert := db.Statement.Clauses["ON CONFLICT"]; upsert {
			return invalidation.FromInspected(*info), knownFacts{}
		}
	}
	table := info.Writes[0]
	if db.Statement.Schema == nil {
		return invalidation.FromInspected(*info), knownFacts{}
	}
	// The text's write plan: the statement's table name known to be the
	// written table, and its facts, while the catalog has not changed.
	f, planned := p.plannedFacts(in, db.Statement.Table)
	if !planned {
		if sqlinspect.NormalizeTable(db.Statement.Table) != table {
			return invalidation.FromInspected(*info), knownFacts{}
		}
		f = p.writeFacts(db, in, db.Statement.Table, table)
	}
	known := knownFacts{table: table, f: f}
	if !f.keyable() {
		return invalidation.FromInspected(*info), known
	}
	// The keys of a write of a row or a few are listed on the stack (a
	// function value here made them escape): the change's rows are the
	// one allocation.
	var (
		pks []string
		ok  bool
	)
	if updated {
		// The commonest write, of one row by a key its text's plan
		// reads: the key's digits on the stack, then in the row's
		// allocation.
		var digits pkDigits
		if pk, ok := plannedKey(db.Statement, f, in, &digits); ok {
			if !p.setsNoKey(db, in, f) {
				return invalidation.FromInspected(*info), known
			}
			return querycache.Change{Rows: ownedRow(table, pk)}, known
		}
		var pkBuf [4]string
		pks, ok = p.updatedRows(db, in, f, pkBuf[:0])
	} else {
		pks, ok = createdRows(db, f)
	}
	if !ok {
		return invalidation.FromInspected(*info), known
	}
	rows := querycache.Change{Rows: make([]querycache.Row, len(pks))}
	for i, pk := range pks {
		rows.Rows[i] = querycache.Row{Table: table, PK: pk}
	}
	return rows, known
}

// knownFacts are the catalog's facts of one table, already read for the
// statement (writeChange reads those of the table a GORM write names):
// withDependents, which needs them too, does not look them up again. A
// nil f is no facts: they are then looked up as usual.
type knownFacts struct {
	table string
	f     *tableFacts
}

// createdRows returns the primary keys of the rows passed to Create, which
// GORM has filled in from the database, joined in the catalog's order.
func createdRows(db *gorm.DB, f *tableFacts) ([]string, bool) {
	stmt := db.Statement
	if stmt.Schema == nil || len(stmt.Schema.PrimaryFields) == 0 || db.Error != nil || !f.matchesFields(stmt.Schema.PrimaryFields) {
		return nil, false
	}
	for _, field := range stmt.Schema.PrimaryFields {
		if !keyFromDatabase(stmt, field.DBName) {
			return nil, false
		}
	}
	rv := reflect.Indirect(stmt.ReflectValue)
	var (
		one   [1]reflect.Value
		elems []reflect.Value
	)
	switch rv.Kind() {
	case reflect.Struct:
		one[0] = rv
		elems = one[:]
	case reflect.Slice, reflect.Array:
		for i := 0; i < rv.Len(); i++ {
			elems = append(elems, reflect.Indirect(rv.Index(i)))
		}
	default:
		return nil, false
	}
	pks := make([]string, 0, len(elems))
	var partsBuf [4]string
	for _, e := range elems {
		if e.Kind() != reflect.Struct || e.Type() != stmt.Schema.ModelType {
			return nil, false
		}
		var parts []string // each key column's value, in the catalog's order
		if len(f.pk) <= len(partsBuf) {
			parts = partsBuf[:len(f.pk)]
			clear(parts)
		} else {
			parts = make([]string, len(f.pk))
		}
		for _, field := range stmt.Schema.PrimaryFields {
			i := f.column(field.DBName)
			if i < 0 {
				return nil, false
			}
			v, zero := field.ValueOf(stmt.Context, e)
			if zero {
				return nil, false
			}
			s, ok := canonicalPK(stmt, v, f.kinds[i], nil)
			if !ok {
				return nil, false
			}
			parts[i] = s
		}
		pks = append(pks, keys.JoinPK(parts))
	}
	if repeats(pks) {
		// One INSERT cannot store two rows under one key: the structs do
		// not show the rows written. Create([]*T{p, p}) inserts two rows
		// and RETURNING writes both keys into the one struct, which keeps
		// the last (TestHostile14BatchCreateSharedPointer).
		return nil, false
	}
	return pks, len(pks) > 0
}

// repeats reports whether any string occurs twice in ss.
func repeats(ss []string) bool {
	if len(ss) < 2 {
		return false
	}
	if len(ss) <= 8 {
		for i := 1; i < len(ss); i++ {
			if slices.Contains(ss[:i], ss[i]) {
				return true
			}
		}
		return false
	}
	seen := make(map[string]struct{}, len(ss))
	for _, s := range ss {
		if _, ok := seen[s]; ok {
			return true
		}
		seen[s] = struct{}{}
	}
	return false
}

// keyFromDatabase reports whether the struct's value of the key column col
// is the row's key after an INSERT: the statement wrote that value (the
// column is among its VALUES' columns) or read the row's value back
// (RETURNING it, as GORM does for a key the database generates). An INSERT
// that leaves the column out (Omit, Select without it, a field GORM may
// not write) stores the column's default, while the struct keeps the value
// it held: narrowed to that value, a cached "not found" of the row's real
// key stayed (TestHostile12CreateOmittingKeyColumn).
func keyFromDatabase(stmt *gorm.Statement, col string) bool {
	if c, ok := stmt.Clauses["VALUES"]; ok {
		if v, ok := c.Expression.(clause.Values); ok {
			for _, vc := range v.Columns {
				if !vc.Raw && vc.Name == col {
					return true
				}
			}
		}
	}
	if c, ok := stmt.Clauses["RETURNING"]; ok {
		if r, ok := c.Expression.(clause.Returning); ok {
			if len(r.Columns) == 0 {
				return true // RETURNING *
			}
			for _, rc := range r.Columns {
				if !rc.Raw && rc.Name == col {
					return true
				}
			}
		}
	}
	return false
}

// updatedRows returns the keys an UPDATE or DELETE is confined to. An
// update that assigns a primary-key column moves the row to a key that
// cannot be known here, so it counts as bulk; the assigned columns are
// read from the SET list with the tokenizer, so a subquery or a string in
// an earlier assignment cannot hide one. The keys are appended to dst.
func (p *Plugin) updatedRows(db *gorm.DB, in *inspection, f *tableFacts, dst []string) ([]string, bool) {
	pks, ok := rowsAppend(db.Statement, f, dst, in)
	if !ok || !p.setsNoKey(db, in, f) {
		return nil, false
	}
	return pks, true
}

// setsNoKey reports whether the UPDATE or DELETE GORM built (whose text's
// inspection is in) cannot move a row to another key: a DELETE, or an
// UPDATE whose SET list is known and assigns no key column of f's table.
func (p *Plugin) setsNoKey(db *gorm.DB, in *inspection, f *tableFacts) bool {
	sql := db.Statement.SQL.String()
	return isDelete(sql) || p.keyFree(in, sql, f)
}

// keyFree reports whether the SET list of sql (whose inspection is in)
// is known and assigns no primary-key column of the table of facts f.
// The answer is remembered with the inspection for these facts: it
// compared every assigned column with every key column on every write.
func (p *Plugin) keyFree(in *inspection, sql string, f *tableFacts) bool {
	if v := in.keyFree.Load(); v != nil && v.f == f {
		return v.ok
	}
	ok := p.assignsNoKey(in, sql, f)
	in.keyFree.Store(&keyFreeVerdict{f: f, ok: ok})
	return ok
}

// assignsNoKey is keyFree without the memo.
func (p *Plugin) assignsNoKey(in *inspection, sql string, f *tableFacts) bool {
	cols, ok := p.assignedIn(in, sql)
	if !ok {
		return false
	}
	for _, c := range cols {
		if f.column(c) >= 0 || p.dialect == "sqlite" && isRowidAlias(c) {
			return false
		}
	}
	return true
}

// isDelete reports whether GORM built a DELETE (which assigns nothing).
// Anything else, a soft delete's UPDATE included, has its SET list read.
func isDelete(sql string) bool {
	return len(sql) >= 7 && sql[:7] == "DELETE " || hasPrefixFold(sql, "DELETE ")
}

// isUpdateOrDelete reports whether sql is an UPDATE or a DELETE (which
// no ON CONFLICT clause turns into an upsert). GORM's own spelling is
// compared first, in one comparison.
func isUpdateOrDelete(sql string) bool {
	if len(sql) >= 7 && (sql[:7] == "UPDATE " || sql[:7] == "DELETE ") {
		return true
	}
	return hasPrefixFold(sql, "UPDATE ") || isDelete(sql)
}

// hasPrefixFold is strings.HasPrefix with ASCII letters' case ignored, for
// an upper-case ASCII prefix (strings.EqualFold handles Unicode: slower,
// and on every write).
func hasPrefixFold(s, upper string) bool {
	if len(s) < len(upper) {
		return false
	}
	for i := 0; i < len(upper); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// isRowidAlias reports whether a SQLite column name may be the rowid, which
// an INTEGER PRIMARY KEY column is: assigning it moves the row.
func isRowidAlias(col string) bool {
	switch strings.ToLower(col) {
	case "rowid", "_rowid_", "oid":
		return true
	}
	return false
}
