package keys

import "strings"

// CatalogTable is the table name under which reads of a system catalog
// (information_schema, pg_catalog, sqlite_master, pragmas) are versioned:
// every DDL statement invalidates it. No GORM model maps to this name.
const CatalogTable = "!catalog"

// IsCatalog reports whether the relation schema.name (both lower-cased,
// unquoted; schema "" when unqualified) is a system catalog of PostgreSQL
// or SQLite: information_schema.*, pg_catalog.*, pg_toast.*, any pg_*
// relation, sqlite_master/sqlite_schema and the other sqlite_* tables, and
// SQLite's pragma_* table-valued functions. Their contents change with
// DDL, not with the writes the plugin attributes to tables.
func IsCatalog(schema, name string) bool {
	switch schema {
	case "information_schema", "pg_catalog", "pg_toast":
		return true
	}
	return strings.HasPrefix(name, "pg_") || strings.HasPrefix(name, "sqlite_") || strings.HasPrefix(name, "pragma_")
}
