package gormcache

import (
	"strings"
	"testing"

	"querycache.dev/sqlinspect"
)

func TestLocalSetConfig(t *testing.T) {
	cases := []struct {
		sql  string
		vars []any
		want bool
	}{
		{"SELECT set_config('app.tenant', $1, true)", []any{"a"}, true},
		{"SELECT set_config('app.tenant', 'a', TRUE)", nil, true},
		{"SELECT pg_catalog.set_config('app.tenant', 'a', 'on')", nil, true},
		{"SELECT set_config('app.tenant', $1, $2)", []any{"a", true}, true},
		{"SELECT set_config('app.tenant', $1, $2)", []any{"a", "t"}, true},
		{"SELECT set_config('a', 'x', true), set_config('b', 'y', true)", nil, true},
		{"SELECT set_config('app.tenant', $1, false)", []any{"a"}, false},
		{"SELECT set_config('app.tenant', $1, $2)", []any{"a", false}, false},
		{"SELECT set_config('app.tenant', $1, $2)", []any{"a"}, false},
		{"SELECT set_config('a', 'x', true), set_config('b', 'y', false)", nil, false},
		{"SELECT set_config('app.tenant', ?, true)", []any{"a"}, true},
		{"SELECT set_config('app.tenant', 'a', ?)", []any{true}, false}, // '?' is not PostgreSQL's placeholder
		{"SELECT set_config('a', 'x', true) -- , false", nil, false},
		{"SELECT set_config('a', 'x', true) /* */", nil, false},
		{`SELECT "set_config"('a', 'x', false)`, nil, false},
		{"SELECT set_config('a', $$x$$, true)", nil, false},
		{"SELECT set_config('a', E'x\\', false) ', true)", nil, false},
		{"SELECT set_config('a', 'it''s, false', true)", nil, true},
		{"SELECT set_config('a', concat('x', 'y'), true)", nil, true},
		{"SELECT set_config('a', 'x')", nil, false},
		{"SELECT set_config('a', 'x', true", nil, false},
		{"SELECT 1", nil, false},
		{"SELECT my_set_config('a', 'x', true)", nil, false},
	}
	for _, c := range cases {
		if got := localSetConfig(c.sql, c.vars); got != c.want {
			t.Errorf("localSetConfig(%q, %v) = %v; want %v", c.sql, c.vars, got, c.want)
		}
	}
}

// FuzzLocalSetConfig: the scanner never panics, and it answers true only
// for text that calls set_config.
func FuzzLocalSetConfig(f *testing.F) {
	for _, s := range []string{
		"SELECT set_config('app.tenant', $1, true)",
		"SELECT set_config('a', 'it''s, false', true)",
		"SELECT set_config('a', concat('x', 'y'), true), set_config('b', $2, $3)",
		"SELECT set_config('a', E'x\\', false) ', true)",
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, sql string, v bool) {
		got := localSetConfig(sql, []any{"x", v, "on"})
		if got && !strings.Contains(strings.ToLower(sql), "set_config") {
			t.Fatalf("%q: local set_config without set_config", sql)
		}
	})
}

func TestSQLTxStateStep(t *testing.T) {
	type step struct {
		sql    string
		failed bool
		open   bool
	}
	cases := []struct {
		name   string
		sqlite bool
		steps  []step
	}{
		{"begin commit", true, []step{{"BEGIN", false, true}, {"COMMIT", false, false}}},
		{"begin rollback", false, []step{{"START TRANSACTION", false, true}, {"ROLLBACK", false, false}}},
		{"savepoint opens on sqlite", true, []step{{"SAVEPOINT a", false, true}, {"SAVEPOINT b", false, true}, {"RELEASE b", false, true}, {"ROLLBACK TO a", false, true}, {"RELEASE a", false, false}}},
		{"outer release keeps it open", true, []step{{"SAVEPOINT a", false, true}, {"SAVEPOINT b", false, true}, {"RELEASE a", false, true}, {"COMMIT", false, false}}},
		{"savepoint inside begin", true, []step{{"BEGIN", false, true}, {"SAVEPOINT a", false, true}, {"RELEASE a", false, true}, {"COMMIT", false, false}}},
		{"failed commit keeps sqlite open", true, []step{{"BEGIN", false, true}, {"COMMIT", true, true}, {"ROLLBACK", false, false}}},
		{"failed commit ends postgres", false, []step{{"BEGIN", false, true}, {"COMMIT", true, false}}},
		{"failed rollback means none", true, []step{{"BEGIN", false, true}, {"ROLLBACK", true, false}}},
		{"failed text with begin counts it", false, []step{{"BEGIN; UPDATE t SET a = 1; COMMIT", true, true}}},
		{"begin and commit in one text", true, []step{{"BEGIN; UPDATE t SET a = 1; COMMIT", false, false}}},
		{"savepoint does not open postgres", false, []step{{"SAVEPOINT a", true, false}}},
	}
	for _, c := range cases {
		var s sqlTxState
		for i, st := range c.steps {
			s.step(sqlinspect.Inspect(st.sql), st.failed, c.sqlite)
			if s.open != st.open {
				t.Errorf("%s: after step %d (%q, failed=%v): open=%v; want %v", c.name, i, st.sql, st.failed, s.open, st.open)
			}
		}
	}
}
