package fragment_test

import (
	"context"
	"errors"
	"html/template"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"querycache.dev/internal/testenv"
	"querycache.dev/plugins/fragment"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/querycache"
)

type User struct {
	ID   uint
	Name string
}

type Post struct {
	ID     uint
	UserID uint `gorm:"index"`
	Title  string
}

// Tag is a table no fragment reads.
type Tag struct {
	ID   uint
	Name string
}

// env is a SQLite database with the GORM plugin on a store, and a page
// template whose "sidebar" fragment shows a user and their posts.
type env struct {
	db    *gorm.DB
	cache *querycache.Cache
	kv    *querycache.KV
	frags *fragment.Cache
	page  *template.Template
	loads atomic.Int32 // calls of the sidebar's loader
}

const pageSrc = `{{define "page"}}<main>{{fragment .Ctx "sidebar" .UserID}}</main>{{end}}` +
	`{{define "sidebar"}}<aside><h2>{{.User.Name}}</h2><ul>{{range .Posts}}<li>{{.Title}}</li>{{end}}</ul></aside>{{end}}`

type pageData struct {
	Ctx    context.Context
	UserID uint
}

type sidebar struct {
	User  User
	Posts []Post
}

type storeKind struct {
	name string
	open func(t *testing.T) (querycache.Store, string) // the store, a key prefix
}

var stores = []storeKind{
	{"memory", func(t *testing.T) (querycache.Store, string) {
		return querycache.NewMemoryStore(querycache.MemoryOptions{MaxBytes: 16 << 20}), ""
	}},
	{"redis", func(t *testing.T) (querycache.Store, string) {
		prefix := testenv.TestPrefix(t) // skips (or fails) when Redis is down
		opt, err := redis.ParseURL(testenv.SharedRedis(t))
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() { c.Close() })
		return querycache.NewRedisStore(c, querycache.RedisOptions{Timeout: 3 * time.Second, InvalidateTimeout: 5 * time.Second}), prefix
	}},
}

// forEachStore runs fn on a fresh env per store.
func forEachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, s))
		})
	}
}

func newEnv(t *testing.T, s storeKind) *env {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "test.db") + "?_busy_timeout=10000&_journal_mode=WAL&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	st, prefix := s.open(t)
	cache, err := querycache.New(querycache.Options{Store: st, Prefix: prefix, DefaultTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	must(t, db.Use(gormcache.New(cache)))
	must(t, db.AutoMigrate(&User{}, &Post{}, &Tag{}))
	must(t, db.Create(&[]User{{ID: 1, Name: "ann"}, {ID: 2, Name: "bob"}}).Error)
	must(t, db.Create(&[]Post{{UserID: 1, Title: "first"}, {UserID: 2, Title: "bob's"}}).Error)
	must(t, db.Create(&Tag{Name: "go"}).Error)

	e := &env{db: db, cache: cache, kv: cache.KV()}
	e.frags, err = fragment.New(e.kv, fragment.Options{})
	must(t, err)
	e.page = template.Must(template.New("page").Funcs(e.frags.FuncMap()).Parse(pageSrc))
	must(t, e.frags.Register("sidebar", e.page, func(ctx context.Context, args ...any) (any, error) {
		e.loads.Add(1)
		var d sidebar
		db := e.db.WithContext(ctx).Scopes(gormcache.Cacheable())
		if err := db.First(&d.User, args[0]).Error; err != nil {
			return nil, err
		}
		err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).Where("user_id = ?", args[0]).Order("id").Find(&d.Posts).Error
		return d, err
	}))
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// render executes the page for user id.
func (e *env) render(t *testing.T, ctx context.Context, id uint) string {
	t.Helper()
	var b strings.Builder
	must(t, e.page.ExecuteTemplate(&b, "page", pageData{Ctx: ctx, UserID: id}))
	return b.String()
}

// expect renders the page for user id and checks the HTML and the number
// of loader calls so far.
func (e *env) expect(t *testing.T, id uint, html string, loads int32) {
	t.Helper()
	if got := e.render(t, context.Background(), id); got != html {
		t.Fatalf("page of user %d:\n got %s\nwant %s", id, got, html)
	}
	if n := e.loads.Load(); n != loads {
		t.Fatalf("the loader ran %d times; want %d", n, loads)
	}
}

const (
	ann1 = `<main><aside><h2>ann</h2><ul><li>first</li></ul></aside></main>`
	bob1 = `<main><aside><h2>bob</h2><ul><li>bob&#39;s</li></ul></aside></main>`
)

func TestRenderedOnceThenCached(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.expect(t, 1, ann1, 1)
		e.expect(t, 1, ann1, 1)
		e.expect(t, 1, ann1, 1)
		if h := e.cache.Stats().Hits; h == 0 {
			t.Fatalf("the cache served no hit")
		}
	})
}

