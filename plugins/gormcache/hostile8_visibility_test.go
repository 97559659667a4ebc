package gormcache_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

// Hostile review of issue 8's log lines and reports: values spelled in a
// raw statement's text (not bound) must not reach them, as the slog
// observer's own doc promises (loggedSQL masks string literals).

type h8LockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *h8LockedBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *h8LockedBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestHostile8SlogMasksEveryLiteral: PostgreSQL spells string literals
// also as $$...$$ / $tag$...$tag$ (dollar quoting); maskLiterals masks
// only single-quoted ones.
func TestHostile8SlogMasksEveryLiteral(t *testing.T) {
	t.Parallel()
	buf := &h8LockedBuf{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, databases[1], stores[0], querycache.Options{Logger: log})
	must(t, e.db.AutoMigrate(&H8Item{}))
	must(t, e.db.Create(&H8Item{ID: 1, Name: "x", Qty: 1}).Error)
	cached := gormcache.Cacheable()
	for _, sql := range []string{
		"SELECT id FROM h8_items WHERE name <> 'secret-single'",
		"SELECT id FROM h8_items WHERE name <> E'secret-escape\\'s'",
		"SELECT id FROM h8_items WHERE name <> $$secret-dollar$$",
		"SELECT id FROM h8_items WHERE name <> $tag$secret-tagged$tag$",
	} {
		var ids []uint
		must(t, e.db.Scopes(cached).Raw(sql).Scan(&ids).Error)
		must(t, e.db.Scopes(cached).Raw(sql).Scan(&ids).Error)
	}
	out := buf.String()
	if !strings.Contains(out, "h8_items") {
		t.Fatalf("nothing logged at Debug:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "secret") {
			t.Errorf("a literal reached the log: %s", line)
		}
	}
}

// TestHostile8StaleFindingMasksLiterals: the sampler's StaleFinding.SQL
// (Freshness().Recent, the debug page, OnStale) and its Warn line carry
// the statement's text as is: a literal spelled in a raw statement is
// there, although the slog observer masks it.
func TestHostile8StaleFindingMasksLiterals(t *testing.T) {
	forEachDatabaseSerial(t, func(t *testing.T, e *env) {
		gormcache.BreakForTest(e.plugin, "update")
		must(t, e.db.AutoMigrate(&H8Item{}))
		must(t, e.db.Create(&H8Item{ID: 1, Name: "x", Qty: 1}).Error)
		cached := gormcache.Cacheable()
		q := func() error {
			var its []H8Item
			return e.db.Scopes(cached).Raw("SELECT id, name, qty FROM h8_items WHERE name <> 'alice@example.com'").Scan(&its).Error
		}
		mustHit(t, e, "raw", q)
		must(t, e.db.Model(&H8Item{ID: 1}).Update("qty", 2).Error) // not invalidated
		must(t, q())
		gormcache.WaitSamplerForTest(e.plugin)
		r := e.plugin.Freshness()
		if r.Stale == 0 {
			t.Fatalf("no stale finding (the test has no teeth): %+v", r)
		}
		for _, f := range r.Recent {
			if strings.Contains(f.SQL, "alice") {
				t.Errorf("a literal in a stale finding: %q", f.SQL)
			}
		}
	}, gormcache.SampleFreshness(gormcache.SamplerOptions{Rate: 1, Grace: 50 * time.Millisecond}))
}
