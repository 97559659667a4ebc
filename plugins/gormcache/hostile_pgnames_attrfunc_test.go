package gormcache_test

import (
	"testing"

	"gorm.io/gorm"
)

// BUG: PostgreSQL calls a function of one composite argument written in
// attribute notation: o.pgn_total, (o).pgn_total and o.pgn_total in a WHERE
// all run pgn_total(o) ("functional notation" / computed fields, PostgreSQL
// docs 8.16.5 and 38.5.2). The purity check reads only name(...) calls,
// so a STABLE (or VOLATILE) user function called this way is neither
// refused (README: "any function that is not IMMUTABLE ... your own
// functions (volatile_function)") nor seen as a possible writer (README:
// "a SELECT calling a function that may write invalidates everything").
// docs/DESIGN.md's limits name operators and casts, not this notation.
//
// Order of events (reads): pgn_total(pgn_orders) sums pgn_lines; (1) the
// read SELECT o.pgn_total FROM pgn_orders o is filled and hit, recorded as
// depending on pgn_orders only; (2) INSERT INTO pgn_lines commits through
// db.Exec, invalidating pgn_lines; (3) the read is served the old total.
//
// Order of events (writer): pgn_bump(pgn_orders) is VOLATILE and updates
// pgn_counter; (1) SELECT n FROM pgn_counter is cached; (2)
// Raw("SELECT o.pgn_bump FROM pgn_orders o").Scan runs through the plugin
// and commits the UPDATE; nothing is invalidated; (3) the cached counter
// is served.
func TestHostilePgnAttributeNotationFunction(t *testing.T) {
	setup := `CREATE TABLE pgn_orders (id integer PRIMARY KEY);
CREATE TABLE pgn_lines (order_id integer, amount integer);
CREATE TABLE pgn_counter (n integer);
INSERT INTO pgn_counter VALUES (0);
INSERT INTO pgn_orders VALUES (1);
CREATE FUNCTION pgn_total(pgn_orders) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT coalesce(sum(amount), 0) FROM pgn_lines WHERE order_id = $1.id';
CREATE FUNCTION pgn_bump(pgn_orders) RETURNS integer LANGUAGE sql VOLATILE AS 'UPDATE pgn_counter SET n = n + 1 RETURNING n'`
	for _, c := range []struct{ name, read string }{
		{"select_list", "SELECT o.pgn_total FROM pgn_orders o WHERE o.id = 1"},
		{"parenthesised", "SELECT (o).pgn_total FROM pgn_orders o"},
		{"where_clause", "SELECT count(*) FROM pgn_orders o WHERE o.pgn_total > 0"},
		{"table_name_qualifier", "SELECT pgn_orders.pgn_total FROM pgn_orders"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := pgnNew(t)
			w.exec(t, setup)
			w.mustNotBeStale(t, pgnScalar(c.read), pgnExec("INSERT INTO pgn_lines VALUES (1, 5)"))
		})
	}
	t.Run("volatile_writer_via_raw_scan", func(t *testing.T) {
		w := pgnNew(t)
		w.exec(t, setup)
		w.mustNotBeStale(t, pgnScalar("SELECT n FROM pgn_counter"), func(db *gorm.DB) error {
			var n []int
			return db.Raw("SELECT o.pgn_bump FROM pgn_orders o").Scan(&n).Error
		})
	})
}