func TestRerenderedAfterWrite(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.expect(t, 1, ann1, 1)
		// A table the loader read by condition.
		must(t, e.db.Model(&Post{}).Where("user_id = ?", 1).Update("title", "edited").Error)
		e.expect(t, 1, `<main><aside><h2>ann</h2><ul><li>edited</li></ul></aside></main>`, 2)
		e.expect(t, 1, `<main><aside><h2>ann</h2><ul><li>edited</li></ul></aside></main>`, 2)
		// The row the loader read by primary key.
		must(t, e.db.Model(&User{ID: 1}).Update("name", "anne").Error)
		e.expect(t, 1, `<main><aside><h2>anne</h2><ul><li>edited</li></ul></aside></main>`, 3)
		// A new row in a table the loader read.
		must(t, e.db.Create(&Post{UserID: 1, Title: "second"}).Error)
		e.expect(t, 1, `<main><aside><h2>anne</h2><ul><li>edited</li><li>second</li></ul></aside></main>`, 4)
	})
}

func TestNotRerenderedAfterUnrelatedWrite(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.expect(t, 1, ann1, 1)
		must(t, e.db.Create(&Tag{Name: "sql"}).Error)
		must(t, e.db.Model(&Tag{}).Where("1 = 1").Update("name", "x").Error)
		e.expect(t, 1, ann1, 1)
		// Another user's row: the loader read users by primary key only.
		must(t, e.db.Model(&User{ID: 2}).Update("name", "bobby").Error)
		e.expect(t, 1, ann1, 1)
	})
}

func TestVaryOnArgumentsAreSeparateEntries(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.expect(t, 1, ann1, 1)
		e.expect(t, 2, bob1, 2)
		e.expect(t, 1, ann1, 2)
		e.expect(t, 2, bob1, 2)
		// A write to user 2's row re-renders user 2's fragment only.
		must(t, e.db.Model(&User{ID: 2}).Update("name", "bobby").Error)
		e.expect(t, 1, ann1, 2)
		e.expect(t, 2, `<main><aside><h2>bobby</h2><ul><li>bob&#39;s</li></ul></aside></main>`, 3)
	})
}

func TestEscapingPreserved(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		must(t, e.db.Model(&User{ID: 1}).Update("name", `<script>alert("x")</script>`).Error)
		want := `<main><aside><h2>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</h2><ul><li>first</li></ul></aside></main>`
		e.expect(t, 1, want, 1) // rendered
		e.expect(t, 1, want, 1) // served from the cache: neither raw nor escaped twice
	})
}

func TestUnmarkedQueryIsNotCached(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var loads atomic.Int32
		tm := template.Must(template.New("p").Funcs(e.frags.FuncMap()).Parse(
			`{{fragment .Ctx "count" "users"}}{{define "count"}}{{.}} users{{end}}`))
		must(t, e.frags.Register("count", tm, func(ctx context.Context, args ...any) (any, error) {
			loads.Add(1)
			var n int64
			err := e.db.WithContext(ctx).Model(&User{}).Count(&n).Error // not marked cacheable
			return n, err
		}))
		for range 3 {
			var b strings.Builder
			must(t, tm.Execute(&b, pageData{Ctx: context.Background()}))
			if b.String() != "2 users" {
				t.Fatalf("got %q", b.String())
			}
		}
		if n := loads.Load(); n != 3 {
			t.Fatalf("a fragment built from an unmarked query was cached: %d loads for 3 renders", n)
		}
	})
}

// A page cached as a whole (querycache.WithCapture, as plugins/httpcache
// does) that embeds a fragment served from the cache depends on what the
// fragment read: a write to it invalidates the page too.
func TestNestedInPageCapture(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		e.expect(t, 1, ann1, 1) // the fragment is cached now

		ctx, cp := querycache.WithCapture(context.Background())
		if got := e.render(t, ctx, 1); got != ann1 || e.loads.Load() != 1 {
			t.Fatalf("got %q after %d loads; want a hit", got, e.loads.Load())
		}
		names, _ := cp.Versions()
		ns := e.cache.Namespace()
		for _, want := range []string{ns.ObjectVersion("users", "1"), ns.TableVersion("posts")} {
			if !slices.Contains(names, want) {
				t.Fatalf("the page's capture holds %q; want %q among them (the fragment's dependencies, on a hit)", names, want)
			}
		}
		if n, why := cp.Untracked(); n != 0 {
			t.Fatalf("the page's capture counts %d untracked reads (%v)", n, why)
		}

		// The page itself cached against its capture.
		pages := 0
		page := func() string {
			t.Helper()
			b, _, err := e.kv.GetOrSetCaptured(context.Background(), "page:/users/1", func(ctx context.Context) ([]byte, error) {
				pages++
				return []byte(e.render(t, ctx, 1)), nil
			})
			must(t, err)
			return string(b)
		}
		if got := page(); got != ann1 || pages != 1 || e.loads.Load() != 1 {
			t.Fatalf("page %q, %d page renders, %d loads; want the cached fragment inside", got, pages, e.loads.Load())
		}
		page()
		if pages != 1 {
			t.Fatalf("the page was rendered %d times; want 1", pages)
		}
		must(t, e.db.Model(&Post{}).Where("user_id = ?", 1).Update("title", "edited").Error)
		want := `<main><aside><h2>ann</h2><ul><li>edited</li></ul></aside></main>`
		if got := page(); got != want || pages != 2 {
			t.Fatalf("after a write to what the fragment read: page %q (%d renders); want %q re-rendered", got, pages, want)
		}
	})
}

