package memcached

import (
	"testing"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// TestClosedCacheRecoveryDropped: a store shared by caches made and closed
// over a process's life kept every closed cache's recovery function (it
// had only OnRecover, which nothing takes back), holding the cache and
// calling it at each recovery. A cache's Close now takes its own back
// (DropRecover), and leaves the others' and OnRecover's.
func TestClosedCacheRecoveryDropped(t *testing.T) {
	srv := testenv.StartMemcached(t)
	s := New(Options{Servers: []string{srv.Addr()}, Prefix: "qcrecover:"})
	s.OnRecover(func() {}) // the application's: for the store's life
	count := func() int {
		s.recMu.Lock()
		defer s.recMu.Unlock()
		return len(s.recoverFns)
	}
	a, err := querycache.New(querycache.Options{Store: s, Prefix: "a:"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := querycache.New(querycache.Options{Store: s, Prefix: "b:"})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d recovery functions with two caches and OnRecover's, want 3", n)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // idempotent: drops nothing more
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d recovery functions after one cache closed, want 2 (its own dropped)", n)
	}
	s.DropRecover(nil) // OnRecover's are not an owner's
	if n := count(); n != 2 {
		t.Fatalf("DropRecover(nil) left %d recovery functions, want 2", n)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d recovery functions after both caches closed, want OnRecover's alone", n)
	}
}
