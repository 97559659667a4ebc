package fragment_test

import (
	"context"
	"html/template"
	"strings"
	"testing"
	"time"

	"querycache.dev/plugins/fragment"
	"querycache.dev/querycache"
)

// Mistakes that made every Render of a fragment fail, or panic, are
// errors of New or Register (a hostile run, issue 8's fortieth session).
func TestMisuseReportedWhereMade(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	want := func(what string, err error, sub string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s: %v; want an error containing %q", what, err, sub)
		}
	}
	_, err = fragment.New(&querycache.KV{}, fragment.Options{})
	want("New zero KV", err, "not made by querycache.NewKV")
	_, err = fragment.New(c.KV(), fragment.Options{FuncName: "frag-ment"})
	want("New FuncName", err, `Options.FuncName "frag-ment" is not a template function name`)
	if _, err := fragment.New(c.KV(), fragment.Options{FuncName: "frag_ment2"}); err != nil {
		t.Errorf("FuncName frag_ment2: %v", err)
	}

	fc, err := fragment.New(c.KV(), fragment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tm := template.Must(template.New("side").Parse(`sidebar`))
	load := func(context.Context, ...any) (any, error) { return nil, nil }
	for name, opt := range map[string]querycache.KVOption{
		"nil option":   nil,
		"negative TTL": querycache.WithTTL(-time.Second),
		"zero TTL":     querycache.WithTTL(0),
		"not a table":  querycache.DependsOn("a..b"),
	} {
		want("Register "+name, fc.Register("side", tm, load, opt), `fragment: Register("side"): `)
	}
	if err := fc.Register("side", tm, load, querycache.WithTTL(time.Minute)); err != nil {
		t.Fatalf("a good Register after the refused ones: %v", err)
	}
	if _, err := fc.Render(context.Background(), "side"); err != nil {
		t.Fatal(err)
	}
}
