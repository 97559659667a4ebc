package gormcache

import (
	"slices"
	"strings"

	"querycache.dev/keys"
	"querycache.dev/sqlinspect"
)

// A trigger is learned as what its body writes: the tables named after
// INSERT INTO, UPDATE, DELETE FROM, MERGE INTO and TRUNCATE, and the
// functions it calls (checked like a raw statement's calls when the
// trigger fires: a user's function may write anything). Whatever cannot be
// read with confidence makes the trigger write everything (all): dynamic
// SQL (EXECUTE, whose text is built at run time), CALL, DDL, COPY, a
// language other than PL/pgSQL (its source is not SQL), text the lexer
// cannot close. Over-invalidating costs misses; missing one table would
// serve stale rows until the TTL, so every doubt goes to "everything".

// trigger is one trigger on a table, as far as invalidation cares.
type trigger struct {
	events opSet             // the operations that fire it
	writes []string          // tables its body writes
	ops    opSet             // what the body does to them
	calls  []sqlinspect.Func // functions its body calls
	reads  []string          // relations its body and WHEN read (a view may call a writer)
	names  []string          // PostgreSQL: the names a PL/pgSQL body holds, lower-cased (a domain's, say)
	all    bool              // the body is not understood: everything
	// PostgreSQL: a BEFORE ROW trigger on INSERT or UPDATE may change the
	// row being written, its key included, before it is stored: the
	// columns of NEW its body assigns (lower-cased), or newWhole when it
	// may replace NEW whole (newAssigns). A write naming one key may then
	// store another (TestHostile10TriggerRewritesKeyPostgres).
	before   bool
	newCols  []string
	newWhole bool
	// session: PostgreSQL, its body may change the session state of the
	// connection whose write fires it (SET search_path, set_config(...,
	// false)), as a DO block's may (bodyChangesSession): that connection
	// then reads other rows for the same SQL
	// (TestHostile32TriggerChangesSession).
	session bool
}

// movesKey reports whether the trigger, fired by o, may change a key
// column of pk in the row being written.
func (tr *trigger) movesKey(o opSet, pk []string) bool {
	if !tr.before || tr.events&o&(opInsert|opUpdate) == 0 {
		return false
	}
	if tr.newWhole {
		return true
	}
	for _, c := range tr.newCols {
		for _, k := range pk {
			if strings.EqualFold(c, k) {
				return true
			}
		}
	}
	return false
}

// newAssigns reads what a PL/pgSQL trigger body may do to NEW, the row
// being written: the columns it assigns (NEW.col := or =, NEW.col[i] :=,
// NEW.col.f :=; a comparison NEW.col = x reads as one too, which only
// over-invalidates), or whole when it may replace the record: NEW := or
// NEW = ..., SELECT ... INTO NEW, an ALIAS FOR NEW, or a RETURN of
// anything but NEW, OLD or NULL (the row returned is the row stored).
// Text the lexer cannot read is whole.
func newAssigns(src string) (cols []string, whole bool) {
	toks, ok := lexSQL(src)
	if !ok {
		return nil, true
	}
	isNew := func(t lexTok) bool { return t.word == "NEW" || t.name == `"new"` }
	for i, t := range toks {
		if t.word == "RETURN" {
			j := i + 1
			for j < len(toks) && toks[j].punct != ';' {
				j++
			}
			if j != i+2 || !(isNew(toks[i+1]) || toks[i+1].word == "OLD" || toks[i+1].word == "NULL") {
				return nil, true
			}
			continue
		}
		if !isNew(t) || i > 0 && toks[i-1].punct == '.' {
			continue // not NEW, or a field called new of another record
		}
		j := i - 1
		if j >= 0 && toks[j].word == "STRICT" {
			j--
		}
		if j >= 0 && (toks[j].word == "INTO" || toks[j].word == "FOR" && j > 0 && toks[j-1].word == "ALIAS") {
			return nil, true
		}
		k := i + 1
		if k+1 < len(toks) && toks[k].punct == '.' {
			// After the column: an assignment, a field, or a subscript
			// (which the lexer reads as a SQLite [name]).
			if m := k + 2; m < len(toks) && (toks[m].punct == ':' || toks[m].punct == '=' || toks[m].punct == '.' || src[toks[m].start] == '[') {
				c := toks[k+1]
				switch {
				case c.word != "":
					cols = append(cols, strings.ToLower(c.name))
				case len(c.name) >= 2 && c.name[0] == '"':
					cols = append(cols, strings.ReplaceAll(c.name[1:len(c.name)-1], `""`, `"`))
				default:
					return nil, true // NEW.* or what the lexer did not name
				}
			}
			continue
		}
		if k < len(toks) && (toks[k].punct == ':' || toks[k].punct == '=') {
			return nil, true
		}
	}
	return cols, false
}

