package gormcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type VisAuthor struct {
	ID    uint
	Name  string
	Posts []VisPost `gorm:"foreignKey:AuthorID"`
}

type VisPost struct {
	ID       uint
	AuthorID uint
	Title    string
	Notes    []VisNote `gorm:"foreignKey:PostID"`
}

type VisNote struct {
	ID     uint
	PostID uint
	Body   string
}

// logLines captures what GORM's standard logger prints.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// take returns the lines printed since the last take.
func (l *logLines) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

// visDB opens a SQLite database with a few rows and registers the plugin
// over a memory store.
func visDB(t testing.TB, lg logger.Interface, copts querycache.Options, opts ...gormcache.Option) (*gorm.DB, *querycache.Cache) {
	t.Helper()
	if lg == nil {
		lg = logger.Discard
	}
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(t.TempDir(), "vis.db")+"?_txlock=immediate"), &gorm.Config{Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(&VisAuthor{}, &VisPost{}, &VisNote{}); err != nil {
		t.Fatal(err)
	}
	a := VisAuthor{ID: 1, Name: "ann", Posts: []VisPost{{ID: 1, Title: "one", Notes: []VisNote{{ID: 1, Body: "n"}}}, {ID: 2, Title: "two"}}}
	if err := db.Create(&a).Error; err != nil {
		t.Fatal(err)
	}
	copts.Store = querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 16 << 20})
	cache, err := querycache.New(copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	if err := db.Use(gormcache.New(cache, opts...)); err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		t.Cleanup(func() { sqlDB.Close() })
	}
	return db, cache
}

const (
	hitComment  = "/* querycache: hit, not run on the database */ SELECT"
	missComment = "/* querycache: miss (absent) */ SELECT"
)

// expectLines checks that each printed line holds its wanted text, and
// that a line wanting "" shows no querycache comment.
func expectLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d lines %q, want %d", what, len(got), got, len(want))
	}
	for i, w := range want {
		if w == "" {
			if strings.Contains(got[i], "querycache") {
				t.Fatalf("%s: line %d %q is marked; the plugin did not look at it", what, i, got[i])
			}
			continue
		}
		if !strings.Contains(got[i], w) {
			t.Fatalf("%s: line %d %q, want it to contain %q", what, i, got[i], w)
		}
	}
}

// GORM's own logger shows what the cache did for each marked statement,
// and nothing for the others.
func TestVisibilityLoggerMarks(t *testing.T) {
	out := &logLines{}
	lg := logger.New(out, logger.Config{LogLevel: logger.Info, ParameterizedQueries: true})
	db, _ := visDB(t, lg, querycache.Options{})
	out.take()

	var a VisAuthor
	cached := db.Scopes(gormcache.Cacheable())
	if err := cached.First(&a, 1).Error; err != nil {
		t.Fatal(err)
	}
	expectLines(t, "miss", out.take(), missComment)
	a = VisAuthor{}
	if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil || a.Name != "ann" {
		t.Fatal(a, err)
	}
	lines := out.take()
	expectLines(t, "hit", lines, hitComment)
	if strings.Contains(lines[0], "ann") {
		t.Fatalf("ParameterizedQueries no longer honoured: %q", lines[0])
	}
	if err := db.First(&a, 1).Error; err != nil {
		t.Fatal(err)
	}
	expectLines(t, "unmarked", out.take(), "")

	// A refusal and a bypass, with their reasons.
	var n int64
	if err := db.Scopes(gormcache.Cacheable()).Raw("SELECT count(*) + abs(random()) * 0 FROM vis_authors").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	expectLines(t, "refused", out.take(), "/* querycache: refused (nondeterministic) */ SELECT")
	err := db.Transaction(func(tx *gorm.DB) error {
		return tx.Scopes(gormcache.Cacheable()).First(&a, 1).Error
	})
	if err != nil {
		t.Fatal(err)
	}
	expectLines(t, "transaction", out.take(), "/* querycache: bypass (transaction) */ SELECT")

	// An error is shown by the logger's error line, still marked: a cached
	// empty result is a hit too.
	for i, want := range []string{missComment, hitComment} {
		err := db.Scopes(gormcache.Cacheable()).First(&a, 99).Error
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Fatalf("%d: %v", i, err)
		}
		lines := out.take()
		expectLines(t, "not found", lines, want)
		if !strings.Contains(lines[0], "record not found") {
			t.Fatalf("%q: want the error line", lines[0])
		}
	}
}