func TestLoaderErrorFailsThePage(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		boom := errors.New("boom")
		fail := true
		var loads atomic.Int32
		tm := template.Must(template.New("p").Funcs(e.frags.FuncMap()).Parse(
			`<p>{{fragment .Ctx "flaky"}}</p>{{define "flaky"}}{{.}}{{end}}`))
		must(t, e.frags.Register("flaky", tm, func(ctx context.Context, args ...any) (any, error) {
			loads.Add(1)
			if fail {
				return nil, boom
			}
			return "ok", nil
		}))
		var b strings.Builder
		err := tm.Execute(&b, pageData{Ctx: context.Background()})
		if !errors.Is(err, boom) {
			t.Fatalf("page render error = %v; want the loader's", err)
		}
		fail = false
		b.Reset()
		must(t, tm.Execute(&b, pageData{Ctx: context.Background()}))
		if b.String() != "<p>ok</p>" || loads.Load() != 2 {
			t.Fatalf("got %q after %d loads; the failure must not be cached", b.String(), loads.Load())
		}
	})
}

func TestTemplateErrorFailsThePage(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		tm := template.Must(template.New("p").Funcs(e.frags.FuncMap()).Parse(
			`<p>{{fragment .Ctx "bad"}}</p>{{define "bad"}}{{index . 5}}{{end}}`))
		must(t, e.frags.Register("bad", tm, func(ctx context.Context, args ...any) (any, error) {
			return []int{1}, nil
		}))
		var b strings.Builder
		err := tm.Execute(&b, pageData{Ctx: context.Background()})
		if err == nil || !strings.Contains(err.Error(), `fragment "bad"`) {
			t.Fatalf("page render error = %v; want the fragment's template error", err)
		}
		if st := e.cache.Stats(); st.Hits != 0 {
			t.Fatalf("hits = %d", st.Hits)
		}
	})
}

func TestRenderErrors(t *testing.T) {
	e := newEnv(t, stores[0])
	ctx := context.Background()
	if _, err := e.frags.Render(ctx, "nope"); err == nil {
		t.Fatal("an unregistered fragment rendered")
	}
	//lint:ignore SA1012 testing the nil check
	if _, err := e.frags.Render(nil, "sidebar", 1); err == nil { //nolint:staticcheck
		t.Fatal("a nil context was accepted")
	}
	if _, err := e.frags.Render(ctx, "sidebar", struct{ ID int }{1}); err == nil || !strings.Contains(err.Error(), "plain values") {
		t.Fatalf("a struct argument: %v; want a refusal", err)
	}
	if _, err := e.frags.Render(ctx, "sidebar", make([]any, 17)...); err == nil {
		t.Fatal("17 arguments were accepted")
	}
	if err := e.frags.Register("sidebar", e.page, func(context.Context, ...any) (any, error) { return nil, nil }); err == nil {
		t.Fatal("a fragment was registered twice")
	}
	if err := e.frags.Register("missing", e.page, func(context.Context, ...any) (any, error) { return nil, nil }); err == nil || !strings.Contains(err.Error(), `{{define "missing"}}`) {
		t.Fatalf("a fragment without its template: %v", err)
	}
	if _, err := fragment.New(nil, fragment.Options{}); err == nil {
		t.Fatal("New accepted a nil KV")
	}
}

type userID uint

func TestKeyTellsArgumentsApart(t *testing.T) {
	cases := [][]any{
		{},
		{"a:b"},
		{"a", "b"},
		{"ab"},
		{1},
		{"1"},
		{uint(1)},
		{userID(1)},
		{int64(1)},
		{true},
		{1.0},
		{[]byte("1")},
		{"", ""},
		{""},
	}
	seen := map[string]int{}
	for i, args := range cases {
		k, err := fragment.Key("f", args...)
		must(t, err)
		if j, ok := seen[k]; ok {
			t.Errorf("arguments %#v and %#v share the key %q", cases[j], args, k)
		}
		seen[k] = i
		k2, _ := fragment.Key("f", args...)
		if k2 != k {
			t.Errorf("the key of %#v is not stable", args)
		}
	}
	a, _ := fragment.Key("a", "b")
	b, _ := fragment.Key("ab")
	if a == b {
		t.Error("the name and the arguments run together")
	}
	for _, bad := range []any{nil, struct{}{}, &User{}, []int{1}, map[string]int{}} {
		if _, err := fragment.Key("f", bad); err == nil {
			t.Errorf("Key accepted %#v", bad)
		}
	}
}

