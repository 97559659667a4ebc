package gormcache

import (
	"slices"
	"strings"

	"gorm.io/gorm"
	"querycache.dev/keys"
	"querycache.dev/sqlinspect"
)

// This file decides whether DDL runs a function of the user's that may
// write, which sqlinspect does not list: it lists no calls in DDL's
// definitions, since most do not run when the statement does (a column's
// DEFAULT for rows inserted later, a trigger's function). Some do, on
// every row the table holds:
//
//	ALTER TABLE t ADD COLUMN n integer DEFAULT next_invoice_no()
//	ALTER TABLE t ALTER COLUMN v TYPE bigint USING convert(v)
//	ALTER TABLE t ADD CONSTRAINT c CHECK (audit(v))
//
// and on PostgreSQL an event trigger runs its function on (almost) any
// DDL. What such a function writes is not in the text: everything is
// invalidated (TestHostile20DDLRunsWriter, TestHostile20EventTriggerWritesOnDDL).

// ddlCallsWriter reports whether info, a statement that changes the
// catalog, may run a function that writes:
//   - a name followed by '(' that the function list marks as one that
//     may write, or a domain whose DEFAULT or CHECK calls one
//     (fnList.writerDomains: a column of it added or retyped);
//   - VALIDATE CONSTRAINT while any constraint, view or policy calls a
//     function that may write (fnRelWriter);
//   - any of it, and REFRESH MATERIALIZED VIEW, while an event trigger is
//     enabled (PostgreSQL).
//
// Definitions of routines, triggers, rules, types, operators and casts
// run nothing now, nor do DROP and COMMENT: their text is not read. With
// the list not known now (a transaction that changed the schema), DDL
// with an expression that runs over the rows (DEFAULT, USING, CHECK,
// EXPRESSION) counts.
func (p *Plugin) ddlCallsWriter(db *gorm.DB, info *sqlinspect.Statement, sql string, learn bool) bool {
	catalog := slices.Contains(info.Writes, keys.CatalogTable)
	// REFRESH MATERIALIZED VIEW fires event triggers too
	// (TestHostile22EventTriggerOnRefresh).
	if !catalog && !(p.dialect == "postgres" && hasPrefixFold(strings.TrimLeft(sql, " \t\r\n("), "REFRESH")) {
		return false
	}
	funcs := p.functionsLearning(db, learn)
	if funcs != nil && funcs.ddlWriter {
		return true
	}
	if !catalog {
		return false
	}
	toks, ok := lexSQL(sql)
	if !ok {
		return true
	}
	if !ddlRunsExpressions(toks) {
		return false
	}
	for _, t := range toks {
		switch t.word {
		case "DEFAULT", "USING", "CHECK", "EXPRESSION":
			if funcs == nil {
				return true
			}
		case "VALIDATE":
			// VALIDATE CONSTRAINT runs a CHECK added NOT VALID on every
			// row, and its text does not name what the CHECK calls
			// (TestHostile21ConstraintsRunWriter): any constraint calling
			// a writer counts.
			if funcs == nil || funcs.any&fnRelWriter != 0 {
				return true
			}
		}
	}
	if funcs == nil {
		return false
	}
	for i, t := range toks {
		if t.name == "" {
			continue
		}
		if i+1 < len(toks) && toks[i+1].punct == '(' && funcs.flags(lookupName(t))&fnMayWrite != 0 {
			return true
		}
		if len(funcs.writerDomains) > 0 && slices.Contains(funcs.writerDomains, lookupName(t)) {
			return true // a column of the domain added or retyped
		}
	}
	return false
}

// ddlRunsExpressions reports whether the DDL statement toks may evaluate
// an expression as it runs: anything but the definitions and removals
// listed in ddlCallsWriter.
func ddlRunsExpressions(toks []lexTok) bool {
	if len(toks) == 0 {
		return true
	}
	var kind string
	switch toks[0].word {
	case "DROP", "COMMENT":
		return false
	case "CREATE":
		kind = createdKind(toks, "CONSTRAINT", "EVENT", "TRUSTED", "PROCEDURAL")
	case "ALTER":
		if len(toks) > 1 {
			kind = toks[1].word
		}
	default:
		return true
	}
	switch kind {
	case "FUNCTION", "PROCEDURE", "ROUTINE", "TRIGGER", "RULE", "TYPE", "OPERATOR", "CAST", "AGGREGATE", "LANGUAGE":
		return false
	}
	return true
}

// createdKind returns the word naming what CREATE [OR REPLACE] toks make,
// after any of the modifiers given (CREATE OR REPLACE TEMP VIEW: VIEW);
// "" when toks are not a CREATE.
func createdKind(toks []lexTok, modifiers ...string) string {
	if len(toks) == 0 || toks[0].word != "CREATE" {
		return ""
	}
	i := 1
	if i < len(toks) && toks[i].word == "OR" { // OR REPLACE
		i += 2
	}
	for i < len(toks) && slices.Contains(modifiers, toks[i].word) {
		i++
	}
	if i < len(toks) {
		return toks[i].word
	}
	return ""
}

// lookupName is the key of the name token t in a function list: bare
// names lower-cased, as SQL compares them; quoted ones unquoted and
// lower-cased too, as the list keys them (attributeCall).
func lookupName(t lexTok) string {
	n := t.name
	if len(n) >= 2 && (n[0] == '"' || n[0] == '`') {
		q := n[:1]
		n = strings.ReplaceAll(n[1:len(n)-1], q+q, q)
	}
	return strings.ToLower(n)
}
