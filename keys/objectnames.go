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
	return o.fill(make([]byte, 0, o.size(p)), p, fp)
}

// Lookup returns Names(pk, fp) as key and the version list a read of that
// object depends on, {ObjectVersion(table, pk), also}: on a cache hit these
// are the only values that change between calls, and Lookup makes them in
// one allocation (names and list) where Names and a list take two. The
// list must not be modified.
func (o ObjectNames) Lookup(pk string, fp Fingerprint, also string) (key string, versions []string) {
	p := part(pk, maxPKPart)
	b, vs := lookupBuffer(o.size(p))
	key, vs[0] = o.fill(b, p, fp)
	vs[1] = also
	return key, vs
}

// size is the length of both names of the primary key part p.
func (o ObjectNames) size(p string) int {
	return len(o.version) + len(p) + len(o.key) + len(p) + 1 + fingerprintLen
}

// fill writes both names into b, which has capacity o.size(p) and is not
// used afterwards, and returns them.
func (o ObjectNames) fill(b []byte, p string, fp Fingerprint) (key, version string) {
	n := len(o.version) + len(p)
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
