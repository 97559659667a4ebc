package keys

import (
	"fmt"
	"strings"
)

// Namespace names keys and versions under one prefix (Django's KEY_PREFIX).
// Every process that shares a store and a database must use the same prefix,
// or its writes will not invalidate the others' entries.
type Namespace struct {
	prefix string
	epoch  string // Epoch's name, built once: every lookup reads it
}

// NewNamespace returns a Namespace whose names all start with prefix.
func NewNamespace(prefix string) Namespace {
	return Namespace{prefix: prefix, epoch: prefix + "v:epoch"}
}

// Prefix returns the namespace's prefix.
func (n Namespace) Prefix() string { return n.prefix }

// Query is the key of a statement's cached result: db is the database
// identity, fp the statement's fingerprint.
func (n Namespace) Query(db string, fp Fingerprint) string {
	var b [fingerprintLen]byte
	fp.encode(b[:])
	return n.prefix + "q:" + part(db, maxDBPart) + ":" + string(b[:])
}

// Object is the key of a lookup by primary key. It carries the table and the
// primary key for people reading the store, and the statement's fingerprint
// so that two different lookups of one row (other columns, Unscoped, First or
// Last) never share an entry.
func (n Namespace) Object(db, table, pk string, fp Fingerprint) string {
	var b [fingerprintLen]byte
	fp.encode(b[:])
	// One allocation: the compiler concatenates string(b[:]) without copying it first.
	return n.prefix + "o:" + part(db, maxDBPart) + ":" + part(table, maxTablePart) + ":" + part(pk, maxPKPart) + ":" + string(b[:])
}

// TableVersion names the version every query reading table depends on.
func (n Namespace) TableVersion(table string) string {
	return n.prefix + "v:tbl:" + part(table, maxTablePart)
}

// BulkVersion names the version replaced when rows of table change that are
// not known one by one (a batch UPDATE ... WHERE, raw SQL). Lookups by
// primary key depend on it.
func (n Namespace) BulkVersion(table string) string {
	return n.prefix + "v:bulk:" + part(table, maxTablePart)
}

// ObjectVersion names the version of one row, identified by its canonical
// primary key string (see PK).
func (n Namespace) ObjectVersion(table, pk string) string {
	return n.prefix + "v:obj:" + part(table, maxTablePart) + ":" + part(pk, maxPKPart)
}

// Redact returns name, a key or version name of this namespace, with the
// primary key an object's key or version carries replaced by "?": the
// form for logs, traces and pages, which must not spell bound values (a
// table keyed by session tokens or e-mail addresses would put them
// there). The rest (database, table, fingerprint) is kept, to tell
// entries apart. A query key or table version carries no value and is
// returned as it is; so is a name outside the namespace. An object name
// that does not parse loses everything after "o:" or "v:obj:".
func (n Namespace) Redact(name string) string {
	rest, ok := strings.CutPrefix(name, n.prefix)
	if !ok {
		return name
	}
	if obj, ok := strings.CutPrefix(rest, "o:"); ok {
		// o:<db>:<table>:<pk>:<fingerprint>; no part holds ':' (part).
		f := strings.SplitN(obj, ":", 4)
		if len(f) != 4 {
			return n.prefix + "o:?"
		}
		return n.prefix + "o:" + f[0] + ":" + f[1] + ":?:" + f[3]
	}
	if obj, ok := strings.CutPrefix(rest, "v:obj:"); ok {
		// v:obj:<table>:<pk>
		table, _, ok := strings.Cut(obj, ":")
		if !ok {
			return n.prefix + "v:obj:?"
		}
		return n.prefix + "v:obj:" + table + ":?"
	}
	return name
}

// Epoch names the global version every entry depends on; replacing it
// invalidates everything under the prefix.
func (n Namespace) Epoch() string {
	if n.epoch == "" { // the zero Namespace
		return "v:epoch"
	}
	return n.epoch
}

// Bounds on how much of a database identity, table or primary key goes
// into a name verbatim. Names become store keys (Redis keys, log lines): a
// longer (or hostile) part is replaced by its digest, so every name built
// here is at most the prefix plus about 400 bytes.
const (
	maxDBPart    = 96
	maxTablePart = 128
	maxPKPart    = 96
)

// part returns s as one part of a name. The separator ':', '%' and '#'
// (which start escapes and digests) and control bytes are percent-encoded,
// so that ("a:b", "c") and ("a", "b:c") never name the same thing and no
// name holds a newline or NUL. When the result would be longer than max,
// it is "#" and the digest of s instead: escaped text never starts with
// '#', so a digest cannot collide with a short part.
func part(s string, max int) string {
	if len(s) <= max && !anyEscaped(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() <= max; i++ {
		if c := s[i]; needsEscape(c) {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	if b.Len() > max {
		return "#" + Sum([]byte(s)).String()
	}
	return b.String()
}

// needsEscape reports the bytes a name part never holds verbatim: its
// separators, control bytes and spaces (names are Redis keys, typed in
// redis-cli and printed in logs), and braces (a Redis Cluster hash tag
// inside a part would pin unrelated keys to one slot).
func needsEscape(c byte) bool { return escaped[c] }

// escaped is needsEscape as a table: part reads every byte of every
// primary key a write names, and seven comparisons per byte were most of
// a one-row write's cost of its version name.
var escaped = func() (t [256]bool) {
	for c := range t {
		t[c] = c == ':' || c == '%' || c == '#' || c <= 0x20 || c == 0x7f || c == '{' || c == '}'
	}
	return t
}()

// anyEscaped reports whether a byte of s needs escaping.
func anyEscaped(s string) bool {
	for i := 0; i < len(s); i++ {
		if escaped[s[i]] {
			return true
		}
	}
	return false
}

// MaxPrefixLen bounds a namespace prefix.
const MaxPrefixLen = 64

// CheckPrefix reports why prefix cannot start store keys, or nil: it must
// be at most MaxPrefixLen bytes of printable ASCII with no space and no
// brace (a Redis Cluster hash tag in the prefix would put every key in
// one slot).
func CheckPrefix(prefix string) error {
	if len(prefix) > MaxPrefixLen {
		return fmt.Errorf("prefix %q is %d bytes; use at most %d", prefix[:16]+"...", len(prefix), MaxPrefixLen)
	}
	for i := 0; i < len(prefix); i++ {
		if c := prefix[i]; c <= 0x20 || c >= 0x7f || c == '{' || c == '}' {
			return fmt.Errorf("prefix %q holds byte %#x; use printable ASCII without spaces or braces, such as \"myapp:\"", prefix, c)
		}
	}
	return nil
}
