package keys

// ObjectNames builds the two names of one lookup by primary key of one
// table, Object's key and ObjectVersion's version, from prefixes computed
// once per table: on a cache hit they are the only names that change
// between calls, and building them both costs one allocation.
type ObjectNames struct {
	key     string // Object's name up to the primary key
	version string // ObjectVersion's name up to the primary key
}

// ObjectNames returns the builder of the object names of table in db.
func (n Namespace) ObjectNames(db, table string) ObjectNames {
	return ObjectNames{
		key:     n.prefix + "o:" + part(db, maxDBPart) + ":" + part(table, maxTablePart) + ":",
		version: n.TableVersions(table).object,
	}
}

// Names returns Object(db, table, pk, fp) and ObjectVersion(table, pk):
// the same strings, sharing one allocation.
func (o ObjectNames) Names(pk string, fp Fingerprint) (key, version string) {
	p := part(pk, maxPKPart)
	n := len(o.version) + len(p)
	b := make([]byte, 0, n+len(o.key)+len(p)+1+fingerprintLen)
	b = append(b, o.version...)
	b = append(b, p...)
	b = append(b, o.key...)
	b = append(b, p...)
	b = append(b, ':')
	b = b[:len(b)+fingerprintLen]
	fp.encode(b[len(b)-fingerprintLen:])
	s := stringOf(b)
	return s[n:], s[:n]
}
