package sqlinspect

import (
	"strings"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
)

// TestLinearDialects feeds every dialect and AssignedColumns inputs built
// to make the new scanners quadratic; each is a quarter of a megabyte (a sixteenth under the race detector), so
// that a quadratic scan takes minutes. The bound is a hang detector, not a
// benchmark.
func TestLinearDialects(t *testing.T) {
	if testing.Short() {
		t.Skip("large inputs")
	}
	n := 1 << 18
	if testenv.Race {
		n = 1 << 16 // 62 s of CI's CPU at 256 KiB (testenv.Race)
	}
	units := map[string]string{
		"nested calls":        "f(",
		"closed calls":        "f(a, b), ",
		"qualified calls":     "s.f(",
		"dotted call chain":   "a.a.a.a.a.a.a.a.a.a.a.a(",
		"casts":               "x::numeric(1, 2) ",
		"aliases":             "AS t(a, ",
		"substring":           "substring(a FROM ",
		"aggregate order":     "f(a ORDER BY b, ",
		"brackets":            "[",
		"array calls":         "f(ARRAY[1, 2]) ",
		"tcl variables":       ":a(",
		"dollar variables":    "$a(",
		"hash variables":      "#a(",
		"dollar tags":         "$a$",
		"escape strings":      `E'\'`,
		"cr comments":         "-- x\r",
		"backquotes":          "`a'",
		"set lists":           "a = (SELECT 1), ",
		"set keywords":        "a = b IS DISTINCT FROM c, ",
		"table aliases":       "FROM t x(a), ",
		"table functions":     "FROM f(1) g(a), ",
		"cte names":           "WITH c(n) AS (SELECT 1), ",
		"unions":              "UNION SELECT 1 ",
		"pragmas":             "PRAGMA a = 1; ",
		"sets":                "SET a = 1; ",
		"transactions":        "BEGIN; SAVEPOINT a; COMMIT AND CHAIN; ",
		"temp tables":         "CREATE TEMP TABLE a (b int); ",
		"catalog names":       "FROM information_schema.tables, ",
		"quoted calls":        `"f"(`,
		"word operators":      "a LIKE (",
		"set_config":          "set_config(",
		"updates":             "UPDATE t SET a = 1 WHERE ",
		"with updates":        "WITH a AS (UPDATE t SET ",
		"with column lists":   "(WITH a (",
		"with lists":          "(WITH a AS (SELECT 1), b (c, ",
		"not like":            "x NOT LIKE (",
		"keyword constructs":  "CAST(COALESCE(",
		"commit chains":       "COMMIT AND ",
		"user":                "user, ",
		"ambiguous brackets":  "[a(] ",
		"unterminated things": "'a",
	}
	for name, unit := range units {
		body := strings.Repeat(unit, n/len(unit))
		for _, d := range []Dialect{DialectAny, DialectPostgres, DialectSQLite} {
			done := make(chan Statement, 1)
			start := time.Now()
			go func() {
				assignedColumns("UPDATE t SET "+body, d)
				done <- inspectDialect("SELECT "+body, d)
			}()
			select {
			case st := <-done:
				checkInvariants(t, "SELECT "+body, st)
				if el := time.Since(start); el > time.Second {
					t.Logf("%s, dialect %d: %v", name, d, el)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("%s, dialect %d: too slow", name, d)
			}
		}
	}
}
