package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"

	"querycache.dev/internal/testenv"
)

// benchSummary is the numbers of the summary line the bench prints:
// "throughput A -> B req/s (..), statements per request X -> Y, hit ratio Z%".
type benchSummary struct {
	stmtsUncached, stmtsCached, hitRatio float64
}

var summaryLine = regexp.MustCompile(`statements per request ([0-9.]+) -> ([0-9.]+), hit ratio ([0-9.]+)%`)

func parseSummary(t *testing.T, out string) benchSummary {
	t.Helper()
	m := summaryLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line (statements per request ..., hit ratio ...%%) in the output:\n%s", out)
	}
	f := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return benchSummary{f(m[1]), f(m[2]), f(m[3])}
}

// runBenchCmd runs "querycache bench args..." as main does and returns its
// output and its standard error; it fails the test unless the exit status
// is 0.
func runBenchCmd(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"bench"}, args...), &out, &errOut)
	if code != exitOK {
		t.Fatalf("bench %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out.String(), errOut.String())
	}
	t.Logf("bench %q:\n%s", args, out.String())
	return out.String(), errOut.String()
}

// checkReport checks that the HTML report exists, is self-contained, and
// holds the table's two columns and the SVG plots.
func checkReport(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the report was not written: %v", err)
	}
	page := string(b)
	for _, want := range []string{"<svg", "<polyline", `<th class="u">uncached</th><th class="c">cached</th>`, "latency by percentile", "</html>"} {
		if !strings.Contains(page, want) {
			t.Errorf("the report has no %q", want)
		}
	}
	if n := strings.Count(page, "<svg"); n < 3 {
		t.Errorf("the report has %d plots, want 3", n)
	}
	for _, bad := range []string{"<script", "http://cdn", "https://", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("the report is not self-contained: it has %q", bad)
		}
	}
}

// TestBenchNews runs the built-in news scenario briefly with a few users:
// the report is written with its plots and both columns, every page sends
// its two statements without the cache, fewer with it, and the cache
// answers some of them.
func TestBenchNews(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report.html")
	out, progressOut := runBenchCmd(t, "-users", "3", "-ramp", "200ms", "-duration", "2s", "-articles", "400",
		"-write-ratio", "0.05", "-out", report, "-progress", "on")
	// -progress on, to a pipe (not a terminal): a line a second per phase,
	// and no terminal control characters.
	if !regexp.MustCompile(`(?m)^uncached .*users 3/3\s+requests \d+`).MatchString(progressOut) ||
		!regexp.MustCompile(`(?m)^cached .*requests \d+`).MatchString(progressOut) || strings.ContainsAny(progressOut, "\r\033") {
		t.Errorf("progress lines on stderr:\n%q", progressOut)
	}
	for _, want := range []string{"p50", "p90", "p99", "req/s", "statements/req", "hit ratio", "homepage", "article", "author", "publish (w)", "comment (w)", "report: " + report} {
		if !strings.Contains(out, want) {
			t.Errorf("the output has no %q", want)
		}
	}
	// Every read page is two statements without the cache; the exact
	// "2.00 -> " proves the statements are counted per request.
	for _, page := range []string{"homepage", "article", "author"} {
		if !regexp.MustCompile(`(?m)^` + page + `\s+\d+ -> \d+\s+.*\s2\.00 -> [01]\.\d\d\s`).MatchString(out) {
			t.Errorf("%s: want 2.00 statements per request uncached and fewer than 2 cached", page)
		}
	}
	s := parseSummary(t, out)
	if !(s.stmtsCached < s.stmtsUncached) {
		t.Errorf("statements per request %v uncached, %v cached: want fewer with the cache", s.stmtsUncached, s.stmtsCached)
	}
	if s.hitRatio <= 0 {
		t.Errorf("hit ratio %v%%, want above 0", s.hitRatio)
	}
	if strings.Contains(out, "requests failed") {
		t.Errorf("requests failed")
	}
	checkReport(t, report)
}