// Preload: each statement is marked by its own outcome; an unmarked
// sub-query is not marked with its parent's, nor the reverse.
func TestVisibilityLoggerPreload(t *testing.T) {
	out := &logLines{}
	lg := logger.New(out, logger.Config{LogLevel: logger.Info})
	db, _ := visDB(t, lg, querycache.Options{}, gormcache.CacheModels(&VisAuthor{}))
	out.take()

	var as []VisAuthor
	// The authors are cached by model; their posts and notes are not.
	for i, want := range []string{missComment, hitComment} {
		if err := db.Preload("Posts.Notes").Find(&as).Error; err != nil {
			t.Fatal(err)
		}
		expectLines(t, fmt.Sprint("model-cached parent ", i), out.take(), "", "", want)
	}
	// Only the notes' sub-query is marked (posts are not cached by model).
	// Sub-queries run, and are logged, before their parent.
	mark := func(tx *gorm.DB) *gorm.DB { return tx.Scopes(gormcache.Cacheable()) }
	var ps []VisPost
	for i, want := range []string{missComment, hitComment} {
		if err := db.Preload("Notes", mark).Find(&ps).Error; err != nil {
			t.Fatal(err)
		}
		expectLines(t, fmt.Sprint("marked sub-query ", i), out.take(), want, "")
	}
}

// db.Debug(), LogMode, Silent, a logger given in a Session and GORM's
// slog logger; the line still names the caller.
func TestVisibilityLoggerModes(t *testing.T) {
	out := &logLines{}
	lg := logger.New(out, logger.Config{LogLevel: logger.Warn})
	db, _ := visDB(t, lg, querycache.Options{})
	out.take()
	var a VisAuthor
	if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
		t.Fatal(err)
	}
	expectLines(t, "warn level", out.take()) // nothing: not slow, no error
	a = VisAuthor{}
	if err := db.Debug().Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
		t.Fatal(err)
	}
	lines := out.take()
	expectLines(t, "Debug()", lines, hitComment)
	if !strings.Contains(lines[0], "visibility_test.go:") {
		t.Fatalf("%q: want the caller's file and line", lines[0])
	}
	a = VisAuthor{}
	if err := db.Session(&gorm.Session{Logger: db.Logger.LogMode(logger.Silent)}).Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
		t.Fatal(err)
	}
	expectLines(t, "silent", out.take())

	other := &logLines{}
	mine := logger.New(other, logger.Config{LogLevel: logger.Info})
	a = VisAuthor{}
	if err := db.Session(&gorm.Session{Logger: mine}).Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
		t.Fatal(err)
	}
	expectLines(t, "Session logger", other.take(), hitComment)

	h := &captured{level: slog.LevelInfo}
	sl := logger.NewSlogLogger(slog.New(h), logger.Config{LogLevel: logger.Info})
	a = VisAuthor{}
	if err := db.Session(&gorm.Session{Logger: sl}).Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recs) != 1 {
		t.Fatalf("slog logger: %d records", len(h.recs))
	}
	var sql string
	h.recs[0].Attrs(func(at slog.Attr) bool {
		for _, g := range at.Value.Group() {
			if g.Key == "sql" {
				sql = g.Value.String()
			}
		}
		return true
	})
	if !strings.HasPrefix(sql, hitComment) {
		t.Fatalf("slog logger's sql %q, want it marked as a hit", sql)
	}
}

