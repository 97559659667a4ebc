package gormcache

import (
	"context"
	"database/sql"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"
	"querycache.dev/keys"
)

// This file finds the PostgreSQL relations a table name stands for.
//
// The cache names tables without their schema and folds the case of their
// ASCII letters ("T" and t share versions; keys.NormalizeTable), so the
// relations a table's facts are learned from are every one, in any schema,
// whose relname folds to the name. PostgreSQL's lower() folds the same
// letters in the C collation, which relname has; in the database's own
// collation it folds more (Ä to ä on a UTF-8 one), so the name is compared
// in C too: compared in the database's collation, a relation whose quoted
// name holds a capital outside ASCII ("ÄNDERUNGEN") was never found, and a
// view of that name was cached as a table nothing invalidates
// (TestPostgresRelationsNamedWithNonASCIICapitals).
//
// Asked with lower(), PostgreSQL reads all of pg_class: lower() hides
// relname from its index. That is a scan per table learned, again after
// every DDL and every catalogMaxAge: about 1 ms on a fresh test database,
// 25-40 ms once test runs had bloated pg_class (.ci/run), and in
// proportion to the relations of a database with a schema per tenant. So
// the same relations are found through the index pg_class_relname_nsp_index:
// every spelling of a name lies, byte-wise (the C collation), between its
// least spelling (capitals, A-Z being below a-z) and its greatest. One
// range would span every name from the least spelling's first letter on
// (USERS .. users holds all of a..u), so the first two bytes'
// spellings are enumerated, each with a range of its own over the rest.
// The condition on lower() stays: the ranges only let the server reach
// the rows through the index, and never add a relation the scan would not
// have returned (TestRelationLookupByIndexFindsWhatTheScanFinds).

// relnameRanges returns a condition on c.relname that holds for every
// spelling of name (an unquoted name whose ASCII letters are lowercase),
// as ranges the index can read, or ok false for a name it does not bound:
// one with a quote, a backslash or a control character, not UTF-8, or
// longer than a relname can be (keys.MaxIdentLen). The bounds are literals, not
// parameters: planned without knowing how narrow the ranges are, the
// server read all of pg_class.
func relnameRanges(name string) (cond string, ok bool) {
	if name == "" || len(name) > keys.MaxIdentLen || !utf8.ValidString(name) {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f || c == '\'' || c == '\\' || c >= 'A' && c <= 'Z' {
			return "", false
		}
	}
	// The spellings of two bytes are at most four ranges (a byte of a
	// multi-byte character has one spelling; the bounds keep such bytes
	// as they are, so each is UTF-8).
	n := min(2, len(name))
	least, greatest := spellingBounds(name[n:])
	prefixes := []string{""}
	for i := range n {
		var next []string
		for _, p := range prefixes {
			for _, s := range spellings(name[i]) {
				next = append(next, p+s)
			}
		}
		prefixes = next
	}
	var b strings.Builder
	b.WriteByte('(')
	for i, p := range prefixes {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("c.relname BETWEEN '" + p + least + "' AND '" + p + greatest + "'")
	}
	b.WriteByte(')')
	return b.String(), true
}

// spellings are the bytes that fold to c, the least first (one byte
// each: a byte of a multi-byte character has one spelling).
func spellings(c byte) []string {
	if c >= 'a' && c <= 'z' {
		return []string{string(rune(c - 'a' + 'A')), string(rune(c))}
	}
	return []string{string([]byte{c})}
}

// spellingBounds returns the least and the greatest spelling of s, which
// has no ASCII capitals: its ASCII letters in capitals, and s.
func spellingBounds(s string) (least, greatest string) {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b), s
}

// relationsQuery is the relation lookup, reading pg_class where cond says
// (relationsByScan: all of it). The system's schemas are left out: a read
// of information_schema.attributes is a catalog read (sqlinspect), and
// their views must not make a user's table "attributes" a view.
func relationsQuery(cond string) string {
	return `SELECT c.oid::int8, c.relkind::text, c.relname::text, c.relrowsecurity FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE ` + cond + ` AND lower(c.relname) = lower($1 COLLATE "C") AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
	AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
ORDER BY c.oid`
}

// relationsByScan is the lookup of a name relnameRanges cannot bound.
var relationsByScan = relationsQuery("true")

// queryRelations runs the relation lookup for the unquoted name.
func queryRelations(ctx context.Context, cp gorm.ConnPool, name string) (*sql.Rows, error) {
	if cond, ok := relnameRanges(name); ok {
		return cp.QueryContext(ctx, relationsQuery(cond), name)
	}
	return cp.QueryContext(ctx, relationsByScan, name)
}