// TestBenchUserDatabase runs the bench against a database of the user's
// (a SQLite file, and a PostgreSQL schema) with a --queries file.
func TestBenchUserDatabase(t *testing.T) {
	queries := filepath.Join(t.TempDir(), "queries.txt")
	if err := os.WriteFile(queries, []byte(`# weight name: SQL
3 by_id: SELECT id, title FROM items WHERE id = {{int 1 50}}
1 newest: SELECT id, title FROM items ORDER BY id DESC LIMIT 10
-- a comment
1 count_cheap: SELECT COUNT(*) FROM items WHERE title <> 'update'
`), 0o644); err != nil {
		t.Fatal(err)
	}
	setup := func(t *testing.T, db *sql.DB) {
		t.Helper()
		if _, err := db.Exec("CREATE TABLE items (id integer PRIMARY KEY, title text NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 50; i++ {
			if _, err := db.Exec(fmt.Sprintf("INSERT INTO items (id, title) VALUES (%d, 'item %d')", i, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(t *testing.T, dsn string) {
		report := filepath.Join(t.TempDir(), "user.html")
		out, _ := runBenchCmd(t, "--dsn", dsn, "--queries", queries, "-users", "2", "-ramp", "100ms", "-duration", "1s", "-out", report, "-progress", "off")
		for _, want := range []string{"by_id", "newest", "count_cheap", "3 queries from"} {
			if !strings.Contains(out, want) {
				t.Errorf("the output has no %q", want)
			}
		}
		s := parseSummary(t, out)
		if s.stmtsUncached != 1 || !(s.stmtsCached < 1) || s.hitRatio <= 0 {
			t.Errorf("statements per request %v -> %v, hit ratio %v%%: want 1 -> below 1, above 0", s.stmtsUncached, s.stmtsCached, s.hitRatio)
		}
		checkReport(t, report)
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "user.db")
		db, err := sql.Open("sqlite3", path)
		if err != nil {
			t.Fatal(err)
		}
		setup(t, db)
		db.Close()
		check(t, path)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testenv.PostgresSchema(t)
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		setup(t, db)
		check(t, dsn)
		// The sessions were read-only: the table is as it was.
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM items").Scan(&n); err != nil || n != 50 {
			t.Errorf("items: %d rows (%v), want 50", n, err)
		}
	})
}

// TestBenchSlowerLines checks the comparison behind "SLOWER with the
// cache" on synthetic numbers: a kind is reported when its cached p50 or
// p99 is above the uncached one (equal is not slower), aggregates other
// than "all" are not, and a kind that ran in one phase only is not compared.
func TestBenchSlowerLines(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	k := func(name string, n int, p50, p99 float64) kindStats {
		return kindStats{Name: name, N: n, P50: ms(p50), P99: ms(p99)}
	}
	uncached := []kindStats{
		k("faster", 10, 2, 10),
		k("p50only", 10, 1, 10),
		k("p99only", 10, 1, 10),
		k("both", 10, 1, 10),
		k("equal", 10, 1, 10),
		k("gone", 0, 0, 0),
		{Name: "write", Write: true, N: 10, P50: ms(.2), P99: ms(1)},
		{Name: "reads", Aggregate: true, N: 40, P50: ms(1), P99: ms(10)},
		{Name: "all", Aggregate: true, N: 50, P50: ms(1), P99: ms(10)},
	}
	cached := []kindStats{
		k("faster", 10, 0.1, 9),
		k("p50only", 10, 1.5, 9),
		k("p99only", 10, 0.5, 12),
		k("both", 10, 3, 30),
		k("equal", 10, 1, 10),
		k("gone", 5, 9, 9),
		{Name: "write", Write: true, N: 10, P50: ms(.3), P99: ms(1)},
		{Name: "reads", Aggregate: true, N: 40, P50: ms(2), P99: ms(20)},
		{Name: "all", Aggregate: true, N: 50, P50: ms(.5), P99: ms(11)},
	}
	got := slowerLines(uncached, cached)
	want := []string{
		"SLOWER with the cache: p50only: p50 1ms -> 1.5ms (+50%)",
		"SLOWER with the cache: p99only: p99 10ms -> 12ms (+20%)",
		"SLOWER with the cache: both: p50 1ms -> 3ms (+200%), p99 10ms -> 30ms (+200%)",
		"SLOWER with the cache: write (write): p50 200µs -> 300µs (+50%)",
		"SLOWER with the cache: all requests: p99 10ms -> 11ms (+10%)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("slower lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := slowerLines(uncached[:1], cached[:1]); len(got) != 0 {
		t.Errorf("a faster kind reported slower: %q", got)
	}

	// The percentiles behind them: nearest rank.
	lats := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {.5, 5}, {.9, 9}, {.99, 10}, {1, 10}} {
		if got := percentile(lats, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}

// TestBenchQueriesFile checks the --queries parser: templates become bound
// parameters, and anything but a single read-only SELECT is refused with
// its line number.
func TestBenchQueriesFile(t *testing.T) {
	qs, err := parseQueries("# c\n\n2.5 one: SELECT * FROM t WHERE id = {{int 3 7}} AND x = {{ int -1 1 }};\n1 two: WITH a AS (SELECT 1) SELECT * FROM a\n1 lit: SELECT 'delete; drop' FROM t\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 3 || qs[0].name != "one" || qs[0].weight != 2.5 || qs[0].sql != "SELECT * FROM t WHERE id = ? AND x = ?" ||
		len(qs[0].args) != 2 || qs[0].args[0] != (intParam{3, 7}) || qs[0].args[1] != (intParam{-1, 1}) {
		t.Fatalf("parsed %+v", qs)
	}
	for _, c := range []struct{ text, want string }{
		{"", "no query"},
		{"x one: SELECT 1", "line 1: want"},
		{"0 one: SELECT 1", "weight above 0"},
		{"1 SELECT 1", "line 1: want"},
		{"1 two words: SELECT 1", "NAME one word"},
		{"1 a: SELECT 1\n1 a: SELECT 2", `"a" is already used on line 1`},
		{"1 a: INSERT INTO t VALUES (1)", `not "INSERT"`},
		{"1 a: WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", `"DELETE"`},
		{"1 a: SELECT 1; SELECT 2", "one statement a line"},
		{"1 a: SELECT * FROM t FOR UPDATE", "locking read"},
		{"1 a: SELECT {{int 5 1}}", "upper bound is below"},
		{"1 a: SELECT {{str x}}", "unknown template"},
		{"1 a: SELECT {{int 1 99999999999999999999}}", "not a 64-bit integer"},
		{"1 a: SELECT {{int -9223372036854775808 9223372036854775807}}", "too wide"},
		{"1 a: ;", "no statement"},
	} {
		_, err := parseQueries(c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.text, err, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBenchProgress checks the progress line's modes: off, and auto on
// something that is not a terminal, print nothing; on a terminal the line
// is rewritten in place (\r, erase to the end of the line) and ends with a
// newline.
func TestBenchProgress(t *testing.T) {
	for _, mode := range []string{"off", "auto"} {
		var b syncBuffer
		p := newProgress(&b, mode)
		stop := p.run(func(time.Time) string { return "line" })
		stop()
		if p.enabled || b.String() != "" {
			t.Errorf("-progress %s to a buffer: enabled %v, printed %q", mode, p.enabled, b.String())
		}
	}
	for _, term := range []bool{false, true} {
		var b syncBuffer
		p := &progress{w: &b, enabled: true, terminal: term, every: time.Millisecond}
		n := 0
		stop := p.run(func(time.Time) string { n++; return fmt.Sprintf("line %d", n) })
		for !strings.Contains(b.String(), "line 3") {
			time.Sleep(time.Millisecond)
		}
		stop()
		got := b.String()
		if term && (!strings.HasPrefix(got, "\rline 1\033[K\rline 2\033[K") || !strings.HasSuffix(got, "\033[K\n")) {
			t.Errorf("on a terminal: %q", got)
		}
		if !term && !strings.HasPrefix(got, "line 1\nline 2\nline 3\n") {
			t.Errorf("not on a terminal: %q", got)
		}
	}
}

// TestBenchUsage checks exit status 2 and a message for usage mistakes,
// before anything runs.
func TestBenchUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-users", "0"}, "-users is 0"},
		{[]string{"-duration", "0s"}, "-duration is 0s"},
		{[]string{"-write-ratio", "1.5"}, "-write-ratio is 1.5"},
		{[]string{"-progress", "maybe"}, "-progress is"},
		{[]string{"--dsn", "x.db"}, "--dsn needs --queries"},
		{[]string{"--queries", "q.txt"}, "give --dsn too"},
		{[]string{"--dsn", "x.db", "--queries", "q", "-write-ratio", "0.1"}, "the bench only reads"},
		{[]string{"--dsn", filepath.Join(t.TempDir(), "none.db"), "--queries", filepath.Join(t.TempDir(), "none.txt")}, "--queries"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"bench"}, c.args...), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, errOut.String(), c.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"bench", "-h"}, &out, &errOut); code != exitOK || !strings.Contains(errOut.String(), "-write-ratio") {
		t.Errorf("bench -h: exit %d, %q", code, errOut.String())
	}
}

// FuzzBenchQueries feeds the --queries parser arbitrary files: it never
// panics, and whatever it accepts is a single read-only statement whose
// templates have all become bound parameters with ordered bounds.
func FuzzBenchQueries(f *testing.F) {
	for _, s := range []string{
		"1 a: SELECT 1",
		"2.5 one: SELECT * FROM t WHERE id = {{int 3 7}}\n# c\n1 two: WITH a AS (SELECT 1) SELECT * FROM a",
		"1 a: ;",
		"1 a: (",
		"1 a: SELECT '{{int 1 2}}'",
		"1 a: SELECT {{int 9223372036854775807 9223372036854775807}}",
		"1 a: SELECT 'it''s'; DELETE FROM t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		qs, err := parseQueries(text)
		if err != nil {
			return
		}
		for _, q := range qs {
			if strings.Contains(q.sql, "{{") || q.weight <= 0 || q.name == "" {
				t.Fatalf("accepted %+v", q)
			}
			if err := checkReadOnly(q.sql); err != nil {
				t.Fatalf("accepted %q, which the check refuses: %v", q.sql, err)
			}
			for _, p := range q.args {
				if p.hi < p.lo || p.hi-p.lo+1 <= 0 {
					t.Fatalf("accepted bounds %v", p)
				}
			}
			q.bind(rand.New(rand.NewPCG(1, 2))) // never panics
		}
	})
}
