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
