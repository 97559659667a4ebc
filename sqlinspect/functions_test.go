package sqlinspect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fn is shorthand for an unqualified call.
func fn(name string, args int) Func { return Func{Name: name, Args: args} }

func TestFunctions(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  string
		d    Dialect
		want []Func
	}{
		{"aggregates and calls", `SELECT count(*), now(), lower(name), sum(x) FROM users`, DialectAny,
			[]Func{fn("count", 1), fn("lower", 1), fn("now", 0), fn("sum", 1)}},
		{"gorm count distinct", `SELECT count(DISTINCT("name")) FROM "users"`, DialectPostgres, []Func{fn("count", 1)}},
		{"window functions", `SELECT row_number() OVER (PARTITION BY a ORDER BY b), rank() OVER w, count(*) FILTER (WHERE x > 1) FROM t WINDOW w AS (ORDER BY c)`,
			DialectAny, []Func{fn("count", 1), fn("rank", 0), fn("row_number", 0)}},
		{"within group", `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t`, DialectPostgres, []Func{fn("percentile_cont", 1)}},
		{"aggregate order by", `SELECT string_agg(x, ',' ORDER BY a, b) FROM t`, DialectPostgres, []Func{fn("string_agg", 2)}},
		{"quoted and qualified", `SELECT "myfunc"(x), public.f(x, y), pg_catalog.now(), "Sch"."G"(1), db.s.h() FROM t`, DialectPostgres,
			[]Func{fn("myfunc", 1), {"pg_catalog", "now", 0, false}, {"public", "f", 2, false}, {"s", "h", 0, false}, {"sch", "g", 1, true}}},
		{"quoted names keep their case", `SELECT "Lower"(x), "lower"(y), U&"Upper"(z), "count"(*) FROM t`, DialectPostgres,
			[]Func{fn("count", 1), fn("lower", 1), {"", "lower", 1, true}, {"", "upper", 1, true}}},
		{"sqlite quoted calls", "SELECT `random`(), [f](1) FROM t", DialectSQLite, []Func{fn("f", 1), fn("random", 0)}},
		{"keyword named functions", `SELECT left(s, 2), right(s, 3), replace(s, 'a', 'b'), date('now'), "coalesce"(a, b), public.coalesce(a) FROM t`,
			DialectAny, []Func{fn("coalesce", 2), fn("date", 1), fn("left", 2), fn("replace", 3), fn("right", 2), {"public", "coalesce", 1, false}}},
		{"sqlite functions", `SELECT like('a%', x), glob('*', y), substr(s, 1, 2), ifnull(a, b) FROM t`, DialectSQLite,
			[]Func{fn("glob", 2), fn("ifnull", 2), fn("like", 2), fn("substr", 3)}},
		{"nested", `SELECT f(g(h(1), 2), (3, 4)) FROM t`, DialectAny, []Func{fn("f", 2), fn("g", 2), fn("h", 1)}},
		{"subquery arguments", `SELECT max((SELECT 1)), f((SELECT a FROM b), 2), coalesce((SELECT max(id) FROM tags), 0) FROM t`, DialectAny,
			[]Func{fn("f", 2), fn("max", 1)}},
		{"in subquery", `SELECT * FROM t WHERE a IN (SELECT f(b) FROM u)`, DialectAny, []Func{fn("f", 1)}},
		{"table functions", `SELECT * FROM generate_series(1, 3) AS g(n) JOIN t x(a, b) ON true, unnest($1) u(v)`, DialectPostgres,
			[]Func{fn("generate_series", 2), fn("unnest", 1)}},
		{"derived table alias", `SELECT * FROM (SELECT 1) s(a), LATERAL f(s.a) q(b)`, DialectPostgres, []Func{fn("f", 1)}},
		{"pragma function", `SELECT name FROM pragma_table_info('users')`, DialectSQLite, []Func{fn("pragma_table_info", 1)}},
		{"insert values", `INSERT INTO t (a, b) VALUES (f(1), g())`, DialectAny, []Func{fn("f", 1), fn("g", 0)}},
		{"insert alias and conflict", `INSERT INTO t AS x (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a`, DialectPostgres, nil},
		{"sqlite insert", "INSERT INTO `t` (`a`,`b`) VALUES (?,?) ON CONFLICT (`a`) DO UPDATE SET `b`=`excluded`.`b` RETURNING `id`", DialectSQLite, nil},
		{"replace into columns", `REPLACE INTO t(a) VALUES (upper(?))`, DialectSQLite, []Func{fn("upper", 1)}},
		{"update set", `UPDATE t SET (a, b) = (SELECT f(1), 2), c = g() WHERE id = 1`, DialectAny, []Func{fn("f", 1), fn("g", 0)}},
		{"cte column lists", `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c), d(x, y) AS (SELECT f(1), 2) SELECT * FROM c, d`,
			DialectAny, []Func{fn("f", 1)}},
		{"set returning function in select", `SELECT unnest(ARRAY[1, 2])`, DialectPostgres, []Func{fn("unnest", 1)}},
		{"current_timestamp with precision", `SELECT current_timestamp(3)`, DialectPostgres, []Func{fn("current_timestamp", 1)}},
		{"set_config", `SELECT set_config('search_path', 'x', false)`, DialectPostgres, []Func{fn("set_config", 3)}},
		{"call", `CALL do_things(1)`, DialectPostgres, []Func{fn("do_things", 1)}},
		{"duplicates", `SELECT lower(a), lower(b), LOWER(c, d) FROM t`, DialectAny, []Func{fn("lower", 1), fn("lower", 2)}},
		// Not calls.
		{"keyword constructs", `SELECT CAST(x AS int), COALESCE(a, b), NULLIF(a, b), GREATEST(1, 2), LEAST(3, 4), ARRAY[1], ARRAY(SELECT 1), ROW(1, 2),
			EXTRACT(YEAR FROM ts), POSITION('a' IN s), SUBSTRING(s FROM 2 FOR 3), SUBSTRING(s FOR 2), TRIM(BOTH ' ' FROM s), TRIM(s),
			OVERLAY(s PLACING 'x' FROM 2), CASE WHEN a THEN b END, GROUPING(a) FROM t`, DialectPostgres, nil},
		{"substring call form", `SELECT substring(s, 2, 3) FROM t`, DialectPostgres, []Func{fn("substring", 3)}},
		{"any all some exists in", `SELECT * FROM t WHERE a = ANY($1) AND b > ALL (SELECT 1) AND c < SOME(ARRAY[1]) AND EXISTS (SELECT 1) AND d IN (1, 2) AND (e, f) IN ((1, 2))`,
			DialectPostgres, nil},
		{"types", `SELECT CAST(x AS numeric(10, 2)), x::varchar(20), y::pg_catalog.numeric(5), CAST(z AS character varying(3)) FROM t`, DialectPostgres, nil},
		{"alias column lists", `SELECT * FROM t AS x(a, b) JOIN u y(c) ON true`, DialectPostgres, nil},
		{"word operators", `SELECT * FROM t WHERE a LIKE (b) AND c NOT ILIKE (d) AND e BETWEEN (1) AND (2) AND f SIMILAR TO ('x') AND g AT TIME ZONE ('UTC') > h AND (i, j) OVERLAPS (k, l)`,
			DialectPostgres, nil},
		{"fetch first", `SELECT * FROM t ORDER BY id FETCH FIRST (5) ROWS ONLY`, DialectPostgres, nil},
		{"grouping sets", `SELECT a FROM t GROUP BY GROUPING SETS ((a), (b))`, DialectPostgres, nil},
		{"operator", `SELECT a OPERATOR(pg_catalog.+) b FROM t`, DialectPostgres, nil},
		{"ddl definitions", `CREATE TABLE t (id bigint DEFAULT nextval('s'), name varchar(20) CHECK (length(name) > 0), u int REFERENCES u(id), PRIMARY KEY (id))`,
			DialectPostgres, nil},
		{"create index expression", `CREATE INDEX i ON t (lower(name)) WHERE f(x)`, DialectPostgres, nil},
		{"create table as", `CREATE TABLE t AS SELECT f(x) FROM s`, DialectPostgres, []Func{fn("f", 1)}},
		{"create view", `CREATE VIEW v (a, b) AS SELECT g(x), 1 FROM s`, DialectPostgres, []Func{fn("g", 1)}},
		{"pragma", `PRAGMA table_info(users)`, DialectSQLite, nil},
		{"vacuum", `VACUUM (VERBOSE, ANALYZE) users`, DialectPostgres, nil},
		{"strings and comments", `SELECT 'f(x)', "x" FROM t -- g(y)`, DialectAny, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := inspectDialect(c.sql, c.d).Functions
			if !slices.Equal(got, c.want) {
				t.Errorf("InspectDialect(%q).Functions\n got  %v\n want %v", c.sql, got, c.want)
			}
		})
	}
}

