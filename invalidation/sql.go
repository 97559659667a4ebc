package invalidation

import (
	"querycache.dev/querycache"
	"querycache.dev/sqlinspect"
)

// FromSQL returns what executing sql (one or several statements, as passed
// to Exec), whose dialect is not known, invalidates: FromSQLDialect with
// sqlinspect.DialectAny, under which text that SQLite and PostgreSQL would
// read differently invalidates everything.
func FromSQL(sql string) querycache.Change {
	return FromInspected(sqlinspect.Inspect(sql))
}

// FromSQLDialect returns what executing sql, read by the lexical rules of
// dialect d, invalidates: the tables it writes, with their rows unknown.
// System catalogs are one table, sqlinspect.CatalogTable (keys.CatalogTable),
// which every DDL statement writes, so that DDL invalidates what reads the
// catalog. A statement that writes but whose target cannot be read from the
// text, or that cannot be classified at all, invalidates everything (the
// global epoch). Reads, transaction control and session settings
// invalidate nothing.
func FromSQLDialect(sql string, d sqlinspect.Dialect) querycache.Change {
	return FromInspected(sqlinspect.InspectDialect(sql, d))
}

// FromInspected is FromSQL for a statement already inspected.
//
// Writes and DDL invalidate their Writes (CatalogTable among them for DDL),
// or everything when what they write is undetermined (Undetermined without
// WritesKnown: a table function read by INSERT INTO t SELECT * FROM
// unnest($1) leaves the writes known) or Cascade: without the schema the
// tables a TRUNCATE ... CASCADE empties are not known. A caller that knows
// them adds them to Writes and clears Cascade before calling. Other statements (PRAGMA, GRANT,
// VACUUM, ANALYZE, EXPLAIN, ...) invalidate the relations they list in
// Writes, which for them is at most the catalog or an EXPLAIN's target: a
// PRAGMA assignment, a GRANT or an ANALYZE changes what catalog reads
// return.
func FromInspected(st sqlinspect.Statement) querycache.Change {
	switch st.Kind {
	case sqlinspect.KindSelect, sqlinspect.KindTx:
		return querycache.Change{}
	case sqlinspect.KindOther:
		if len(st.Writes) == 0 {
			return querycache.Change{}
		}
		return querycache.Change{Tables: append([]string(nil), st.Writes...)}
	case sqlinspect.KindWrite, sqlinspect.KindDDL:
		if st.Undetermined && !st.WritesKnown || st.Cascade || len(st.Writes) == 0 {
			return querycache.Change{All: true}
		}
		return querycache.Change{Tables: append([]string(nil), st.Writes...)}
	}
	return querycache.Change{All: true}
}
