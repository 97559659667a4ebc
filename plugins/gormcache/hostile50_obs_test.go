package gormcache_test

import (
	"strings"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestHostile50ObsSQLiteQuotedValueInParensShown: SQLite reads a
// double-quoted word that names no column as a string (DQS), and
// MaskLiterals masks it where a value goes after an operator, LIKE or in
// an IN list, but not when the value is wrapped in parentheses or passed
// to a function: `email = ("ann@example.com")`, `email =
// lower("ann@example.com")`, `instr(email, "ann@example.com") > 0`. The
// statements below are read by SQLite as comparisons with that string
// (they return the row), and the address reaches the debug page's query
// shapes and the slog Debug line, which promise "never a value".
func TestHostile50ObsSQLiteQuotedValueInParensShown(t *testing.T) {
	e := h24Setup(t)
	must(t, e.db.Exec("CREATE TABLE h50_users (id INTEGER PRIMARY KEY, email TEXT)").Error)
	must(t, e.db.Exec("INSERT INTO h50_users (id, email) VALUES (1, 'ann@example.com'), (2, 'bob@example.com')").Error)
	for _, sql := range []string{
		`SELECT id FROM h50_users WHERE email = ("ann@example.com")`,
		`SELECT id FROM h50_users WHERE email = lower("ANN@example.com")`,
		`SELECT id FROM h50_users WHERE instr(email, "ann@") > 0`,
		`SELECT id FROM h50_users WHERE email = coalesce(NULL, "ann@example.com")`,
	} {
		var direct []int
		must(t, e.db.Raw(sql).Scan(&direct).Error) // uncached: SQLite reads the quoted word as a string
		if len(direct) != 1 || direct[0] != 1 {
			t.Fatalf("%s: the database returned %v; want [1] (DQS off?)", sql, direct)
		}
		for i := 0; i < 2; i++ {
			var ids []int
			must(t, e.db.Scopes(gormcache.Cacheable()).Raw(sql).Scan(&ids).Error)
		}
	}
	_, body := e.page(t, "/?format=json")
	_, html := e.page(t, "/")
	for _, c := range []struct{ what, text string }{{"debug page JSON", body}, {"debug page HTML", html}, {"slog", e.log.String()}} {
		seen := map[string]bool{}
		for _, line := range strings.Split(c.text, "\n") {
			i := strings.Index(strings.ToLower(line), "ann@")
			if i < 0 {
				continue
			}
			// One report per statement: the text around the value.
			around := line[max(0, i-40):min(len(line), i+30)]
			if !seen[around] {
				seen[around] = true
				t.Errorf("%s shows a value: ...%s...", c.what, around)
			}
		}
	}
}