func TestFromCache(t *testing.T) {
	db, _ := visDB(t, nil, querycache.Options{}, gormcache.ReadsInTransactions())
	cached := func() *gorm.DB { return db.Scopes(gormcache.Cacheable()) }
	check := func(what string, tx *gorm.DB, want gormcache.Served) {
		t.Helper()
		if tx.Error != nil {
			t.Fatalf("%s: %v", what, tx.Error)
		}
		got := gormcache.CacheResult(tx)
		if got != want {
			t.Fatalf("%s: CacheResult %+v, want %+v", what, got, want)
		}
		if from := gormcache.FromCache(tx); from != (want.Statements > 0 && want.Hits == want.Statements) {
			t.Fatalf("%s: FromCache %v with %+v", what, from, got)
		}
	}
	miss := gormcache.Served{Outcome: gormcache.OutcomeMiss, Reason: querycache.MissAbsent, Statements: 1}
	hit := gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 1, Hits: 1}

	var a VisAuthor
	check("First miss", cached().First(&VisAuthor{}, 1), miss)
	check("First hit", cached().First(&a, 1), hit)
	check("First unmarked", db.First(&VisAuthor{}, 1), gormcache.Served{})
	var as []VisAuthor
	check("Find miss", cached().Find(&as), miss)
	check("Find hit", cached().Find(&as), hit)
	var name string
	check("Scan miss", cached().Raw("SELECT name FROM vis_authors WHERE id = ?", 1).Scan(&name), miss)
	check("Scan hit", cached().Raw("SELECT name FROM vis_authors WHERE id = ?", 1).Scan(&name), hit)
	var n int64
	check("Count miss", cached().Model(&VisPost{}).Count(&n), miss)
	check("Count hit", cached().Model(&VisPost{}).Count(&n), hit)

	// FirstOrInit reads on the statement it returns. FirstOrCreate and
	// FindInBatches read on copies made with Session (GORM's
	// finisher_api.go), which what they return does not see: they report
	// nothing, never another call's outcome (FromCache's known limit).
	cached().FirstOrInit(&a, VisAuthor{ID: 1})
	check("FirstOrInit hit", cached().FirstOrInit(&a, VisAuthor{ID: 1}), hit)
	cached().FirstOrCreate(&a, VisAuthor{ID: 1})
	check("FirstOrCreate, its read a hit", cached().FirstOrCreate(&a, VisAuthor{ID: 1}), gormcache.Served{})
	batches := func(*gorm.DB, int) error { return nil }
	cached().FindInBatches(&as, 10, batches)
	check("FindInBatches, its reads hits", cached().FindInBatches(&as, 10, batches), gormcache.Served{})

	// Rows and Row return no *gorm.DB: ask the statement they ran on.
	for i, want := range []gormcache.Served{miss, hit} {
		q := cached().Model(&VisPost{}).Where("author_id = ?", 1)
		rows, err := q.Rows()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		rows.Close()
		check(fmt.Sprint("Rows ", i), q, want)
	}
	q := cached().Model(&VisPost{}).Select("title").Where("id = ?", 2)
	if err := q.Row().Scan(&name); err != nil || name != "two" {
		t.Fatal(name, err)
	}
	check("Row", q, miss)

	// The same statement run again unmarked reports nothing.
	q2 := db.Model(&VisPost{}).Where("id = ?", 1)
	check("reused, marked", q2.Scopes(gormcache.Cacheable()).Count(&n), miss)

	// Preload: every statement of the call counts.
	check("Preload, posts missed", cached().Preload("Posts").Find(&as), gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 2, Hits: 1})
	check("Preload hit", cached().Preload("Posts").Find(&as), gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 2, Hits: 2})
	check("nested Preload", cached().Preload("Posts.Notes").Find(&as), gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 3, Hits: 2})
	check("nested Preload hit", cached().Preload("Posts.Notes").Find(&as), gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 3, Hits: 3})
	unmarkedPosts := func(tx *gorm.DB) *gorm.DB { return tx.Scopes(gormcache.NoCache()) }
	check("Preload of an unmarked association", cached().Preload("Posts", unmarkedPosts).Find(&as), gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 2, Hits: 1})
	markedPosts := func(tx *gorm.DB) *gorm.DB { return tx.Scopes(gormcache.Cacheable()) }
	check("unmarked parent, marked Preload", db.Preload("Posts", markedPosts).Find(&as), gormcache.Served{Statements: 2, Hits: 1})
	// A later call's result does not change an earlier one's.
	first := cached().Preload("Posts").Find(&as)
	check("Preload hit again", first, gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 2, Hits: 2})
	check("later call from its context", db.WithContext(first.Statement.Context).Preload("Posts", unmarkedPosts).Find(&as), gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 2, Hits: 1})
	check("Preload hit, after", first, gormcache.Served{Outcome: gormcache.OutcomeHit, Statements: 2, Hits: 2})

	// Transactions: bypassed, or read-only hits with ReadsInTransactions.
	err := db.Transaction(func(tx *gorm.DB) error {
		check("tx hit", tx.Scopes(gormcache.Cacheable()).First(&VisAuthor{}, 1), hit)
		check("tx miss", tx.Scopes(gormcache.Cacheable()).Find(&as, 2), gormcache.Served{Outcome: gormcache.OutcomeBypass, Reason: "transaction_miss", Statements: 1})
		if err := tx.Create(&VisAuthor{Name: "bob"}).Error; err != nil {
			return err
		}
		check("tx wrote", tx.Scopes(gormcache.Cacheable()).First(&VisAuthor{}, 1), gormcache.Served{Outcome: gormcache.OutcomeBypass, Reason: "transaction_wrote", Statements: 1})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if gormcache.FromCache(nil) || gormcache.FromCache(db) {
		t.Fatal("FromCache of nil or of a *gorm.DB that ran nothing")
	}
}

// captured is a slog.Handler keeping its records.
type captured struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (c *captured) Enabled(_ context.Context, l slog.Level) bool { return l >= c.level }
func (c *captured) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *captured) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captured) WithGroup(string) slog.Handler      { return c }

