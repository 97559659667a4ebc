package filestore_test

import (
	"strings"
	"testing"

	"querycache.dev/querycache"
	"querycache.dev/querycache/filestore"
)

// A Store declared as a zero value is refused by querycache.New: it
// cached nothing, wrote its files in the working directory, and its Close
// panicked (a hostile run, issue 8's fortieth session).
func TestZeroStoreRefused(t *testing.T) {
	_, err := querycache.New(querycache.Options{Store: &filestore.Store{}})
	if err == nil || !strings.Contains(err.Error(), "not built by filestore.New") {
		t.Fatalf("querycache.New(&filestore.Store{}): %v", err)
	}
}
