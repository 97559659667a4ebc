package fragment_test

import (
	"bytes"
	"context"
	"html/template"
	"testing"

	"querycache.dev/plugins/fragment"
	"querycache.dev/querycache"
)

// TestHostile45SameNameTwoCaches: two fragment caches of one application
// (the public site and the admin site), each with its own registry and
// its own "sidebar" template, on the same KV (cache.KV(), as the README
// shows). Each Register is accepted; the admin's sidebar must not be
// shown on the public site.
func TestHostile45SameNameTwoCaches(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mk := func(body string) (*fragment.Cache, *template.Template) {
		fc, err := fragment.New(c.KV(), fragment.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tm := template.Must(template.New("page").Funcs(fc.FuncMap()).Parse(
			`{{define "page"}}{{fragment .Ctx "sidebar" .ID}}{{end}}{{define "sidebar"}}` + body + `{{end}}`))
		if err := fc.Register("sidebar", tm, func(ctx context.Context, args ...any) (any, error) { return args[0], nil }); err != nil {
			t.Fatal(err)
		}
		return fc, tm
	}
	_, admin := mk(`ADMIN panel of user {{.}}: delete, impersonate`)
	_, public := mk(`public profile of user {{.}}`)
	render := func(tm *template.Template) string {
		var b bytes.Buffer
		if err := tm.ExecuteTemplate(&b, "page", map[string]any{"Ctx": context.Background(), "ID": 7}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	render(admin)
	if got := render(public); got != "public profile of user 7" {
		t.Fatalf("the public site shows %q", got)
	}
}
