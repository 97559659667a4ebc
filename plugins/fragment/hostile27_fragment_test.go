package fragment_test

import (
	"context"
	"errors"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"querycache.dev/plugins/fragment"
	"querycache.dev/plugins/gormcache"
	"querycache.dev/plugins/httpcache"
)

func hget(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestHostile27FailedFragmentPageStored: a page behind the page cache
// executes a template whose fragment's loader fails (a call to another
// service is down). The handler does what a Go handler does: it checks
// Execute's error and answers http.Error. html/template has already
// written the part of the page before the fragment, so net/http keeps the
// 200. The fragment doc: "A loader or template that fails: the error is
// returned to the page's Execute (the page fails to render) and nothing is
// stored." The page cache's doc: "A render whose query failed ... is not
// stored". The broken page must not be stored and served to every later
// request until a write.
func TestHostile27FailedFragmentPageStored(t *testing.T) {
	e := newEnv(t, stores[0])
	var down atomic.Bool
	down.Store(true)
	tm := template.Must(template.New("p").Funcs(e.frags.FuncMap()).Parse(
		`{{define "pg"}}<header>site</header>{{fragment .Ctx "weather" .UserID}}<footer>end</footer>{{end}}` +
			`{{define "weather"}}<p>{{.User.Name}}: {{.Sky}}</p>{{end}}`))
	must(t, e.frags.Register("weather", tm, func(ctx context.Context, args ...any) (any, error) {
		var d struct {
			User User
			Sky  string
		}
		if err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&d.User, args[0]).Error; err != nil {
			return nil, err
		}
		if down.Load() {
			return nil, errors.New("weather service unavailable")
		}
		d.Sky = "sunny"
		return d, nil
	}))
	pages, err := httpcache.New(e.cache)
	must(t, err)
	h := pages.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := tm.ExecuteTemplate(w, "pg", pageData{Ctx: r.Context(), UserID: 1}); err != nil {
			http.Error(w, "render failed", http.StatusInternalServerError)
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, _, b1 := hget(t, srv.URL+"/")
	if strings.Contains(b1, "sunny") {
		t.Fatalf("setup: %q", b1)
	}
	down.Store(false) // the service is back
	_, hdr, b2 := hget(t, srv.URL+"/")
	if !strings.Contains(b2, "sunny") {
		t.Errorf("the page whose fragment failed was stored and served after the failure ended: %q (%s=%q, reason %q)", b2, httpcache.HeaderName, hdr.Get(httpcache.HeaderName), hdr.Get(httpcache.ReasonHeader))
	}
}

// TestHostile27FollowerJoinedAfterWrite: a render of a fragment reads the
// user, then blocks; a write to the user commits; a render that starts
// after the write joins the first one's fill. It must not get the old
// name (C1), and the fragment must not be stored with the old name.
func TestHostile27FollowerJoinedAfterWrite(t *testing.T) {
	e := newEnv(t, stores[0])
	var calls atomic.Int32
	read := make(chan struct{})
	release := make(chan struct{})
	must(t, e.frags.Register("slowuser", userTmpl("slowuser"), func(ctx context.Context, args ...any) (any, error) {
		var d sidebar
		err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&d.User, args[0]).Error
		if calls.Add(1) == 1 {
			close(read)
			<-release
		}
		return d, err
	}))
	leader := make(chan string, 1)
	go func() {
		h, _ := e.frags.Render(context.Background(), "slowuser", uint(1))
		leader <- string(h)
	}()
	<-read
	must(t, e.db.Model(&User{ID: 1}).Update("name", "anne").Error)
	var wg sync.WaitGroup
	got := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := e.frags.Render(context.Background(), "slowuser", uint(1))
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(h)
		}()
	}
	time.Sleep(50 * time.Millisecond) // let them join the flight
	close(release)
	wg.Wait()
	close(got)
	<-leader
	for h := range got {
		if !strings.Contains(h, "anne") {
			t.Errorf("a render that started after the write got %q", h)
		}
	}
	h, err := e.frags.Render(context.Background(), "slowuser", uint(1))
	must(t, err)
	if !strings.Contains(string(h), "anne") {
		t.Errorf("after all renders: %q", h)
	}
}

// TestHostile27HostileNamesAndArgs: fragment names and vary-on values
// that look alike never share an entry, and a fragment whose vary-on
// argument is HTML is escaped.
func TestHostile27HostileNamesAndArgs(t *testing.T) {
	e := newEnv(t, stores[0])
	set := template.New("set").Funcs(e.frags.FuncMap())
	names := []string{"a", "a\x00", "a\x00b", "a b", "<script>", strings.Repeat("n", 4096)}
	for _, n := range names {
		template.Must(set.New(n).Parse(`[{{.}}]`))
		n := n
		must(t, e.frags.Register(n, set, func(ctx context.Context, args ...any) (any, error) {
			var u User
			if err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&u, 1).Error; err != nil {
				return nil, err
			}
			s := strings.ReplaceAll(n, "\x00", "0") + "|"
			for _, a := range args {
				switch v := a.(type) {
				case string:
					s += "s:" + v + ";"
				case []byte:
					s += "b:" + string(v) + ";"
				case int:
					s += "i;"
				case float64:
					s += "f;"
				default:
					s += "?;"
				}
			}
			return s, nil
		}))
	}
	type myString string
	argSets := [][]any{{}, {"x"}, {[]byte("x")}, {"x", ""}, {"", "x"}, {"<b>x</b>"}, {1}, {1.0}, {myString("x")}}
	seen := map[string]string{}
	for _, n := range names {
		for _, args := range argSets {
			h, err := e.frags.Render(context.Background(), n, args...)
			must(t, err)
			h2, err := e.frags.Render(context.Background(), n, args...)
			must(t, err)
			if h != h2 {
				t.Errorf("%q %v: %q then %q", n, args, h, h2)
			}
			if strings.Contains(string(h), "<b>") || strings.Contains(string(h), "<script>") {
				t.Errorf("unescaped: %q", h)
			}
			k, _ := fragment.Key(n, args...)
			if prev, ok := seen[k]; ok {
				t.Errorf("key shared by %s and %q %v", prev, n, args)
			}
			seen[k] = strings.ReplaceAll(n, "\x00", "\\0")
		}
	}
}
