package gormcache_test

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
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

// TestHostile50ObsWarnLineSpellsObjectKey: the engine's Warn lines about a
// lookup name its key as it is (querycache's k.label(): the gormcache
// plugin sets no Label), and an object key spells the primary key
// (o:<db>:<table>:<pk>:<fingerprint>). A lookup by primary key whose
// entry the memory store cannot hold warns "an entry is larger than the
// memory store can hold" with key=o:...:tok-5ecret-ann:...: at Warn, the
// level on by default (and to slog.Default when the cache has no logger),
// where the plugin's own lines hide it (keys.Namespace.Redact). The store
// fetch/put failure and corrupt entry warnings take the same argument.
func TestHostile50ObsWarnLineSpellsObjectKey(t *testing.T) {
	var buf lockedBuf
	dsn := "file:" + filepath.Join(t.TempDir(), "h50.db") + "?_busy_timeout=10000&_journal_mode=WAL"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	must(t, err)
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	cache, err := querycache.New(querycache.Options{
		Store:  querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 64 << 10}),
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	must(t, err)
	t.Cleanup(func() { cache.Close() })
	must(t, db.Use(gormcache.New(cache)))
	must(t, db.AutoMigrate(&H50Session{}))
	const token = "tok-5ecret-ann"
	must(t, db.Create(&H50Session{Token: token, User: strings.Repeat("x", 200<<10)}).Error)
	var s H50Session
	must(t, db.Scopes(gormcache.Cacheable()).First(&s, "token = ?", token).Error)
	if len(s.User) != 200<<10 {
		t.Fatalf("read %d bytes", len(s.User))
	}
	if cache.Stats().Refusals["too_large_for_store"] == 0 {
		t.Fatalf("the entry was not refused for its size (the test has no teeth): %v", cache.Stats().Refusals)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "5ecret") {
			t.Errorf("the primary key reached the log: %s", line)
		}
	}
}
