package gormcache

import (
	"hash/maphash"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
	"querycache.dev/keys"
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// rowsOf returns the canonical primary keys of the rows a statement's WHERE
// clause confines it to, or ok=false when that cannot be proven. It is the
// one place both reads (is this a lookup by primary key?) and writes (which
// objects changed?) decide this, so they always agree.
//
// Proof means: the table's real primary key (f, from the database's
// catalog) is the model's and has an equality keys.PK can follow; the
// top-level WHERE is a conjunction (no OR anywhere at the top); one conjunct
// pins every primary-key column to known values; and every other conjunct is
// a structured GORM clause or a plain "column op ?" expression, nothing whose
// SQL text could reopen the conjunction (an OR, a comment) and widen the
// rows. Composite keys are joined in the catalog's column order, so two
// models listing the columns in another order still agree.
func rowsOf(stmt *gorm.Statement, f *tableFacts) (pks []string, ok bool) {
	return rowsAppend(stmt, f, nil, nil)
}

// rowsAppend is rowsOf appending the keys to dst: a write hands it a
// buffer of its own, so that a write of one row allocates no list of keys.
// Each conjunct is looked at once: whether it is safe (structured) and
// whether it pins a key column (pkCondition) are answered together, and a
// raw condition's text is parsed once per text (exprConds). in is the
// inspection of the statement's text, if in hand: the reading of its
// first raw condition is remembered there (condMemo).
func rowsAppend(stmt *gorm.Statement, f *tableFacts, dst []string, in *inspection) ([]string, bool) {
	if v, ok := plannedKey(stmt, f, in, nil); ok {
		return append(dst, v), true
	}
	var kp *keyPlan
	if in != nil {
		kp = in.keys.Load()
	}
	s := stmt.Schema
	if s == nil || len(s.PrimaryFields) == 0 || !f.keyable() || !f.matchesFields(s.PrimaryFields) {
		return nil, false
	}
	c, found := stmt.Clauses["WHERE"]
	if !found {
		return nil, false
	}
	where, isWhere := c.Expression.(clause.Where)
	if !isWhere {
		return nil, false
	}
	if in != nil && len(f.pk) == 1 && len(where.Exprs) == 1 {
		// The commonest write, Where("id = ?", id): if it proves its key,
		// the way is remembered (keyPlan).
		if x, raw := where.Exprs[0].(clause.Expr); raw && len(x.Vars) == 1 {
			if ec, field := exprField(in, stmt, x.SQL); ec.simple && ec.eq && field != nil && f.column(field.DBName) == 0 {
				v, ok := canonicalPK(stmt, x.Vars[0], f.kinds[0], nil)
				if ok && (kp == nil || kp.schema == s && kp.stmtTable == stmt.Table) {
					// (A plan of the same statement whose facts were
					// learned again, as they are every catalogMaxAge, is
					// replaced: kept, it never served again.)
					in.keys.Store(&keyPlan{schema: s, stmtTable: stmt.Table, f: f, cond: x.SQL, kind: f.kinds[0]})
				}
				if ok {
					return append(dst, v), true
				}
				return nil, false
			}
		}
	}
	var buf [8]clause.Expression
	conj, safe := conjuncts(where.Exprs, buf[:0])
	if !safe {
		return nil, false
	}
	var condBuf [4]pkCond
	conds := condBuf[:0]
	for _, e := range conj {
		pc, isPK, safe := conjunct(stmt, e, in)
		if !safe {
			return nil, false
		}
		if isPK {
			conds = append(conds, pc)
		}
	}
	if len(conds) == 0 {
		return nil, false
	}
	composite := len(f.pk) > 1
	var partsBuf [4]string
	var parts []string // composite: the value of each key column
	if composite {
		if len(f.pk) <= len(partsBuf) {
			parts = partsBuf[:len(f.pk)]
		} else {
			parts = make([]string, len(f.pk))
		}
	}
	n := len(dst)
	for ci := range conds {
		pc := &conds[ci]
		i := f.column(pc.col)
		if i < 0 {
			return nil, false
		}
		// Every value of every key condition must have a canonical form;
		// the keys are the first condition's values (one column), or each
		// column's single value (composite).
		keep := !composite && ci == 0
		for j := 0; j < pc.len(); j++ {
			v, ok := canonicalPK(stmt, pc.at(j), f.kinds[i], nil)
			if !ok {
				return nil, false
			}
			if keep {
				dst = append(dst, v)
			} else if composite && pc.len() == 1 && parts[i] == "" {
				parts[i] = v
			}
		}
	}
	if composite {
		for _, v := range parts {
			if v == "" {
				return nil, false
			}
		}
		return append(dst, keys.JoinPK(parts)), true
	}
	return dst, len(dst) > n
}

// keyPlan is how rowsAppend proved the key of a statement of a text
// whose WHERE is one raw condition naming the primary key of a table of
// one key column, "id = ?": for the schema, the statement's table name and
// the table's facts it was proven with, the condition's text and the key
// column's kind. A statement of the text with the same three, whose WHERE
// is that one condition with one bound value, has that value's canonical
// form as its key: what rowsAppend finds otherwise by reading the
// conjunction, the condition (its memo, condMemo) and the facts again on
// every write of a row (about a tenth of the plugin's share of an update).
// Anything else (another schema or facts, a WHERE of two conditions)
// takes the long way, which replaces the plan only for the same schema
// and table name (new facts): statements of two schemas sharing a text
// do not thrash it.
type keyPlan struct {
	schema    *schema.Schema
	stmtTable string
	f         *tableFacts
	cond      string
	kind      pkKind
}

// key returns the key of stmt by the plan, or false when the plan does not
// apply to it (or its value has no canonical form: the long way says).
func (kp *keyPlan) key(stmt *gorm.Statement, digits *pkDigits) (string, bool) {
	c, found := stmt.Clauses["WHERE"]
	if !found {
		return "", false
	}
	where, isWhere := c.Expression.(clause.Where)
	if !isWhere || len(where.Exprs) != 1 {
		return "", false
	}
	x, raw := where.Exprs[0].(clause.Expr)
	if !raw || len(x.Vars) != 1 || x.SQL != kp.cond {
		return "", false
	}
	return canonicalPK(stmt, x.Vars[0], kp.kind, digits)
}

// canonicalPK is keys.PK under the equality of a column of kind k, of v,
// a value of stmt's clauses (or a created row's field): a driver.Valuer
// the driver sends as its Value is taken as the statement pinned it in its
// Vars (boundFor, pin.go), and names no row without its pin.
//
// A Go integer under an integer key is written in canonical decimal, as
// keys.PK writes it, into digits when given (the key returned aliases it:
// strconv's string was one of a write's two allocations).
func canonicalPK(stmt *gorm.Statement, v any, k pkKind, digits *pkDigits) (string, bool) {
	if k == pkInt {
		// The round trip below is for strings and Valuers.
		switch x := v.(type) {
		case int:
			return digits.signed(int64(x)), true
		case int64:
			return digits.signed(x), true
		case int32:
			return digits.signed(int64(x)), true
		case uint32:
			return digits.unsigned(uint64(x)), true
		case uint:
			if uint64(x) <= math.MaxInt64 {
				return digits.unsigned(uint64(x)), true
			}
		case uint64:
			if x <= math.MaxInt64 {
				return digits.unsigned(x), true
			}
		}
	}
	if !boundValue(v) { // a gorm.Valuer's expression, a column: not the value compared
		return "", false
	}
	v, bound := boundFor(stmt, v)
	if !bound {
		return "", false
	}
	s, ok := keys.PK(v)
	if !ok {
		return "", false
	}
	switch k {
	case pkExact, pkUUID:
		return s, true
	case pkName:
		if len(s) <= 63 {
			return s, true
		}
	case pkInt:
		// PostgreSQL reads '0x10' and '1_000' as integers too: only the
		// canonical decimal spelling names one row for certain.
		if i, err := strconv.ParseInt(s, 10, 64); err == nil && strconv.FormatInt(i, 10) == s {
			return s, true
		}
	}
	return "", false
}

// plannedKey is rowsAppend's answer for the statement of one row by
// primary key whose way the text's inspection in remembers (keyPlan), as
// a string: digits, if not nil, is where an integer key is written, and
// the key returned then aliases it (the caller copies it before digits
// goes: ownedRow). ok is false when the plan does not answer; rowsAppend
// then reads the clauses.
func plannedKey(stmt *gorm.Statement, f *tableFacts, in *inspection, digits *pkDigits) (string, bool) {
	if in == nil {
		return "", false
	}
	if kp := in.keys.Load(); kp != nil && kp.schema == stmt.Schema && kp.f == f && kp.stmtTable == stmt.Table {
		return kp.key(stmt, digits)
	}
	return "", false
}

// pkDigits is room for an integer key in decimal, written at its end
// (math.MinInt64 takes all 20 bytes).
type pkDigits [20]byte

// signed returns i in canonical decimal (strconv.FormatInt's), written
// into d, or allocated when d is nil.
func (d *pkDigits) signed(i int64) string {
	if i >= 0 {
		return d.unsigned(uint64(i))
	}
	if d == nil {
		return strconv.FormatInt(i, 10)
	}
	n := d.decimal(uint64(-i)) - 1 // math.MinInt64 too: -i is itself, 1<<63 as a uint64
	d[n] = '-'
	return unsafe.String(&d[n], len(d)-n)
}

// unsigned is signed of a uint64.
func (d *pkDigits) unsigned(u uint64) string {
	if d == nil {
		return strconv.FormatUint(u, 10)
	}
	n := d.decimal(u)
	return unsafe.String(&d[n], len(d)-n)
}

// decimal writes u's digits at the end of d and returns where they begin
// (strconv's loop by hundreds cost three times these few divisions by a
// constant, for the keys writes name).
func (d *pkDigits) decimal(u uint64) int {
	n := len(d)
	for u >= 10 {
		n--
		d[n] = byte('0' + u%10)
		u /= 10
	}
	n--
	d[n] = byte('0' + u)
	return n
}

// ownedRow returns the row of table whose key is pk, which may alias the
// caller's digits (plannedKey), in one allocation with the key's bytes:
// strconv's string and the change's list were a write's two.
func ownedRow(table, pk string) []querycache.Row {
	r := new(oneRow)
	if len(pk) > len(r.key) {
		// Not an integer (those fit): a string already, copied all the
		// same, so that pk is never kept (digits would escape).
		r.row[0] = querycache.Row{Table: table, PK: strings.Clone(pk)}
	} else {
		n := copy(r.key[:], pk)
		r.row[0] = querycache.Row{Table: table, PK: unsafe.String(&r.key[0], n)}
	}
	return r.row[:]
}

// oneRow is ownedRow's allocation: room for an integer's digits (a UUID's
// text is copied on its own), in 64 bytes.
type oneRow struct {
	row [1]querycache.Row
	key [32]byte
}

// conjuncts appends the conjuncts of exprs to out, and reports false when
// the list is not a plain conjunction (an OR anywhere at its top).
func conjuncts(exprs []clause.Expression, out []clause.Expression) ([]clause.Expression, bool) {
	for _, e := range exprs {
		switch v := e.(type) {
		case clause.AndConditions:
			var ok bool
			if out, ok = conjuncts(v.Exprs, out); !ok {
				return nil, false
			}
		case clause.OrConditions:
			return nil, false
		default:
			out = append(out, e)
		}
	}
	return out, true
}

// conjunct answers, for one conjunct of a WHERE, whether it is safe (one
// whose SQL text cannot reopen the conjunction and widen the rows: a
// structured GORM clause with bound values, a plain "column op ?" text, or
// NOT of those) and whether it pins a primary-key column, with the column
// and the values it allows.
func conjunct(stmt *gorm.Statement, e clause.Expression, in *inspection) (pc pkCond, isPK, safe bool) {
	var field *schema.Field
	switch v := e.(type) {
	case clause.NotConditions:
		// NOT (a AND b): structured, cannot widen the others.
		for _, inner := range v.Exprs {
			if !structured(inner) {
				return pkCond{}, false, false
			}
		}
		return pkCond{}, false, true
	case clause.Eq:
		if !boundValue(v.Value) || !plainColumn(v.Column) {
			return pkCond{}, false, false
		}
		field, pc = pkField(stmt, v.Column), pkCond{one: v.Value, single: true}
	case clause.IN:
		if !allBound(v.Values) || !plainColumn(v.Column) {
			return pkCond{}, false, false
		}
		if len(v.Values) == 0 {
			return pkCond{}, false, true
		}
		field, pc = pkField(stmt, v.Column), pkCond{many: v.Values}
	case clause.Expr:
		ec, named := exprField(in, stmt, v.SQL)
		if !ec.simple || len(v.Vars) > 1 || !allBound(v.Vars) {
			return pkCond{}, false, false
		}
		if !ec.eq || len(v.Vars) != 1 {
			return pkCond{}, false, true
		}
		field, pc = named, pkCond{many: v.Vars}
	default:
		return pkCond{}, false, structured(e)
	}
	if field == nil {
		return pkCond{}, false, true
	}
	pc.col = field.DBName
	return pc, true, true
}

// condMemo is a raw condition's reading (exprCondOf) and the primary-key
// field its column names (pkFieldNamed, when it reads "column = ?"), for
// the schema and table name they were found for. It is remembered with
// the inspection of a statement's text, whose WHERE holds the same
// conditions on every call: a write of one row by Where("id = ?", id)
// hashed the condition's text and looked its column up in the schema's
// maps every time. Only the text's first raw condition is remembered
// (the first stored stays): a WHERE of several does not thrash it.
type condMemo struct {
	sql    string
	schema *schema.Schema
	table  string
	ec     *exprCond
	field  *schema.Field
}

// exprField returns the exprCond of a raw condition's text sql, and the
// primary-key field it names when it reads "column = ?" (nil otherwise),
// remembered with in (which may be nil).
func exprField(in *inspection, stmt *gorm.Statement, sql string) (*exprCond, *schema.Field) {
	if in != nil {
		if m := in.cond.Load(); m != nil && m.sql == sql && m.schema == stmt.Schema && m.table == stmt.Table {
			return m.ec, m.field
		}
	}
	ec := exprCondOf(sql)
	var field *schema.Field
	if ec.eq {
		field = pkFieldNamed(stmt, ec.table, ec.name, ec.trimmed)
	}
	if in != nil && in.cond.Load() == nil {
		in.cond.Store(&condMemo{sql: sql, schema: stmt.Schema, table: stmt.Table, ec: ec, field: field})
	}
	return ec, field
}

// pkCond is a conjunct pinning a primary-key column to values: one (a
// clause.Eq, held here: no list to allocate) or many.
type pkCond struct {
	col    string
	one    any
	many   []any
	single bool
}

func (c *pkCond) len() int {
	if c.single {
		return 1
	}
	return len(c.many)
}

func (c *pkCond) at(i int) any {
	if c.single {
		return c.one
	}
	return c.many[i]
}

// simpleExpr matches the raw conditions accepted next to a primary-key
// condition: one column, one comparison, at most one placeholder. It is
// the definition: simpleCondition (simpleexpr.go) answers as it does
// without running it for ASCII text.
var simpleExpr = regexp.MustCompile(`(?i)^\s*[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?\s*(=|<>|!=|<=|>=|<|>|\s+is\s+null|\s+is\s+not\s+null|\s+like|\s+in)\s*(\?|\(\s*\?\s*\))?\s*$`)

var quotedIdent = strings.NewReplacer("`", "", `"`, "")

func structured(e clause.Expression) bool {
	switch v := e.(type) {
	case clause.Eq:
		return boundValue(v.Value) && plainColumn(v.Column)
	case clause.Neq:
		return boundValue(v.Value) && plainColumn(v.Column)
	case clause.Gt:
		return boundValue(v.Value) && plainColumn(v.Column)
	case clause.Gte:
		return boundValue(v.Value) && plainColumn(v.Column)
	case clause.Lt:
		return boundValue(v.Value) && plainColumn(v.Column)
	case clause.Lte:
		return boundValue(v.Value) && plainColumn(v.Column)
	case clause.Like:
		return boundValue(v.Value) && plainColumn(v.Column)
	case clause.IN:
		return allBound(v.Values) && plainColumn(v.Column)
	case clause.Expr:
		return exprCondOf(v.SQL).simple && len(v.Vars) <= 1 && allBound(v.Vars)
	case clause.NamedExpr:
		return false
	}
	return false
}

// boundValue reports whether GORM sends v to the database as a bound
// value (a placeholder), not as SQL text. An expression (gorm.Expr,
// clause.Expr, any clause.Expression) or a sub-query (*gorm.DB) is
// written into the statement's text as it is, unparenthesised: a value
// gorm.Expr("n OR 1=1") turns WHERE id = ? AND n = ? into a condition on
// every row, which must not be taken for one on a single key. A list is
// bound only if every element is.
func boundValue(v any) bool {
	switch x := v.(type) {
	case nil, string, []byte, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	case clause.Expression, *gorm.DB, clause.Column, clause.Table, gorm.Valuer:
		// GORM writes these into the text: an expression or sub-query as
		// it is, a column or table quoted (or raw), a gorm.Valuer's
		// GormValue expression in place of the placeholder: a Lower("ABC")
		// whose GormValue is LOWER(?) compares with "abc", not "ABC".
		return false
	case []any:
		return allBound(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return true // bytes
		}
		for i := 0; i < rv.Len(); i++ {
			if !boundValue(rv.Index(i).Interface()) {
				return false
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !rv.IsNil() && (rv.Type().Implements(expressionType) || rv.Type().Elem().Implements(expressionType)) {
			return false
		}
	}
	return true
}

// plainColumn reports whether a structured clause's Column is written as
// an identifier and nothing else: a clause.Column of plain names (a Raw
// one only as a bare name), or a string of one or two plain identifiers,
// each possibly quoted. GORM writes an expression
// (clause.Expr{SQL: "name = 'x' OR id"}) or a Raw column into the text as
// it is, unparenthesised, and a string with quotes in it may close the
// dialect's own: clause.Eq{Column: clause.Expr{...}, Value: 2} next to
// id = 1 reads author 2 (TestHostile11StructuredClauseColumnWidens).
func plainColumn(c any) bool {
	switch x := c.(type) {
	case clause.Column:
		if x.Raw { // written as it is: safe only as a bare name
			return plainIdent(x.Name)
		}
		return (x.Name == clause.PrimaryKey || plainIdent(x.Name)) &&
			(x.Table == "" || x.Table == clause.CurrentTable || plainIdent(x.Table)) &&
			(x.Alias == "" || plainIdent(x.Alias))
	case string:
		table, name := splitColumn(x)
		return plainIdent(unquoteIdent(name)) && (table == "" || plainIdent(unquoteIdent(table)))
	}
	return false
}

// unquoteIdent is s without one pair of backticks or double quotes
// around it (GORM keeps a name quoted so as it is).
func unquoteIdent(s string) string {
	if len(s) >= 2 && (s[0] == '`' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// plainIdent reports whether s is an identifier of letters, digits and
// underscores, not starting with a digit.
func plainIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// allBound is boundValue of each value.
func allBound(vs []any) bool {
	for _, v := range vs {
		if !boundValue(v) {
			return false
		}
	}
	return true
}

var expressionType = reflect.TypeFor[clause.Expression]()

// pkField resolves a WHERE column to the statement's primary-key field.
func pkField(stmt *gorm.Statement, column any) *schema.Field {
	switch c := column.(type) {
	case clause.Column:
		if c.Raw || c.Alias != "" {
			return nil
		}
		return pkFieldNamed(stmt, c.Table, c.Name, trimColumn(c.Name))
	case string:
		table, name := splitColumn(c)
		return pkFieldNamed(stmt, table, name, trimColumn(name))
	}
	return nil
}

// splitColumn splits "table.column" at its last dot.
func splitColumn(c string) (table, name string) {
	if i := strings.LastIndex(c, "."); i >= 0 {
		return c[:i], c[i+1:]
	}
	return "", c
}

// trimColumn is a column name without the quotes and spaces around it.
func trimColumn(name string) string { return strings.Trim(name, "`\" ") }

// pkFieldNamed is pkField of the column name of table ("": the
// statement's), trimmed being trimColumn(name).
func pkFieldNamed(stmt *gorm.Statement, table, name, trimmed string) *schema.Field {
	s := stmt.Schema
	if name == clause.PrimaryKey {
		if len(s.PrimaryFields) != 1 {
			return nil
		}
		return s.PrioritizedPrimaryField
	}
	if table != "" && table != clause.CurrentTable && sqlinspect.NormalizeTable(table) != sqlinspect.NormalizeTable(stmt.Table) {
		return nil
	}
	f := fieldOfColumn(s, trimmed)
	if f == nil || !f.PrimaryKey {
		return nil
	}
	return f
}

// fieldOfColumn returns the field of s whose column the database reads
// for the column name name, or nil when that is not certain. Only column
// names count, never Go field names: schema.LookUpField also finds a
// field by its Go name, so Where("ID = ?", 5) on a model whose key field
// ID is the column code was keyed as code 5, while the database read the
// column id (both fold the unquoted ID to id): a write of that row left
// the lookup cached (TestHostile10ColumnNamedLikeGoField). The database
// compares names without case (SQLite) or folds an unquoted one to lower
// case (PostgreSQL), so a name matches a column spelled alike but for
// case only when that column is in lower case and no other column of s
// differs from it but for case.
func fieldOfColumn(s *schema.Schema, name string) *schema.Field {
	if f := s.FieldsByDBName[name]; f != nil && f.DBName == strings.ToLower(f.DBName) {
		return f // the common case: GORM's names are lower case
	}
	var found *schema.Field
	for _, n := range s.DBNames {
		if strings.EqualFold(n, name) {
			if found != nil {
				return nil // id and ID: which one is read depends on quoting
			}
			found = s.FieldsByDBName[n]
		}
	}
	if found == nil || found.DBName != strings.ToLower(found.DBName) {
		return nil
	}
	return found
}

// exprCond is what the text of a raw condition (a clause.Expr's SQL, such
// as Where("id = ?", ...)'s) says, its identifier quotes removed: whether
// it is a simple condition (simpleExpr), and whether it reads "column =
// ?", with the column split at its last dot (and its name trimmed,
// trimColumn). Its bound values are not
// part of it: they are judged on every use (boundValue).
type exprCond struct {
	sql                  string // the text, as given
	simple, eq           bool
	table, name, trimmed string
}

// parseExprCond makes the exprCond of sql.
func parseExprCond(sql string) *exprCond {
	c := &exprCond{sql: sql}
	s := quotedIdent.Replace(sql)
	c.simple = simpleCondition(s)
	i := strings.Index(s, "=")
	if i < 0 || strings.TrimSpace(s[i+1:]) != "?" || strings.ContainsAny(s[:i], "<>!") {
		return c
	}
	c.eq = true
	c.table, c.name = splitColumn(strings.TrimSpace(s[:i]))
	c.trimmed = trimColumn(c.name)
	return c
}

// exprConds remembers the exprCond of recent texts: GORM's callers write
// the same few conditions on every call, and parsing one (the quotes
// removed, the grammar matched, the column found) was a tenth of a
// write's work in the plugin. A slot per hash of the text, replaced on a
// collision: bounded (exprCondSlots texts of at most exprCondMaxSQL
// bytes), no lock, no eviction to run.
var exprConds [exprCondSlots]atomic.Pointer[exprCond]

var exprCondSeed = maphash.MakeSeed()

const (
	exprCondSlots  = 256
	exprCondMaxSQL = 256
)

// exprCondOf returns the exprCond of sql, remembered or parsed.
func exprCondOf(sql string) *exprCond {
	if len(sql) > exprCondMaxSQL {
		return parseExprCond(sql)
	}
	slot := &exprConds[maphash.String(exprCondSeed, sql)&(exprCondSlots-1)]
	if c := slot.Load(); c != nil && c.sql == sql {
		return c
	}
	c := parseExprCond(sql)
	slot.Store(c)
	return c
}
