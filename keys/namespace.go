package keys

import "strings"

// Namespace names keys and versions under one prefix (Django's KEY_PREFIX).
// Every process that shares a store and a database must use the same prefix,
// or its writes will not invalidate the others' entries.
type Namespace struct {
	prefix string
}

// NewNamespace returns a Namespace whose names all start with prefix.
func NewNamespace(prefix string) Namespace { return Namespace{prefix: prefix} }

// Prefix returns the namespace's prefix.
func (n Namespace) Prefix() string { return n.prefix }

// Query is the key of a statement's cached result: db is the database
// identity, fp the statement's fingerprint.
func (n Namespace) Query(db string, fp Fingerprint) string {
	var b [fingerprintLen]byte
	fp.encode(b[:])
	return n.prefix + "q:" + db + ":" + string(b[:])
}

// Object is the key of a lookup by primary key. It carries the table and the
// primary key for people reading the store, and the statement's fingerprint
// so that two different lookups of one row (other columns, Unscoped, First or
// Last) never share an entry.
func (n Namespace) Object(db, table, pk string, fp Fingerprint) string {
	var b [fingerprintLen]byte
	fp.encode(b[:])
	// One allocation: the compiler concatenates string(b[:]) without copying it first.
	return n.prefix + "o:" + db + ":" + escape(table) + ":" + pkPart(pk) + ":" + string(b[:])
}

// TableVersion names the version every query reading table depends on.
func (n Namespace) TableVersion(table string) string { return n.prefix + "v:tbl:" + escape(table) }

// BulkVersion names the version replaced when rows of table change that are
// not known one by one (a batch UPDATE ... WHERE, raw SQL). Lookups by
// primary key depend on it.
func (n Namespace) BulkVersion(table string) string { return n.prefix + "v:bulk:" + escape(table) }

// ObjectVersion names the version of one row, identified by its canonical
// primary key string (see PK).
func (n Namespace) ObjectVersion(table, pk string) string {
	return n.prefix + "v:obj:" + escape(table) + ":" + pkPart(pk)
}

// Epoch names the global version every entry depends on; replacing it
// invalidates everything under the prefix.
func (n Namespace) Epoch() string { return n.prefix + "v:epoch" }

// maxPKPart bounds how much of a primary key goes into a name verbatim; a
// longer (or hostile) key is replaced by its digest.
const maxPKPart = 96

func pkPart(pk string) string {
	if len(pk) > maxPKPart {
		return "#" + Sum([]byte(pk)).String()
	}
	return escape(pk)
}

// escape keeps ':' (the separator) and '%' out of a name part, so that
// ("a:b", "c") and ("a", "b:c") never name the same thing.
func escape(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] == ':' || s[i] == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ':':
			b.WriteString("%3A")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