// lexTok is one token of a trigger's text.
type lexTok struct {
	word       string // upper-cased bare word, or "" for anything else
	name       string // identifier as written (bare or quoted), "" for others
	punct      byte
	start, end int
}

// lexSQL splits s into tokens, skipping comments and string literals
// (standard, E” and dollar-quoted). ok is false when a quote or comment
// is not closed.
func lexSQL(s string) (toks []lexTok, ok bool) {
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			for i < len(s) && s[i] != '\n' && s[i] != '\r' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			// PostgreSQL nests block comments; SQLite does not. Reading
			// them nested can only end a comment later, hiding text that
			// SQLite would read, so an unclosed nesting counts as not
			// understood.
			depth := 0
			for {
				if i+1 >= len(s) {
					return nil, false
				}
				if s[i] == '/' && s[i+1] == '*' {
					depth++
					i += 2
				} else if s[i] == '*' && s[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		case c == '\'':
			j, closed := skipQuoted(s, i, '\'', false)
			if !closed {
				return nil, false
			}
			i = j
		case (c == 'e' || c == 'E') && i+1 < len(s) && s[i+1] == '\'':
			j, closed := skipQuoted(s, i+1, '\'', true)
			if !closed {
				return nil, false
			}
			i = j
		case c == '"' || c == '`':
			j, closed := skipQuoted(s, i, c, false)
			if !closed {
				return nil, false
			}
			toks = append(toks, lexTok{name: s[i:j], start: i, end: j})
			i = j
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, false
			}
			toks = append(toks, lexTok{name: `"` + strings.ReplaceAll(s[i+1:i+j], `"`, `""`) + `"`, start: i, end: i + j + 1})
			i += j + 1
		case c == '$':
			// $tag$ ... $tag$, or $1 (a parameter).
			j := i + 1
			for j < len(s) && (isWordByte(s[j]) && !(j == i+1 && s[j] >= '0' && s[j] <= '9')) {
				j++
			}
			if j < len(s) && s[j] == '$' {
				tag := s[i : j+1]
				k := strings.Index(s[j+1:], tag)
				if k < 0 {
					return nil, false
				}
				i = j + 1 + k + len(tag)
				continue
			}
			toks = append(toks, lexTok{punct: '$', start: i, end: i + 1})
			i++
		case isWordByte(c) || c >= 0x80:
			j := i
			for j < len(s) && (isWordByte(s[j]) || s[j] == '$' || s[j] >= 0x80) {
				j++
			}
			w := s[i:j]
			toks = append(toks, lexTok{word: strings.ToUpper(w), name: w, start: i, end: j})
			i = j
		default:
			toks = append(toks, lexTok{punct: c, start: i, end: i + 1})
			i++
		}
	}
	return toks, true
}

func isWordByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// skipQuoted returns the index after the literal or identifier opened by q
// at s[i]; a doubled quote stays inside, and with backslash so does an
// escaped character (E” strings).
func skipQuoted(s string, i int, q byte, backslash bool) (int, bool) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1, true
		}
	}
	return len(s), false
}

