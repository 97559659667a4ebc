package gormcache_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
)

// h24ManyTables creates n tables with names of about 60 bytes and
// returns one valid SELECT reading all of them (a UNION ALL, within
// SQLite's limit of 500 terms).
func h24ManyTables(t *testing.T, e *h24Env, tag string, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s_tenant_table_with_a_rather_long_name_number_%06d", tag, i)
		must(t, e.db.Exec("CREATE TABLE "+name+" (id INTEGER PRIMARY KEY)").Error)
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("SELECT id FROM " + name)
	}
	return b.String()
}

// README ("Does caching pay?"): "At most 1000 shapes are counted one by
// one ..., and at most 2 KiB of each text is kept, so a flood of distinct
// SQL cannot grow memory." The shape's SQL is cut at MaxShapeSQL, but its
// Tables (shapes.go recordShape: slices.Clone(ev.Tables), never bounded)
// keep every table the text names: a 20 KB statement reading 300 tables
// leaves 18 KB of names in its shape (a 1 MB one, about 1 MB), so 1000 such
// shapes keep 1000 times that, and the
// debug page's JSON (and each table cell of the HTML) carries all of it.
// Expected: a shape keeps a bounded list of tables (as it keeps a bounded
// text), e.g. no more bytes of table names than MaxShapeSQL.
func TestHostile24ObsShapeTablesBounded(t *testing.T) {
	e := h24Setup(t)
	sql := h24ManyTables(t, e, "a", 300)
	var rows []map[string]any
	tx := e.db.Scopes(gormcache.Cacheable()).Raw(sql).Scan(&rows)
	must(t, tx.Error)
	t.Logf("statement of %d bytes: err %v, served %+v", len(sql), tx.Error, gormcache.CacheResult(tx))
	var sh *gormcache.ShapeStats
	for _, s := range e.plugin.Shapes() {
		if strings.HasPrefix(s.SQL, "SELECT id FROM a_tenant") {
			s := s
			sh = &s
		}
	}
	if sh == nil {
		t.Fatalf("no shape for the statement")
	}
	tableBytes := 0
	for _, name := range sh.Tables {
		tableBytes += len(name)
	}
	if !sh.Truncated || len(sh.SQL) > gormcache.MaxShapeSQL {
		t.Errorf("shape SQL: %d bytes, truncated %v", len(sh.SQL), sh.Truncated)
	}
	_, body := e.page(t, "/?format=json")
	var snap debugpage.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); err != nil {
		t.Fatal(err)
	}
	if tableBytes > gormcache.MaxShapeSQL {
		t.Errorf("one shape keeps %d table names (%d bytes) although its text is cut at %d bytes; the debug page's JSON is %d bytes for one statement",
			len(sh.Tables), tableBytes, gormcache.MaxShapeSQL, len(body))
	}
}

// The Debug log line of a statement (visibility_log.go) cuts the SQL at
// maxLoggedSQL (200 bytes: "cut at maxLoggedSQL bytes ... a hostile name
// cannot flood a log") but writes every table, joined, with no bound: a
// valid statement reading 300 tables gives a log line of about 19 KB,
// longer statements proportionally more.
// Expected: the tables attribute is bounded too.
func TestHostile24ObsSlogTablesAttrBounded(t *testing.T) {
	e := h24Setup(t)
	sql := h24ManyTables(t, e, "b", 300)
	var rows []map[string]any
	must(t, e.db.Scopes(gormcache.Cacheable()).Raw(sql).Scan(&rows).Error)
	longest := 0
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, "gormcache ") && len(line) > longest {
			longest = len(line)
		}
	}
	if longest == 0 {
		t.Fatalf("no gormcache log line:\n%.2000s", e.log.String())
	}
	if longest > 4096 {
		t.Errorf("a gormcache Debug log line is %d bytes long (the sql attribute is cut at 200 bytes; the tables attribute is not)", longest)
	}
}

// A flood of distinct shapes: past MaxShapes the rest go to "(other)";
// the shapes counted first keep their counts (they are never evicted by
// the flood), and the page stays bounded. This passes: kept as cover.
func TestHostile24ObsShapeFloodBounded(t *testing.T) {
	e := h24Setup(t)
	must(t, e.db.Exec("CREATE TABLE h24 (id INTEGER PRIMARY KEY, v TEXT)").Error)
	must(t, e.db.Exec("INSERT INTO h24 (id, v) VALUES (1, 'x')").Error)
	useful := "SELECT * FROM h24 WHERE id = ?"
	for i := 0; i < 3; i++ {
		var rows []map[string]any
		must(t, e.db.Scopes(gormcache.Cacheable()).Raw(useful, 1).Scan(&rows).Error)
	}
	for i := 0; i < gormcache.MaxShapes+500; i++ {
		var rows []map[string]any
		must(t, e.db.Scopes(gormcache.Cacheable()).Raw(fmt.Sprintf("SELECT * FROM h24 WHERE id = ? AND %d = %d", i, i), 1).Scan(&rows).Error)
	}
	shapes := e.plugin.Shapes()
	if len(shapes) > gormcache.MaxShapes+1 {
		t.Errorf("%d shapes, want at most %d", len(shapes), gormcache.MaxShapes+1)
	}
	var kept, other bool
	for _, s := range shapes {
		if s.SQL == useful && s.Hits == 2 && s.Misses == 1 {
			kept = true
		}
		if s.SQL == gormcache.OtherStats && s.Misses+s.Hits > 0 {
			other = true
		}
	}
	if !kept || !other {
		t.Errorf("useful shape kept %v, (other) bucket used %v", kept, other)
	}
	code, body := e.page(t, "/")
	if code != 200 || len(body) > 2<<20 {
		t.Errorf("debug page: %d, %d bytes", code, len(body))
	}
}