// statementRecords returns the plugin's records, as attribute maps.
func (c *captured) statementRecords() []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]string
	for _, r := range c.recs {
		if !strings.HasPrefix(r.Message, "gormcache ") {
			continue
		}
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

// One Debug line per marked statement, with the SQL's text but never a
// value.
func TestVisibilitySlog(t *testing.T) {
	h := &captured{level: slog.LevelDebug}
	db, _ := visDB(t, nil, querycache.Options{Logger: slog.New(h)})
	h.statementRecords()

	long := "SELECT id, name FROM vis_authors WHERE name <> 'literal-secret' AND name <> ? AND name <> 'é' " +
		"/* " + strings.Repeat("ééé ", 60) + " */"
	var as []VisAuthor
	for i := 0; i < 2; i++ {
		if err := db.Scopes(gormcache.Cacheable()).Raw(long, "bound-secret").Scan(&as).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Scopes(gormcache.Cacheable()).Raw("SELECT id FROM vis_authors WHERE name = ? AND random() > 0", "bound-secret").Scan(&as).Error; err != nil {
		t.Fatal(err)
	}
	recs := h.statementRecords()
	if len(recs) != 3 {
		t.Fatalf("records %v, want 3", recs)
	}
	for i, want := range []string{"miss", "hit", "refused"} {
		r := recs[i]
		if r["outcome"] != want || r["msg"] != "gormcache "+want || r["tables"] != "vis_authors" {
			t.Fatalf("record %d: %v, want outcome %s and tables", i, r, want)
		}
		sql := r["sql"]
		if strings.Contains(sql, "secret") {
			t.Fatalf("record %d logs a value: %q", i, sql)
		}
		if !strings.HasPrefix(sql, "SELECT id") {
			t.Fatalf("record %d: sql %q", i, sql)
		}
	}
	for _, r := range recs[:2] {
		if r["key"] == "" || r["bytes"] == "" || r["key"] != recs[0]["key"] {
			t.Fatalf("%v: want the key and size", r)
		}
		sql := r["sql"]
		if len(sql) > 200+len("...") || !strings.HasSuffix(sql, "...") || !strings.Contains(sql, "'?'") {
			t.Fatalf("sql %q (%d bytes): want it masked and cut at 200 bytes", sql, len(sql))
		}
		if !strings.ContainsRune(sql, 'é') || strings.ContainsRune(sql, '\uFFFD') || !isValidUTF8(sql) {
			t.Fatalf("sql %q cut inside a rune", sql)
		}
	}
	if recs[0]["duration"] == "" {
		t.Fatalf("miss %v: want its duration", recs[0])
	}
	if recs[2]["reason"] != "nondeterministic" {
		t.Fatalf("refusal %v: want its reason", recs[2])
	}

	// A lookup by primary key is keyed by the key's value: the line's key
	// hides it (keys.Namespace.Redact).
	if err := db.Create(&VisAuthor{ID: 7314159, Name: "pk"}).Error; err != nil {
		t.Fatal(err)
	}
	h.statementRecords()
	for i := 0; i < 2; i++ {
		if err := db.Scopes(gormcache.Cacheable()).First(&VisAuthor{}, 7314159).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range h.statementRecords() {
		if strings.Contains(r["key"], "7314159") || !strings.Contains(r["key"], ":vis_authors:?:") {
			t.Fatalf("%v: the key logs the primary key's value", r)
		}
	}

	// Above Debug: no line.
	h.level = slog.LevelInfo
	if err := db.Scopes(gormcache.Cacheable()).Raw(long, "bound-secret").Scan(&as).Error; err != nil {
		t.Fatal(err)
	}
	if recs := h.statementRecords(); len(recs) != 0 {
		t.Fatalf("records at Info level: %v", recs)
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// With Debug disabled the log observer allocates nothing: a hit costs the
// same allocations as with no logger at all.
func TestVisibilitySlogDisabledAllocs(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	allocs := func(l *slog.Logger) float64 {
		db, _ := visDB(t, nil, querycache.Options{Logger: l})
		hit := visPKRead(t, db)
		hit()
		return testing.AllocsPerRun(200, hit)
	}
	none, disabled := allocs(nil), allocs(quiet)
	if disabled > none {
		t.Fatalf("a hit allocates %.1f times with Debug disabled, %.1f with no logger", disabled, none)
	}
}

func BenchmarkVisibilityHit(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	for _, c := range []struct {
		name string
		l    *slog.Logger
	}{{"nolog", nil}, {"debugoff", quiet}} {
		b.Run(c.name, func(b *testing.B) {
			db, _ := visDB(b, nil, querycache.Options{Logger: c.l})
			var a VisAuthor
			db.Scopes(gormcache.Cacheable()).First(&a, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a = VisAuthor{}
				if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// On every database the comment leaves the dialector's Explain binding
// the values to their placeholders ($n on PostgreSQL, ? on SQLite).
func TestVisibilityLoggerDialects(t *testing.T) {
	forEachDatabase(t, func(t *testing.T, e *env) {
		if err := e.db.Create(&Author{Name: "ann"}).Error; err != nil {
			t.Fatal(err)
		}
		out := &logLines{}
		db := e.db.Session(&gorm.Session{Logger: logger.New(out, logger.Config{LogLevel: logger.Info})})
		for _, want := range []string{missComment, hitComment} {
			var a Author
			if err := db.Scopes(gormcache.Cacheable()).Where("name = ?", "ann").Where("id > ?", 0).First(&a).Error; err != nil {
				t.Fatal(err)
			}
			lines := out.take()
			expectLines(t, e.dialect, lines, want)
			if !strings.Contains(lines[0], "name = 'ann'") && !strings.Contains(lines[0], `name = "ann"`) || !strings.Contains(lines[0], "id > 0") {
				t.Fatalf("%s: %q: the values are not at their placeholders", e.dialect, lines[0])
			}
		}
	})
}

// A hit's event stays on the statement's stack: the plugin's own observers
// (the shapes, FromCache's visit, the log line, the span) take it in place,
// and only the options' observers (Observe) get a pooled copy (query.go
// done). Were it handed to a function value, every hit would allocate the
// outcome; with an observer from the options it must not either.
func TestVisibilityHitEventNotOnHeap(t *testing.T) {
	if testenv.Race {
		t.Skip("under the race detector sync.Pool drops what it is given, and allocation counts say nothing (TestVisibilityHitOutcomeEscape runs instead)")
	}
	allocs := func(opts ...gormcache.Option) float64 {
		db, _ := visDB(t, nil, querycache.Options{}, opts...)
		hit, build := visPKRead(t, db), visPKRead(t, db.Session(&gorm.Session{DryRun: true}))
		hit()
		hit()
		return testing.AllocsPerRun(200, hit) - testing.AllocsPerRun(200, build)
	}
	seen := 0
	plain := allocs()
	observed := allocs(gormcache.Observe(func(context.Context, *gormcache.Event) { seen++ }))
	t.Logf("a hit allocates %.1f more than GORM's DryRun build; %.1f with an observer", plain, observed)
	if seen == 0 {
		t.Fatal("the observer saw no event")
	}
	if plain > hitAllocsOverDryRun || observed > hitAllocsOverDryRun {
		t.Fatalf("a hit allocates %.1f (%.1f with an observer) more than GORM's DryRun build of it, want at most %d: has the event moved to the heap (go build -gcflags=-m says moved to heap: o, in query.go)?", plain, observed, hitAllocsOverDryRun)
	}
}

// visPKRead returns a marked read of author 1 by primary key, into a zero
// struct each time.
func visPKRead(t testing.TB, db *gorm.DB) func() {
	var a VisAuthor
	return func() {
		a = VisAuthor{}
		if err := db.Scopes(gormcache.Cacheable()).First(&a, 1).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// hitAllocsOverDryRun is what a primary-key hit allocates beyond GORM's
// DryRun build of the statement, as measured (gorm v1.31): one fewer (the
// hit's visit for FromCache is one; the build allocates two a hit does
// not). An outcome moved to the heap makes it 0.
const hitAllocsOverDryRun = -1

// The outcome a statement fills (query.go: queryCallback's and
// rowCallback's o) stays on their stack, as the compiler decides it:
// checked in its escape analysis, which the race detector leaves alone
// (TestVisibilityHitEventNotOnHeap counts allocations, without -race).
func TestVisibilityHitOutcomeEscape(t *testing.T) {
	t.Parallel() // a child `go build`: no heap, server or catalog of its own to keep alone (30 s of a serial phase)
	if testing.Short() {
		t.Skip("builds the package with -gcflags=-m")
	}
	out, err := exec.Command("go", "build", "-gcflags=-m", "-o", os.DevNull, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -gcflags=-m: %v\n%s", err, out)
	}
	moved := regexp.MustCompile(`(?m)^\S*query\.go:\d+:\d+: moved to heap: o$`)
	if m := moved.FindAll(out, -1); len(m) > 0 {
		t.Fatalf("a statement's outcome is allocated on every call: %s", bytes.Join(m, []byte("; ")))
	}
	if !bytes.Contains(out, []byte("query.go")) {
		t.Fatalf("no escape analysis of query.go in the compiler's output:\n%s", out)
	}
}