// tableAt reads a possibly qualified table name at toks[i], skipping ONLY
// and a trailing '*'; it returns the normalised name and the index after
// it, or "" when there is none.
func tableAt(toks []lexTok, i int) (string, int) {
	if i < len(toks) && toks[i].word == "ONLY" {
		i++
	}
	if i >= len(toks) || toks[i].name == "" {
		return "", i
	}
	name := toks[i].name
	i++
	for i+1 < len(toks) && toks[i].punct == '.' && toks[i+1].name != "" {
		name += "." + toks[i+1].name
		i += 2
	}
	if i < len(toks) && toks[i].punct == '*' {
		i++
	}
	t := sqlinspect.NormalizeTable(name)
	return t, i
}

// scanPLpgSQL reads a PL/pgSQL function body for the tables it writes.
// Every write in SQL starts with one of a few heads, wherever the
// statement sits (inside IF, a loop, a CTE), so the body is scanned token
// by token rather than parsed statement by statement.
func scanPLpgSQL(src string) trigger {
	toks, ok := lexSQL(src)
	if !ok {
		return trigger{all: true}
	}
	var tr trigger
	add := func(t string, op opSet) {
		if t == "" || t == keys.CatalogTable {
			tr.all = true
			return
		}
		tr.ops |= op
		for _, w := range tr.writes {
			if w == t {
				return
			}
		}
		tr.writes = append(tr.writes, t)
	}
	prev := func(i int) string {
		if i > 0 {
			return toks[i-1].word
		}
		return ""
	}
	// mergeAction: toks[i] follows THEN inside a MERGE statement (WHEN
	// MATCHED THEN UPDATE), whose target is named after MERGE INTO. THEN
	// elsewhere (IF ... THEN UPDATE, CASE WHEN ... THEN, EXCEPTION WHEN
	// ... THEN) begins a statement of its own: a MERGE ends at its ';'.
	inMerge := false
	mergeAction := func(i int) bool { return inMerge && prev(i) == "THEN" }
	for i := 0; i < len(toks) && !tr.all; i++ {
		if toks[i].punct == ';' {
			inMerge = false
		}
		switch toks[i].word {
		case "EXECUTE", "CALL", "COPY", "CREATE", "ALTER", "DROP", "GRANT", "REVOKE",
			"COMMENT", "SECURITY", "IMPORT", "REINDEX", "CLUSTER", "VACUUM", "REFRESH", "DISCARD", "DO":
			if toks[i].word == "DO" && i+1 < len(toks) && (toks[i+1].word == "UPDATE" || toks[i+1].word == "NOTHING") {
				continue // ON CONFLICT DO UPDATE / DO NOTHING
			}
			tr.all = true
		case "INSERT":
			if mergeAction(i) {
				continue // MERGE ... WHEN NOT MATCHED THEN INSERT: the target is named
			}
			if i+1 >= len(toks) || toks[i+1].word != "INTO" {
				tr.all = true
				continue
			}
			t, _ := tableAt(toks, i+2)
			add(t, opInsert|opUpdate)
		case "UPDATE":
			switch prev(i) {
			case "FOR", "KEY", "DO", "OF":
				continue // a locking clause, ON CONFLICT DO UPDATE
			}
			if mergeAction(i) {
				continue // MERGE's action
			}
			t, _ := tableAt(toks, i+1)
			add(t, opUpdate)
		case "DELETE":
			if mergeAction(i) {
				continue // MERGE ... WHEN MATCHED THEN DELETE
			}
			if i+1 >= len(toks) || toks[i+1].word != "FROM" {
				tr.all = true
				continue
			}
			t, _ := tableAt(toks, i+2)
			add(t, opDelete)
		case "MERGE":
			if i+1 >= len(toks) || toks[i+1].word != "INTO" {
				tr.all = true
				continue
			}
			t, _ := tableAt(toks, i+2)
			add(t, opInsert|opUpdate|opDelete)
			inMerge = true
		case "TRUNCATE":
			j := i + 1
			if j < len(toks) && toks[j].word == "TABLE" {
				j++
			}
			for {
				t, next := tableAt(toks, j)
				add(t, opTruncate)
				if tr.all || next >= len(toks) || toks[next].punct != ',' {
					j = next
					break
				}
				j = next + 1
			}
			for ; j < len(toks) && toks[j].punct != ';'; j++ {
				if toks[j].word == "CASCADE" {
					tr.all = true
				}
			}
		}
	}
	if tr.all {
		return trigger{all: true}
	}
	st := bodyInspect(src, toks)
	tr.calls, tr.reads = st.Functions, st.Reads
	for _, t := range toks {
		if t.name != "" {
			if n := lookupName(t); !slices.Contains(tr.names, n) {
				tr.names = append(tr.names, n)
			}
		}
	}
	return tr
}

