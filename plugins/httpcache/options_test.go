package httpcache_test

import (
	"strings"
	"testing"

	"querycache.dev/plugins/httpcache"
	"querycache.dev/querycache"
)

// TestOptionErrors: New refuses a nil cache and invalid options with a
// message naming the option; Middleware panics on them (a programming
// error found at start-up).
func TestOptionErrors(t *testing.T) {
	if _, err := httpcache.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
	cache, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	for name, opt := range map[string]httpcache.Option{
		"httpcache.TTL":          httpcache.TTL(0),
		"httpcache.MaxBodyBytes": httpcache.MaxBodyBytes(-1),
		"httpcache.Statuses":     httpcache.Statuses(200, 500),
	} {
		if _, err := httpcache.New(cache, opt); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("New with a bad %s: %v", name, err)
		}
		pages, err := httpcache.New(cache)
		if err != nil {
			t.Fatal(err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Middleware with a bad %s did not panic", name)
				}
			}()
			pages.Middleware(opt)
		}()
	}
}
