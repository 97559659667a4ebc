package memcached_test

import (
	"strings"
	"testing"

	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// A Store declared as a zero value is refused by querycache.New: every
// lookup and invalidation panicked (a hostile run, issue 8's fortieth
// session).
func TestZeroStoreRefused(t *testing.T) {
	_, err := querycache.New(querycache.Options{Store: &memcached.Store{}})
	if err == nil || !strings.Contains(err.Error(), "not built by memcached.New") {
		t.Fatalf("querycache.New(&memcached.Store{}): %v", err)
	}
}