// bodyInspect is what sqlinspect reads of a PL/pgSQL body: the functions
// it calls and the relations it reads, read
// with the block's BEGIN and END blanked out: sqlinspect reads them as
// transaction control and skips the rest of that statement, which would
// hide a call right after BEGIN.
func bodyInspect(src string, toks []lexTok) sqlinspect.Statement {
	b := []byte(src)
	for _, t := range toks {
		switch t.word {
		case "BEGIN", "END", "COMMIT", "ROLLBACK", "START", "SAVEPOINT", "RELEASE", "ABORT":
			for k := t.start; k < t.end; k++ {
				b[k] = ' '
			}
		}
	}
	return sqlinspect.InspectDialect(string(b), sqlinspect.DialectPostgres)
}

// parseSQLiteTrigger reads a CREATE TRIGGER statement from sqlite_master:
// the events that fire it and what its body (between BEGIN and the last
// END) writes, read by sqlinspect as SQLite statements.
func parseSQLiteTrigger(ddl string) trigger {
	toks, ok := lexSQL(ddl)
	if !ok {
		return trigger{events: opInsert | opUpdate | opDelete, all: true}
	}
	tr := trigger{}
	on, begin := -1, -1
	for i, t := range toks {
		if on < 0 {
			switch t.word {
			case "INSERT":
				tr.events |= opInsert
			case "UPDATE":
				tr.events |= opUpdate
			case "DELETE":
				tr.events |= opDelete
			case "ON":
				on = i
			}
			continue
		}
		if t.word == "BEGIN" {
			begin = i
			break
		}
	}
	end := -1
	for i := len(toks) - 1; i > begin; i-- {
		if toks[i].word == "END" {
			end = i
			break
		}
	}
	if on < 0 || begin < 0 || end < 0 || tr.events == 0 {
		return trigger{events: opInsert | opUpdate | opDelete, all: true}
	}
	for i := on + 1; i < begin; i++ {
		if toks[i].word == "WHEN" {
			tr.addWhen(sqlinspect.InspectDialect("SELECT "+ddl[toks[i].end:toks[begin].start], sqlinspect.DialectSQLite), true)
			break
		}
	}
	body := ddl[toks[begin].end:toks[end].start]
	st := sqlinspect.InspectDialect(body, sqlinspect.DialectSQLite)
	if st.Undetermined || st.Kind == sqlinspect.KindUnknown || st.Kind == sqlinspect.KindDDL ||
		len(st.TxOps) > 0 || st.Catalog {
		tr.all = true
		return tr
	}
	tr.writes = st.Writes
	tr.ops = opInsert | opUpdate | opDelete
	tr.calls = append(tr.calls, st.Functions...)
	tr.reads = append(tr.reads, st.Reads...)
	return tr
}

