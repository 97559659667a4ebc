package gormcache_test

import (
	"strings"
	"testing"

	"querycache.dev/plugins/gormcache"
)

type H50Session struct {
	Token string `gorm:"primaryKey"`
	User  string
}

// TestHostile50ObsInvalidateDebugLineSpellsPrimaryKey: an object's version
// name spells its primary key (v:obj:<table>:<pk>), which is why the
// plugin's Debug line, the sampler's findings and the debug page's pending
// versions show it hidden (keys.Namespace.Redact: "the form for logs,
// traces and pages, which must not spell bound values (a table keyed by
// session tokens or e-mail addresses would put them there)"). The
// engine's own Debug line of every delivered invalidation logs the names
// as they are (querycache/invalidate.go: c.debug(ctx, "querycache
// invalidate", "versions", names)): with the logger at Debug, updating a
// row of a table keyed by session tokens writes the token to the log.
func TestHostile50ObsInvalidateDebugLineSpellsPrimaryKey(t *testing.T) {
	e := h24Setup(t)
	must(t, e.db.AutoMigrate(&H50Session{}))
	const token = "tok-5ecret-ann"
	must(t, e.db.Create(&H50Session{Token: token, User: "ann"}).Error)
	var s H50Session
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&s, "token = ?", token).Error)
	must(t, e.db.Scopes(gormcache.Cacheable()).First(&s, "token = ?", token).Error)
	must(t, e.db.Model(&H50Session{Token: token}).Update("user", "bob").Error)
	must(t, e.db.Delete(&H50Session{Token: token}).Error)
	out := e.log.String()
	if !strings.Contains(out, "h50_sessions") {
		t.Fatalf("nothing logged at Debug about the table:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "5ecret") {
			t.Errorf("the primary key reached the log: %s", line)
		}
	}
}
