package keys

// TableVersions are the version names of one table, built once: a write
// replaces its table's version and its rows' (or its bulk version), and
// building every name from the prefix and the escaped table on each write
// cost an allocation and an escape scan per name.
type TableVersions struct {
	// Table is TableVersion(table).
	Table string
	// Bulk is BulkVersion(table).
	Bulk string
	// object is ObjectVersion's name up to the primary key.
	object string
}

// TableVersions returns the version names of table.
func (n Namespace) TableVersions(table string) TableVersions {
	t := part(table, maxTablePart)
	return TableVersions{
		Table:  n.prefix + "v:tbl:" + t,
		Bulk:   n.prefix + "v:bulk:" + t,
		object: n.prefix + "v:obj:" + t + ":",
	}
}

// Object returns ObjectVersion(table, pk): the same string, built with one
// concatenation.
func (v TableVersions) Object(pk string) string { return v.object + part(pk, maxPKPart) }

// ObjectParts returns Object(pk) in two parts, the table's object prefix
// and the key's part, whose concatenation is Object(pk): a store that
// only hashes a name (the memory store's version table) need not build it.
func (v TableVersions) ObjectParts(pk string) (prefix, key string) {
	return v.object, part(pk, maxPKPart)
}

// Row returns the versions a write of the one row pk replaces,
// {Object(pk), Table} in sorted order, in one allocation (the list and the
// object name's bytes, as ObjectNames.Lookup): they are the names of the
// commonest write. The list must not be modified.
func (v TableVersions) Row(pk string) []string {
	p := part(pk, maxPKPart)
	b, vs := lookupBuffer(len(v.object) + len(p))
	b = append(b, v.object...)
	b = append(b, p...)
	// Sorted without comparing: an object's name and its table's share
	// the prefix and "v:", then read "obj:" and "tbl:"; 'o' < 't'. (A
	// comparison read the table name's cold bytes on every write.)
	vs[0], vs[1] = stringOf(b), v.Table
	return vs
}