// addWhen adds the calls of a trigger's WHEN condition, inspected as
// SELECT <condition> (ok false: the condition could not be found in the
// trigger's definition), to what the trigger calls: the condition runs
// for every row, before the trigger's function, whether or not it then
// runs. What cannot be read counts as anything.
func (tr *trigger) addWhen(st sqlinspect.Statement, ok bool) {
	if !ok || st.Undetermined || st.Kind != sqlinspect.KindSelect || len(st.Writes) > 0 || st.SessionState {
		tr.all = true
		return
	}
	tr.calls = append(tr.calls, st.Functions...)
	tr.reads = append(tr.reads, st.Reads...)
}

// postgresWhen inspects the WHEN condition of pg_get_triggerdef's text
// def: between " WHEN (" after FOR EACH and the last " EXECUTE FUNCTION "
// or " EXECUTE PROCEDURE " (a trigger's arguments are string constants;
// one holding those words makes the condition unreadable, which counts as
// anything).
func postgresWhen(def string) (sqlinspect.Statement, bool) {
	each := strings.Index(def, " FOR EACH ")
	if each < 0 {
		return sqlinspect.Statement{}, false
	}
	w := strings.Index(def[each:], " WHEN (")
	if w < 0 {
		return sqlinspect.Statement{}, false
	}
	start := each + w + len(" WHEN ")
	end := max(strings.LastIndex(def, " EXECUTE FUNCTION "), strings.LastIndex(def, " EXECUTE PROCEDURE "))
	if end < start {
		return sqlinspect.Statement{}, false
	}
	return sqlinspect.InspectDialect("SELECT "+def[start:end], sqlinspect.DialectPostgres), true
}

// postgresTriggerEvents maps pg_trigger.tgtype's event bits (INSERT 4,
// DELETE 8, UPDATE 16, TRUNCATE 32) to operations.
func postgresTriggerEvents(tgtype int) opSet {
	var e opSet
	if tgtype&4 != 0 {
		e |= opInsert
	}
	if tgtype&8 != 0 {
		e |= opDelete
	}
	if tgtype&16 != 0 {
		e |= opUpdate
	}
	if tgtype&32 != 0 {
		e |= opTruncate
	}
	return e
}

// harmlessInternalTriggers are PostgreSQL's built-in trigger functions
// that change only the row being written.
var harmlessInternalTriggers = map[string]bool{
	"tsvector_update_trigger":            true,
	"tsvector_update_trigger_column":     true,
	"suppress_redundant_updates_trigger": true,
}

// postgresTrigger is what one pg_trigger row writes.
func postgresTrigger(tgtype int, lang, src string) trigger {
	events := postgresTriggerEvents(tgtype)
	// tgtype's ROW (1) and BEFORE (2) bits: it runs on each row before
	// it is stored, and may change it.
	before := tgtype&1 != 0 && tgtype&2 != 0 && events&(opInsert|opUpdate) != 0
	switch {
	case lang == "plpgsql":
		tr := scanPLpgSQL(src)
		tr.events = events
		tr.session = bodyChangesSession(src)
		if before && !tr.all {
			tr.before = true
			tr.newCols, tr.newWhole = newAssigns(src)
		}
		return tr
	case lang == "internal" && harmlessInternalTriggers[src]:
		return trigger{events: events}
	case lang == "c" || lang == "internal":
		return trigger{events: events, all: true}
	}
	// Another language's body is not read: one that mentions set or
	// set_config counts as changing the session, as fnSessionSetter's.
	return trigger{events: events, all: true, session: mentionsSet(src)}
}

// mentionsSet reports whether src has the word set or reset, or
// set_config, in any case: what the function list's filter looks for in
// a body it does not read (postgresUserFunctionsQuery).
func mentionsSet(src string) bool {
	l := strings.ToLower(src)
	if strings.Contains(l, "set_config") {
		return true
	}
	for _, w := range []string{"set", "reset"} {
		for i := 0; ; {
			j := strings.Index(l[i:], w)
			if j < 0 {
				break
			}
			j += i
			end := j + len(w)
			if (j == 0 || !identChar(l[j-1])) && (end == len(l) || !identChar(l[end])) {
				return true
			}
			i = j + 1
		}
	}
	return false
}
