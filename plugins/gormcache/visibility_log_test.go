package gormcache_test

import (
	"log/slog"
	"testing"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// With Debug on, a marked statement gives one line, the plugin's, and a
// miss's line says why it missed (issue 8: the reason for every miss is
// visible): the engine's own "querycache hit"/"querycache miss" line is not
// written for the plugin's lookups.
func TestVisibilitySlogMissReasonOneLine(t *testing.T) {
	h := &captured{level: slog.LevelDebug}
	db, _ := visDB(t, nil, querycache.Options{Logger: slog.New(h)})
	h.records() // the set-up's lines

	find := func() {
		t.Helper()
		var a VisAuthor
		if err := db.Scopes(gormcache.Cacheable()).Where("name = ?", "ann").First(&a).Error; err != nil {
			t.Fatal(err)
		}
	}
	find() // absent
	find() // hit
	if err := db.Model(&VisAuthor{}).Where("id = ?", 1).Update("name", "ann").Error; err != nil {
		t.Fatal(err)
	}
	find() // stale: the table was written

	recs := h.records()
	var lookups []map[string]string
	for _, r := range recs {
		switch r["msg"] {
		case "querycache hit", "querycache miss":
			t.Fatalf("the engine logged the plugin's lookup too: %v", r)
		case "gormcache hit", "gormcache miss":
			lookups = append(lookups, r)
		}
	}
	want := []struct{ outcome, reason string }{{"miss", "absent"}, {"hit", ""}, {"miss", "stale"}}
	if len(lookups) != len(want) {
		t.Fatalf("lines %v, want %d", lookups, len(want))
	}
	for i, w := range want {
		if r := lookups[i]; r["outcome"] != w.outcome || r["reason"] != w.reason {
			t.Fatalf("line %d: %v, want outcome %q reason %q", i, r, w.outcome, w.reason)
		}
	}
}

// records returns every record kept (the engine's too), as attribute maps.
func (c *captured) records() []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]string
	for _, r := range c.recs {
		m := map[string]string{"msg": r.Message}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		out = append(out, m)
	}
	c.recs = nil
	return out
}

// The Debug line masks every literal a raw statement spells, numbers too
// (sqlinspect.MaskLiterals), and keeps its names and placeholders.
func TestVisibilitySlogMasksNumbers(t *testing.T) {
	h := &captured{level: slog.LevelDebug}
	db, _ := visDB(t, nil, querycache.Options{Logger: slog.New(h)})
	h.records()
	var as []VisAuthor
	if err := db.Scopes(gormcache.Cacheable()).Raw("SELECT id FROM vis_authors WHERE id <> 424242 AND name <> ?", "x").Scan(&as).Error; err != nil {
		t.Fatal(err)
	}
	recs := h.statementRecords()
	if len(recs) != 1 || recs[0]["sql"] != "SELECT id FROM vis_authors WHERE id <> ? AND name <> ?" {
		t.Fatalf("records %v, want the statement with its number masked", recs)
	}
}