// Any string is a vary-on value: newlines, spaces, 10 kB, invalid UTF-8.
// Each gets its own entry on every store, and is served from it.
func TestHostileVaryOnValues(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var loads atomic.Int32
		tm := template.Must(template.New("p").Funcs(e.frags.FuncMap()).Parse(
			`{{fragment .Ctx "echo" .Arg}}{{define "echo"}}[{{len .}}]{{end}}`))
		must(t, e.frags.Register("echo", tm, func(ctx context.Context, args ...any) (any, error) {
			loads.Add(1)
			return args[0], nil
		}))
		values := []string{"", " ", "a b", "a\nb", "a\r\nb", "\x00", "\xff\xfe", strings.Repeat("k", 10<<10), strings.Repeat("k", 10<<10) + "x", "fragment\x00echo\x00"}
		render := func(v string) string {
			t.Helper()
			var b strings.Builder
			must(t, tm.Execute(&b, map[string]any{"Ctx": context.Background(), "Arg": v}))
			return b.String()
		}
		for round := range 2 {
			for i, v := range values {
				want := "[" + strconv.Itoa(len(v)) + "]"
				if got := render(v); got != want {
					t.Fatalf("value %d: %q; want %q", i, got, want)
				}
			}
			if n := loads.Load(); n != int32(len(values)) {
				t.Fatalf("round %d: %d loads for %d distinct values; want one each", round, n, len(values))
			}
		}
	})
}

// A fragment inside a fragment: the outer loader passes its context on in
// the data, the inner fragment's reads become the outer's dependencies,
// and a write to them re-renders both.
func TestNestedFragments(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var outer atomic.Int32
		tm := template.Must(template.New("p").Funcs(e.frags.FuncMap()).Parse(
			`{{define "layout"}}<div>{{.Title}}{{fragment .Ctx "sidebar" .UserID}}</div>{{end}}`))
		must(t, e.frags.Register("layout", tm, func(ctx context.Context, args ...any) (any, error) {
			outer.Add(1)
			return map[string]any{"Ctx": ctx, "Title": "T", "UserID": args[0]}, nil
		}))
		// The sidebar's markup lives in e.page: a fragment may be
		// registered on any template set.
		html := func() string {
			t.Helper()
			h, err := e.frags.Render(context.Background(), "layout", uint(1))
			must(t, err)
			return string(h)
		}
		want := `<div>T<aside><h2>ann</h2><ul><li>first</li></ul></aside></div>`
		// The inner fragment's first fill replaced its value's version,
		// which the outer one showed (a Delete of the inner fragment must
		// reach the outer): the outer is stored from its second render,
		// which finds the inner one stored.
		for i, loads := range [][2]int32{{1, 1}, {2, 1}, {2, 1}} {
			if got := html(); got != want || outer.Load() != loads[0] || e.loads.Load() != loads[1] {
				t.Fatalf("render %d: got %q after %d outer and %d inner loads; want %q, %d and %d", i+1, got, outer.Load(), e.loads.Load(), want, loads[0], loads[1])
			}
		}
		must(t, e.db.Model(&User{ID: 1}).Update("name", "anne").Error)
		want = `<div>T<aside><h2>anne</h2><ul><li>first</li></ul></aside></div>`
		if got := html(); got != want || outer.Load() != 3 || e.loads.Load() != 2 {
			t.Fatalf("after a write to the inner fragment's row: %q after %d outer and %d inner loads; want %q, 3 and 2", got, outer.Load(), e.loads.Load(), want)
		}
	})
}

// Concurrent renders of one page, cold then warm: every render gets the
// same HTML (run under -race).
func TestConcurrentRenders(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		var wg sync.WaitGroup
		errs := make(chan string, 64)
		for range 3 {
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var b strings.Builder
					if err := e.page.ExecuteTemplate(&b, "page", pageData{Ctx: context.Background(), UserID: 1}); err != nil {
						errs <- err.Error()
					} else if b.String() != ann1 {
						errs <- b.String()
					}
				}()
			}
			wg.Wait()
		}
		close(errs)
		for s := range errs {
			t.Error(s)
		}
		if n := e.loads.Load(); n < 1 || n > 16 {
			t.Fatalf("%d loads for 48 renders; want between 1 and the 16 of the cold round", n)
		}
	})
}
