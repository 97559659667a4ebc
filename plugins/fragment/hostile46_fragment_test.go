package fragment_test

import (
	"bytes"
	"context"
	"html/template"
	"testing"

	"querycache.dev/plugins/fragment"
	"querycache.dev/querycache"
)

func h46Cache(t *testing.T) *querycache.Cache {
	t.Helper()
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func h46Render(t *testing.T, tm *template.Template, id int) string {
	t.Helper()
	var b bytes.Buffer
	if err := tm.ExecuteTemplate(&b, "page", map[string]any{"Ctx": context.Background(), "ID": id}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestHostile46SubTemplateNotInIdentity: both sites' "sidebar" is the same
// text, {{template "items" .}}; each set defines its own "items". The
// identity hashes the sidebar's own tree only, so the admin's items are
// shown on the public site (and a deploy that changes only "items" keeps
// serving the old HTML, which the commit says it fixed).
func TestHostile46SubTemplateNotInIdentity(t *testing.T) {
	c := h46Cache(t)
	mk := func(items string) *template.Template {
		fc, err := fragment.New(c.KV(), fragment.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tm := template.Must(template.New("page").Funcs(fc.FuncMap()).Parse(
			`{{define "page"}}{{fragment .Ctx "sidebar" .ID}}{{end}}{{define "sidebar"}}{{template "items" .}}{{end}}{{define "items"}}` + items + `{{end}}`))
		if err := fc.Register("sidebar", tm, func(ctx context.Context, args ...any) (any, error) { return args[0], nil }); err != nil {
			t.Fatal(err)
		}
		return tm
	}
	admin := mk(`ADMIN panel of user {{.}}: impersonate`)
	public := mk(`public profile of user {{.}}`)
	h46Render(t, admin, 7)
	if got := h46Render(t, public, 7); got != "public profile of user 7" {
		t.Fatalf("the public site shows %q", got)
	}
}

// TestFragmentNamespacesKeepSitesApart: the public and the admin site
// share their markup and the function literal of their loaders, so
// nothing in the fragment tells them apart; Options.Namespace puts each
// site's fragments under keys of their own, and Cache.Key is the key to
// delete.
func TestFragmentNamespacesKeepSitesApart(t *testing.T) {
	c := h46Cache(t)
	mk := func(ns string, links []string) (*fragment.Cache, *template.Template) {
		fc, err := fragment.New(c.KV(), fragment.Options{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		tm := template.Must(template.New("page").Funcs(fc.FuncMap()).Parse(
			`{{define "page"}}{{fragment .Ctx "sidebar" .ID}}{{end}}{{define "sidebar"}}<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}`))
		if err := fc.Register("sidebar", tm, func(ctx context.Context, args ...any) (any, error) { return links, nil }); err != nil {
			t.Fatal(err)
		}
		return fc, tm
	}
	adminFC, admin := mk("admin", []string{"delete user", "impersonate"})
	_, public := mk("public", []string{"home"})
	for range 3 {
		if got := h46Render(t, admin, 7); got != "<ul><li>delete user</li><li>impersonate</li></ul>" {
			t.Fatalf("admin: %q", got)
		}
		if got := h46Render(t, public, 7); got != "<ul><li>home</li></ul>" {
			t.Fatalf("public: %q", got)
		}
	}
	k, err := adminFC.Key("sidebar", 7)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := fragment.Key("sidebar", 7)
	if k == pk {
		t.Fatalf("a namespaced cache's key %q is the package's", k)
	}
	if _, ok, err := c.KV().Get(context.Background(), k); err != nil || !ok {
		t.Fatalf("the admin fragment is not under its Cache.Key: %v, %v", ok, err)
	}
}
