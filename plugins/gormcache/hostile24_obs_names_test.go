package gormcache_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"querycache.dev/plugins/debugpage"
	"querycache.dev/plugins/gormcache"
)

// Tables with hostile names (invalid UTF-8, HTML and attribute breakers,
// newline, ANSI escape, right-to-left override, quotes, 100 KB), read and
// written through the plugin: the scrape answers 200, the debug page
// escapes every name and SQL text in its HTML and stays valid UTF-8, its
// JSON parses, and every slog record (text handler) stays on one line.
// This passes: kept as cover.
func TestHostile24ObsHostileTableNames(t *testing.T) {
	e := h24Setup(t)
	names := []string{"\xff\xfe", "<script>alert(1)</script>", `"><img src=x onerror=alert(1)>`, "a\nb",
		"\x1b[31mred\x1b[0m", "t\u202egnp.exe", `x'); DROP TABLE y; --`, strings.Repeat("L", 100<<10)}
	for _, n := range names {
		if err := e.db.Exec("CREATE TABLE " + quoteIdent(n) + " (id INTEGER PRIMARY KEY, v TEXT)").Error; err != nil {
			t.Fatalf("create %.40q: %v", n, err)
		}
		must(t, e.db.Exec("INSERT INTO "+quoteIdent(n)+" (id, v) VALUES (1, ?)", "<i>v</i>\n\x00").Error)
		for i := 0; i < 2; i++ {
			must(t, e.h24Rows(n).Error)
		}
		must(t, e.db.Exec("UPDATE "+quoteIdent(n)+" SET v = 'w' WHERE id = 1").Error)
		must(t, e.h24Rows(n).Error)
		var rows []map[string]any
		_ = e.db.Scopes(gormcache.Cacheable()).Table(n).Find(&rows).Error
	}
	if code, body := e.scrape(t); code != 200 {
		t.Errorf("scrape: %d %.300s", code, body)
	}
	_, html := e.page(t, "/")
	for _, bad := range []string{"<script>alert", "<img src=x", "onerror=alert(1)>"} {
		if strings.Contains(html, bad) {
			t.Errorf("the HTML holds %q unescaped", bad)
		}
	}
	if !utf8.ValidString(html) {
		t.Errorf("the HTML is not valid UTF-8")
	}
	_, js := e.page(t, "/?format=json")
	var snap debugpage.Snapshot
	if err := json.Unmarshal([]byte(js), &snap); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if !utf8.ValidString(js) || strings.Contains(js, "<script>") {
		t.Errorf("JSON not valid UTF-8 or holds <script>")
	}
	for i, line := range strings.Split(strings.TrimSuffix(e.log.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("slog line %d is not a record of its own: %.200q", i, line)
		}
		if strings.Contains(line, "\x1b") {
			t.Errorf("slog line %d holds a raw ANSI escape: %.200q", i, line)
		}
	}
	if len(js) > 4<<20 || len(html) > 4<<20 {
		t.Errorf("page sizes: HTML %d, JSON %d bytes", len(html), len(js))
	}
}
