package gormcache

import (
	"slices"
	"testing"

	"querycache.dev/sqlinspect"
)

func TestDDLRunsExpressions(t *testing.T) {
	for sql, want := range map[string]bool{
		"ALTER TABLE t ADD COLUMN n integer DEFAULT f()":                                   true,
		"alter table only t alter column v type bigint using f(v)":                         true,
		"ALTER DOMAIN d ADD CONSTRAINT c CHECK (f(VALUE))":                                 true,
		"CREATE INDEX i ON t (f(v))":                                                       true,
		"CREATE TABLE t2 AS SELECT f()":                                                    true,
		"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT g()'":                     false,
		"CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ SELECT g() $$":                   false,
		"CREATE OR REPLACE TRIGGER tr AFTER UPDATE ON t EXECUTE FUNCTION f()":              false,
		"CREATE CONSTRAINT TRIGGER tr AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()": false,
		"CREATE EVENT TRIGGER e ON ddl_command_end EXECUTE FUNCTION f()":                   false,
		"CREATE OPERATOR #+# (LEFTARG = integer, RIGHTARG = integer, FUNCTION = f)":        false,
		"ALTER FUNCTION f() VOLATILE":                                                      false,
		"DROP TABLE t":                                                                     false,
		"COMMENT ON TABLE t IS 'f()'":                                                      false,
	} {
		toks, ok := lexSQL(sql)
		if !ok {
			t.Fatalf("%q: not lexed", sql)
		}
		if got := ddlRunsExpressions(toks); got != want {
			t.Errorf("ddlRunsExpressions(%q) = %v, want %v", sql, got, want)
		}
	}
}

func TestPostgresWhen(t *testing.T) {
	for _, c := range []struct {
		def   string
		ok    bool
		calls []string
	}{
		{"CREATE TRIGGER h BEFORE UPDATE ON public.s FOR EACH ROW WHEN (h20_w(new.id)) EXECUTE FUNCTION noop()", true, []string{"h20_w"}},
		{"CREATE TRIGGER h AFTER UPDATE ON public.s FOR EACH ROW WHEN ((old.v IS DISTINCT FROM new.v) AND lower(new.n) = 'x') EXECUTE PROCEDURE noop('a', 'b')", true, []string{"lower"}},
		{"CREATE TRIGGER \"WHEN (\" AFTER UPDATE ON s FOR EACH ROW WHEN (a.f(new.v)) EXECUTE FUNCTION noop()", true, []string{"f"}},
		{"CREATE TRIGGER h AFTER UPDATE ON s FOR EACH STATEMENT EXECUTE FUNCTION noop()", false, nil},
		{"garbage", false, nil},
	} {
		st, ok := postgresWhen(c.def)
		if ok != c.ok {
			t.Errorf("postgresWhen(%q): ok %v, want %v", c.def, ok, c.ok)
			continue
		}
		var names []string
		for _, f := range st.Functions {
			names = append(names, f.Name)
		}
		if ok && !slices.Equal(names, c.calls) {
			t.Errorf("postgresWhen(%q): calls %v, want %v", c.def, names, c.calls)
		}
	}
	// A condition that cannot be read makes the trigger one that may do
	// anything.
	var tr trigger
	tr.addWhen(sqlinspect.Statement{}, false)
	if !tr.all {
		t.Error("addWhen(not found) left the trigger harmless")
	}
}

func TestLookupName(t *testing.T) {
	for in, want := range map[string]string{"Next_No": "next_no", `"Next""No"`: `next"no`, "`x`": "x"} {
		if got := lookupName(lexTok{name: in}); got != want {
			t.Errorf("lookupName(%s) = %q, want %q", in, got, want)
		}
	}
}
