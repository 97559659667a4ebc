package gormcache

// The primary-key proof as it was before the write-path work of issue 8's
// third session (c10aa49), kept verbatim as the reference
// TestRowsOfMatchesReference compares rowsOf with.

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
	"querycache.dev/keys"
	"querycache.dev/sqlinspect"
)

type pkCondRef struct {
	col string
	raw []any
}

func rowsOfRef(stmt *gorm.Statement, f *tableFacts) (pks []string, ok bool) {
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
	var condBuf [4]pkCondRef
	conds := condBuf[:0]
	for _, e := range conj {
		if col, raw, isPK := pkConditionRef(stmt, e); isPK {
			conds = append(conds, pkCondRef{col, raw})
		}
	}
	if len(conds) == 0 || !allStructuredRef(conj) {
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
			if vals[j], ok = canonicalPK(stmt, v, f.kinds[i], nil); !ok {
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

func allStructuredRef(conj []clause.Expression) bool {
	for _, e := range conj {
		if not, ok := e.(clause.NotConditions); ok {
			// NOT (a AND b): structured, cannot widen the others.
			for _, inner := range not.Exprs {
				if !structuredRef(inner) {
					return false
				}
			}
			continue
		}
		if !structuredRef(e) {
			return false
		}
	}
	return true
}

func structuredRef(e clause.Expression) bool {
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

func pkConditionRef(stmt *gorm.Statement, e clause.Expression) (string, []any, bool) {
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
	field := pkFieldRef(stmt, column)
	if field == nil || len(values) == 0 {
		return "", nil, false
	}
	return field.DBName, values, true
}

// pkField resolves a WHERE column to the statement's primary-key field.
func pkFieldRef(stmt *gorm.Statement, column any) *schema.Field {
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
	// By column name only (never a Go field name), as the database
	// resolves it: the one column spelled alike but for case, in lower
	// case.
	var f *schema.Field
	for _, c := range s.Fields {
		if c.DBName != "" && strings.EqualFold(c.DBName, strings.Trim(name, "`\" ")) {
			if f != nil {
				return nil
			}
			f = c
		}
	}
	if f == nil || f.DBName != strings.ToLower(f.DBName) || !f.PrimaryKey {
		return nil
	}
	return f
}

// refKeyedItem and refCompositeItem are the models the comparison builds
// statements of.
type refKeyedItem struct {
	ID   uint
	Code string
	Name string
}

// refCodeKeyedItem is keyed by its code: with ref_keyed_items' facts, a
// text that proves refKeyedItem's key proves none of it (a plan proven
// for one schema must not serve another, keyPlan).
type refCodeKeyedItem struct {
	ID   uint
	Code string `gorm:"primaryKey"`
	Name string
}

type refCompositeItem struct {
	ID   int    `gorm:"primaryKey"`
	Code string `gorm:"primaryKey"`
	Name string
}

// TestRowsOfMatchesReference: rowsOf (and rowsAppend into a buffer)
// answers as the code before the write-path work did (rowsOfRef), on
// random WHERE clauses built of every kind of conjunct (raw conditions
// on a pool of texts and their byte mutations, structured clauses on key
// and other columns, NOT, nested AND, OR), bound and expression values
// (gorm.Expr, clause.Expr, *gorm.DB, lists holding one), and tables keyed
// every way (one integer, text or name column, composite, unsafe, a
// SQLite REPLACE table). The raw conditions' memo is exercised past its
// slots (collisions replace entries).
func TestRowsOfMatchesReference(t *testing.T) {
	t.Parallel() // no database, no shared state: pure functions on its own memo
	cacheStore := &sync.Map{}
	keyed, err := schema.Parse(&refKeyedItem{}, cacheStore, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	composite, err := schema.Parse(&refCompositeItem{}, cacheStore, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	codeKeyed, err := schema.Parse(&refCodeKeyedItem{}, cacheStore, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	subquery := &gorm.DB{}
	texts := []string{
		"id = ?", "`id` = ?", `"id"=?`, " id =  ? ", "id=?", "\tid\n=\r?\f", "ID = ?", "Id = ?",
		"ref_keyed_items.id = ?", "`ref_keyed_items`.`id` = ?", "other.id = ?", "ref_composite_items.code = ?",
		"id = ? OR 1=1", "id = ? -- x", "id = ?;", "id <= ?", "id >= ?", "id != ?", "id <> ?", "id < ?",
		"id IN (?)", "id in ?", "id = (?)", "id IS NULL", "id is not null", "name = ?", "name LIKE ?",
		"code = ?", "`code` = ?", "~~~py~~~ = ?", "id = ? AND code = ?", "(id = ?)", "id = ?)",
		"\u212aid = ?", "id\u00a0= ?", "id = ?\u0085", "i\x00d = ?", "id = '?'", "id = ? /* */", "name = id",
		"", "?", "=", " = ?", "a.b.id = ?", ".id = ?", "id. = ?", "_ = ?", "id == ?",
	}
	rnd := rand.New(rand.NewPCG(8, 3))
	shared := []*inspection{{}, {}, {}, nil} // rowsAppend's memo of a raw condition, shared by random cases (nil: none)
	friendly := false                        // a case drawn mostly from what proves keys
	text := func() string {
		s := texts[rnd.IntN(len(texts))]
		if friendly && rnd.IntN(3) > 0 {
			s = texts[rnd.IntN(12)]
		}
		if rnd.IntN(4) == 0 && len(s) > 0 { // a byte mutation
			b := []byte(s)
			const alphabet = " \t=?<>!`\"._()idDcoea0OR\x00\xe2\x84\xaa"
			switch rnd.IntN(3) {
			case 0:
				b[rnd.IntN(len(b))] = alphabet[rnd.IntN(len(alphabet))]
			case 1:
				i := rnd.IntN(len(b) + 1)
				b = append(b[:i], append([]byte{alphabet[rnd.IntN(len(alphabet))]}, b[i:]...)...)
			case 2:
				i := rnd.IntN(len(b))
				b = append(b[:i], b[i+1:]...)
			}
			s = string(b)
		}
		return s
	}
	value := func() any {
		if friendly && rnd.IntN(4) > 0 {
			return rnd.IntN(300)
		}
		switch rnd.IntN(16) {
		case 0:
			return gorm.Expr("id OR 1=1")
		case 1:
			return clause.Expr{SQL: "?", Vars: []any{1}}
		case 2:
			return subquery
		case 3:
			return []any{1, gorm.Expr("2")}
		case 4:
			return "042"
		case 5:
			return "abc"
		case 6:
			return int64(-5)
		case 7:
			return uint64(math.MaxUint64)
		case 8:
			return nil
		case 9:
			return []int{1, 2}
		case 10:
			return &clause.Expr{SQL: "1"}
		case 11:
			return "7"
		default:
			return rnd.IntN(300)
		}
	}
	values := func() []any {
		out := make([]any, rnd.IntN(3))
		for i := range out {
			out[i] = value()
		}
		return out
	}
	column := func() any {
		switch rnd.IntN(9) {
		case 0:
			return clause.Column{Table: clause.CurrentTable, Name: clause.PrimaryKey}
		case 1:
			return clause.Column{Name: "id", Raw: true}
		case 2:
			return clause.Column{Name: "id", Alias: "x"}
		case 3:
			return clause.Column{Table: "ref_keyed_items", Name: "id"}
		case 4:
			return "`id`"
		case 5:
			return "other.id"
		case 6:
			return "code"
		case 7:
			return clause.Column{Name: "code"}
		}
		return "id"
	}
	var expr func(depth int) clause.Expression
	expr = func(depth int) clause.Expression {
		k := rnd.IntN(14)
		if friendly {
			k = []int{0, 0, 0, 4, 4, 6, 7, 10, 13}[rnd.IntN(9)]
		}
		switch k {
		case 0, 1, 2, 3:
			var vars []any
			switch rnd.IntN(4) {
			case 0:
			case 1:
				vars = values()
			default:
				vars = []any{value()}
			}
			return clause.Expr{SQL: text(), Vars: vars}
		case 4, 5:
			return clause.Eq{Column: column(), Value: value()}
		case 6:
			return clause.IN{Column: column(), Values: values()}
		case 7:
			return clause.Neq{Column: column(), Value: value()}
		case 8:
			return clause.Gt{Column: column(), Value: value()}
		case 9:
			return clause.Like{Column: column(), Value: value()}
		case 10:
			if depth > 2 {
				return clause.Eq{Column: "id", Value: 1}
			}
			return clause.NotConditions{Exprs: []clause.Expression{expr(depth + 1), expr(depth + 1)}[:1+rnd.IntN(2)]}
		case 11:
			if depth > 2 {
				return clause.Eq{Column: "id", Value: 1}
			}
			return clause.AndConditions{Exprs: []clause.Expression{expr(depth + 1), expr(depth + 1)}[:1+rnd.IntN(2)]}
		case 12:
			if rnd.IntN(4) == 0 {
				return clause.OrConditions{Exprs: []clause.Expression{expr(depth + 1)}}
			}
			return clause.NamedExpr{SQL: "id = @id", Vars: []any{1}}
		}
		return clause.Eq{Column: clause.Column{Table: clause.CurrentTable, Name: clause.PrimaryKey}, Value: value()}
	}
	facts := []*tableFacts{
		{exists: true, relkind: 'r', pk: []string{"id"}, kinds: []pkKind{pkInt}},
		{exists: true, relkind: 'r', pk: []string{"id"}, kinds: []pkKind{pkExact}},
		{exists: true, relkind: 'r', pk: []string{"id"}, kinds: []pkKind{pkName}},
		{exists: true, relkind: 'r', pk: []string{"id"}, kinds: []pkKind{pkUnsafe}},
		{exists: true, relkind: 'r', pk: []string{"id"}, kinds: []pkKind{pkInt}, replaces: true},
		{exists: true, relkind: 'r', pk: []string{"code"}, kinds: []pkKind{pkExact}},
		{exists: true, relkind: 'r', pk: []string{"id", "code"}, kinds: []pkKind{pkInt, pkExact}},
		{exists: true, relkind: 'r', pk: []string{"code", "id"}, kinds: []pkKind{pkExact, pkInt}},
		nil,
	}
	n, proved := 200000, 0
	if testing.Short() {
		n = 20000
	}
	for i := range n {
		friendly = rnd.IntN(5) < 3
		s, table := keyed, "ref_keyed_items"
		switch r := rnd.IntN(24); {
		case r < 8:
			s, table = composite, "ref_composite_items"
		case r < 11:
			s = codeKeyed
		}
		if !friendly && rnd.IntN(4) == 0 {
			// Another statement table name, under which a qualified
			// condition (ref_keyed_items.id = ?) names no key.
			table = "ref_other_items"
		}
		exprs := make([]clause.Expression, 1+rnd.IntN(3))
		for j := range exprs {
			exprs[j] = expr(0)
		}
		stmt := &gorm.Statement{Schema: s, Table: table, Clauses: map[string]clause.Clause{}}
		switch rnd.IntN(20) {
		case 0: // no WHERE
		case 1:
			stmt.Clauses["WHERE"] = clause.Clause{Expression: clause.Set{}}
		default:
			stmt.Clauses["WHERE"] = clause.Clause{Expression: clause.Where{Exprs: exprs}}
		}
		f := facts[rnd.IntN(len(facts))]
		if friendly {
			f = facts[0]
			if s == composite {
				f = facts[6+rnd.IntN(2)]
			}
			if s == codeKeyed && rnd.IntN(2) == 0 {
				f = facts[5]
			}
		}
		want, wantOK := rowsOfRef(stmt, f)
		got, ok := rowsOf(stmt, f)
		var buf [4]string
		// With an inspection shared by random cases: its memo of a raw
		// condition (condMemo) is read by statements of other schemas,
		// tables and conditions, and must answer as the reference does.
		//
		// The first plan of a key stays with its inspection (keyPlan): one
		// is replaced now and then, so that plans of many texts, schemas
		// and facts meet statements they must not serve.
		if i%64 == 0 {
			shared[rnd.IntN(len(shared)-1)] = &inspection{}
		}
		got2, ok2 := rowsAppend(stmt, f, buf[:0], shared[rnd.IntN(len(shared))])
		if ok != wantOK || ok2 != wantOK || wantOK && (!slices.Equal(got, want) || !slices.Equal(got2, want)) {
			t.Fatalf("case %d: %#v with facts %+v: rowsOf %q %v, rowsAppend %q %v, the reference %q %v",
				i, stmt.Clauses["WHERE"].Expression, f, got, ok, got2, ok2, want, wantOK)
		}
		if ok {
			proved++
		}
	}
	if proved < n/10 {
		t.Fatalf("only %d of %d cases proved keys: the comparison tests little", proved, n)
	}
	for _, s := range texts {
		if c := exprCondOf(s); *c != *parseExprCond(s) {
			t.Fatalf("%q: remembered %+v, parsed %+v", s, *c, *parseExprCond(s))
		}
	}
	t.Logf("%d of %d cases proved keys", proved, n)
}

// A text's keyPlan follows its table's facts when they are learned again
// (every catalogMaxAge: a new object, equal to the old): a plan kept for
// the old facts would never serve again. A statement of another schema
// sharing the text does not replace it.
func TestKeyPlanFollowsRelearnedFacts(t *testing.T) {
	t.Parallel()
	cacheStore := &sync.Map{}
	keyed, err := schema.Parse(&refKeyedItem{}, cacheStore, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	composite, err := schema.Parse(&refCompositeItem{}, cacheStore, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	stmt := func(s *schema.Schema, v any) *gorm.Statement {
		return &gorm.Statement{Schema: s, Table: "ref_keyed_items", Clauses: map[string]clause.Clause{
			"WHERE": {Expression: clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "id = ?", Vars: []any{v}}}}},
		}}
	}
	facts := func() *tableFacts {
		return &tableFacts{exists: true, relkind: 'r', pk: []string{"id"}, kinds: []pkKind{pkInt}}
	}
	in := &inspection{}
	f1, f2 := facts(), facts()
	for _, step := range []struct {
		s    *schema.Schema
		f    *tableFacts
		v    any
		want string // the key ("" none)
		plan *tableFacts
	}{
		{keyed, f1, 7, "7", f1},
		{keyed, f1, 8, "8", f1},    // by the plan
		{keyed, f2, 9, "9", f2},    // facts learned again: the plan follows
		{keyed, f2, "042", "", f2}, // no canonical form: no key, the plan stays
		{composite, f2, 5, "", f2}, // another schema: no key (composite), the plan stays
		{keyed, f2, uint64(10), "10", f2},
	} {
		got, ok := rowsAppend(stmt(step.s, step.v), step.f, nil, in)
		if ok != (step.want != "") || ok && got[0] != step.want {
			t.Fatalf("%v: got %q %v, want %q", step.v, got, ok, step.want)
		}
		if kp := in.keys.Load(); kp == nil || kp.f != step.plan {
			t.Fatalf("%v: the plan is %+v, want one for facts %p", step.v, kp, step.plan)
		}
	}
}