func TestFunctionsUndecodable(t *testing.T) {
	st := inspectDialect(`SELECT U&"f\0061"(1)`, DialectPostgres)
	if !st.Undetermined || len(st.Functions) != 0 {
		t.Errorf("got %s", show(st))
	}
}

func TestFunctionsDoNotAlias(t *testing.T) {
	b := []byte(`SELECT myfunc(1), s.other(2)`)
	st := Inspect(string(b))
	copy(b, strings.Repeat("x", len(b)))
	if fmt.Sprint(st.Functions) != "[{ myfunc 1 false} {s other 1 false}]" {
		t.Errorf("got %v", st.Functions)
	}
}

func TestNonDeterministicKeywords(t *testing.T) {
	for _, c := range []struct {
		sql  string
		d    Dialect
		want []string
	}{
		{`SELECT CURRENT_USER, SESSION_USER, CURRENT_ROLE, CURRENT_SCHEMA, CURRENT_CATALOG, SYSTEM_USER`, DialectAny,
			l("CURRENT_CATALOG", "CURRENT_ROLE", "CURRENT_SCHEMA", "CURRENT_USER", "SESSION_USER", "SYSTEM_USER")},
		{`SELECT LOCALTIME, LOCALTIMESTAMP, CURRENT_DATE, CURRENT_TIME, CURRENT_TIMESTAMP`, DialectAny,
			l("CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP")},
		{`SELECT * FROM t WHERE owner = user`, DialectPostgres, l("USER")},
		{`SELECT user, count(*) FROM t GROUP BY user`, DialectPostgres, l("USER")},
		// USER is a name after a dot or AS, and everywhere in SQLite.
		{`SELECT t.user, x AS user FROM t`, DialectPostgres, nil},
		{`SELECT * FROM t WHERE owner = user`, DialectSQLite, nil},
		{`SELECT * FROM t WHERE owner = user`, DialectAny, nil},
		{`SELECT user FROM logins`, DialectSQLite, nil},
		{`SELECT "user" FROM t`, DialectPostgres, nil},
	} {
		if got := inspectDialect(c.sql, c.d).NonDeterministic; !slices.Equal(got, c.want) {
			t.Errorf("InspectDialect(%q, %d).NonDeterministic = %q; want %q", c.sql, c.d, got, c.want)
		}
	}
}
