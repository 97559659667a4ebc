package gormcache

import (
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
	"querycache.dev/keys"
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
	var buf [8]clause.Expression
	conj, safe := conjuncts(where.Exprs, buf[:0])
	if !safe {
		return nil, false
	}
	// The key conditions first: most statements pin no primary key, and
	// proving every conjunct safe is only worth it for those that do.
	var condBuf [4]pkCond
	conds := condBuf[:0]
	for _, e := range conj {
		if col, raw, isPK := pkCondition(stmt, e); isPK {
			conds = append(conds, pkCond{col, raw})
		}
	}
	if len(conds) == 0 || !allStructured(conj) {
		return nil, false
	}
	composite := len(f.pk) > 1
	var parts []string // composite: the value of each key column
	if composite {
		parts = make([]string, len(f.pk))
	}
	for _, pc := range conds {
		col, raw := pc.col, pc.raw
		i := f.column(col)
		if i < 0 {
			return nil, false
		}
		vals := make([]string, len(raw))
		for j, v := range raw {
			if vals[j], ok = canonicalPK(v, f.kinds[i]); !ok {
				return nil, false
			}
		}
		if !composite {
			if pks == nil {
				pks = vals
			}
			continue
		}
		if len(vals) == 1 && parts[i] == "" {
			parts[i] = vals[0]
		}
	}
	if composite {
		for _, v := range parts {
			if v == "" {
				return nil, false
			}
		}
		return []string{keys.JoinPK(parts)}, true
	}
	return pks, len(pks) > 0
}

// canonicalPK is keys.PK under the equality of a column of kind k.
func canonicalPK(v any, k pkKind) (string, bool) {
	if k == pkInt {
		// keys.PK writes a Go integer in canonical decimal: the round trip
		// below is for strings and Valuers.
		switch x := v.(type) {
		case int, int64, int32, uint32:
			return keys.PK(v)
		case uint:
			if uint64(x) <= math.MaxInt64 {
				return keys.PK(v)
			}
		case uint64:
			if x <= math.MaxInt64 {
				return keys.PK(v)
			}
		}
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

// allStructured reports whether every conjunct is a safe expression, one
// whose SQL text cannot reopen the conjunction and widen the rows.
func allStructured(conj []clause.Expression) bool {
	for _, e := range conj {
		if not, ok := e.(clause.NotConditions); ok {
			// NOT (a AND b): structured, cannot widen the others.
			for _, inner := range not.Exprs {
				if !structured(inner) {
					return false
				}
			}
			continue
		}
		if !structured(e) {
			return false
		}
	}
	return true
}

// pkCond is a conjunct pinning a primary-key column to values.
type pkCond struct {
	col string
	raw []any
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
		return boundValue(v.Value)
	case clause.Neq:
		return boundValue(v.Value)
	case clause.Gt:
		return boundValue(v.Value)
	case clause.Gte:
		return boundValue(v.Value)
	case clause.Lt:
		return boundValue(v.Value)
	case clause.Lte:
		return boundValue(v.Value)
	case clause.Like:
		return boundValue(v.Value)
	case clause.IN:
		return allBound(v.Values)
	case clause.Expr:
		return simpleCondition(quotedIdent.Replace(v.SQL)) && len(v.Vars) <= 1 && allBound(v.Vars)
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
	case clause.Expression, *gorm.DB:
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

// pkCondition reports whether e pins a primary-key column, returning the
// column and the values it allows.
func pkCondition(stmt *gorm.Statement, e clause.Expression) (string, []any, bool) {
	var (
		column any
		values []any
	)
	switch v := e.(type) {
	case clause.Eq:
		column, values = v.Column, []any{v.Value}
	case clause.IN:
		column, values = v.Column, v.Values
	case clause.Expr:
		sql := quotedIdent.Replace(v.SQL)
		i := strings.Index(sql, "=")
		if i < 0 || len(v.Vars) != 1 || strings.TrimSpace(sql[i+1:]) != "?" || strings.ContainsAny(sql[:i], "<>!") {
			return "", nil, false
		}
		column, values = strings.TrimSpace(sql[:i]), v.Vars
	default:
		return "", nil, false
	}
	field := pkField(stmt, column)
	if field == nil || len(values) == 0 {
		return "", nil, false
	}
	return field.DBName, values, true
}

// pkField resolves a WHERE column to the statement's primary-key field.
func pkField(stmt *gorm.Statement, column any) *schema.Field {
	var table, name string
	switch c := column.(type) {
	case clause.Column:
		if c.Raw || c.Alias != "" {
			return nil
		}
		table, name = c.Table, c.Name
	case string:
		name = c
		if i := strings.LastIndex(c, "."); i >= 0 {
			table, name = c[:i], c[i+1:]
		}
	default:
		return nil
	}
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
	f := s.LookUpField(strings.Trim(name, "`\" "))
	if f == nil || !f.PrimaryKey {
		return nil
	}
	return f
}
