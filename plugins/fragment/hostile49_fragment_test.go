package fragment_test

import (
	"context"
	"html/template"
	"testing"

	"querycache.dev/plugins/fragment"
)

// TestHostile49SubTemplateParsedAfterRegister: the identity of a fragment
// is computed when it is registered, from the templates its set has then.
// html/template lets the set grow until its first execution, and an
// application that registers its fragments right after parsing their
// file, then parses its partials (ParseGlob("partials/*")), gets an
// identity without them. Two sites (or two builds during a deploy)
// sharing the KV whose "sidebar" differs only in a partial then serve each
// other's HTML: the public site shows the admin's.
func TestHostile49SubTemplateParsedAfterRegister(t *testing.T) {
	c := h46Cache(t)
	mk := func(items string) *template.Template {
		fc, err := fragment.New(c.KV(), fragment.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tm := template.Must(template.New("page").Funcs(fc.FuncMap()).Parse(
			`{{define "page"}}{{fragment .Ctx "sidebar" .ID}}{{end}}{{define "sidebar"}}{{template "items" .}}{{end}}`))
		if err := fc.Register("sidebar", tm, func(ctx context.Context, args ...any) (any, error) { return args[0], nil }); err != nil {
			t.Fatal(err)
		}
		// The partials, parsed after the fragments were registered.
		template.Must(tm.New("items").Parse(items))
		return tm
	}
	admin := mk(`ADMIN panel of user {{.}}: impersonate`)
	public := mk(`public profile of user {{.}}`)
	if got := h46Render(t, admin, 7); got != "ADMIN panel of user 7: impersonate" {
		t.Fatalf("admin: %q", got)
	}
	if got := h46Render(t, public, 7); got != "public profile of user 7" {
		t.Fatalf("the public site shows %q (its own template renders %q)", got, "public profile of user 7")
	}
}

type h49Public struct{}
type h49Admin struct{}

func (h49Public) Items() []string { return []string{"home", "about"} }
func (h49Admin) Items() []string  { return []string{"delete user", "impersonate"} }

// h49List is one generic loader, instantiated per site: the instances are
// different functions, which runtime.FuncForPC names alike
// ("...h49List[...]").
func h49List[T interface{ Items() []string }](ctx context.Context, args ...any) (any, error) {
	var t T
	return t.Items(), nil
}

// TestHostile49GenericLoaderInstancesNotToldApart: two sites on one KV
// register "menu" with the same markup and the two instances of one
// generic loader, h49List[h49Public] and h49List[h49Admin]. The identity
// hashes the loader's function name, which is the same for every
// instance, so the public site shows the admin menu. The documentation
// promises that a fragment under the same key with "another loader
// function" is rendered again, not shown (it excepts only two closures of
// one function literal).
func TestHostile49GenericLoaderInstancesNotToldApart(t *testing.T) {
	c := h46Cache(t)
	mk := func(load fragment.Loader) *template.Template {
		fc, err := fragment.New(c.KV(), fragment.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tm := template.Must(template.New("page").Funcs(fc.FuncMap()).Parse(
			`{{define "page"}}{{fragment .Ctx "menu" .ID}}{{end}}{{define "menu"}}{{range .}}[{{.}}]{{end}}{{end}}`))
		if err := fc.Register("menu", tm, load); err != nil {
			t.Fatal(err)
		}
		return tm
	}
	admin := mk(h49List[h49Admin])
	public := mk(h49List[h49Public])
	if got := h46Render(t, admin, 1); got != "[delete user][impersonate]" {
		t.Fatalf("admin: %q", got)
	}
	if got := h46Render(t, public, 1); got != "[home][about]" {
		t.Fatalf("the public site shows %q; its own loader and template render %q", got, "[home][about]")
	}
}
