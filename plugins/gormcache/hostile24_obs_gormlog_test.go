package gormcache_test

import (
	"strings"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// GORM's logger shows each statement once, with at most one outcome
// comment before its SQL, whatever the statement is: a *gorm.DB run
// twice, Preload sub-queries, Count after Find, a hostile table name, a
// SQL text holding "*/" and "?" in a literal. The comment must not make
// the logged text hold a second comment or lose the bound value. (GORM's
// ExplainSQL binds the value into the '?' inside the string literal, with
// or without the plugin: that is GORM's, not checked here.) This passes:
// kept as cover.
func TestHostile24ObsGormLoggerMarks(t *testing.T) {
	e := h24Setup(t)
	must(t, e.db.Exec(`CREATE TABLE "<b>x</b>" (id INTEGER PRIMARY KEY, v TEXT)`).Error)
	must(t, e.db.Exec(`INSERT INTO "<b>x</b>" (id, v) VALUES (1, 'a')`).Error)
	start := len(e.gormLog.String())
	q := e.db.Scopes(gormcache.Cacheable()).Table("<b>x</b>").Where("v <> '*/ ? /*' AND id = ?", 424242)
	var rows []map[string]any
	must(t, q.Find(&rows).Error)
	must(t, q.Find(&rows).Error)
	var n int64
	must(t, q.Count(&n).Error)
	must(t, q.Count(&n).Error)
	out := e.gormLog.String()[start:]
	marked := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "SELECT") {
			continue
		}
		if c := strings.Count(line, "/* querycache:"); c > 1 {
			t.Errorf("a GORM log line holds %d outcome comments: %s", c, line)
		} else if c == 1 {
			marked++
		}
		if !strings.Contains(line, "424242") {
			t.Errorf("a GORM log line lost the bound value: %s", line)
		}
	}
	if marked < 4 {
		t.Errorf("%d marked SELECT lines, want 4:\n%s", marked, out)
	}
	t.Logf("%s", out)
}
