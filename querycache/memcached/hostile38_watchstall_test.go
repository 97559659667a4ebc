package memcached_test

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
	"querycache.dev/querycache/memcached"
)

// TestHostile38MemcachedStallHidesOtherBumpAsOwn: f47deee makes a
// version replacement wait out a stall (InvalidateTimeout); cfd7f50 reads
// the watched tokens before an own bump so that another process's change
// since the last read is told as not Own. The read before is bounded by
// Timeout and fails in the stall; the bump then waits, succeeds, and the
// read after it finds B's change and A's own together: told as Own only.
// Order: (1) A's watch has read; (2) B bumps the watched name; (3)
// memcached stalls 400 ms; (4) A bumps the same name: its read before
// times out, its bump is answered on resumption; (5) A's watch is told
// {Own} and nothing else. Control: no stall.
func TestHostile38MemcachedStallHidesOtherBumpAsOwn(t *testing.T) {
	for _, stall := range []bool{true, false} {
		name := "stall"
		if !stall {
			name = "control-no-stall"
		}
		t.Run(name, func(t *testing.T) {
			srv := testenv.StartMemcached(t)
			prefix := testPrefix()
			o := memcached.Options{Prefix: prefix, Timeout: 100 * time.Millisecond}
			a := h25Cache(t, open(t, srv.Addr(), o), querycache.Options{})
			b := h25Cache(t, open(t, srv.Addr(), o), querycache.Options{})
			cat := a.Namespace().TableVersions("h38_catalog").Table
			var mu sync.Mutex
			var got []querycache.VersionChange
			stop, err := a.WatchVersionsEach([]string{cat, a.Namespace().Epoch()}, time.Hour, func(ch querycache.VersionChange) {
				mu.Lock()
				got = append(got, ch)
				mu.Unlock()
			})
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			ctx := context.Background()
			if err := b.InvalidateTables(ctx, "h38_catalog"); err != nil {
				t.Fatal(err)
			}
			if stall {
				pid := srv.Pid()
				if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				done := make(chan struct{})
				go func() { time.Sleep(400 * time.Millisecond); _ = syscall.Kill(pid, syscall.SIGCONT); close(done) }()
				defer func() { <-done }()
			}
			aerr := a.InvalidateTables(ctx, "h38_catalog")
			mu.Lock()
			defer mu.Unlock()
			t.Logf("A's bump: %v; A's watch was told %+v", aerr, got)
			if aerr != nil {
				t.Skip("A's bump was not delivered: not the ordering under test")
			}
			foreign := false
			for _, ch := range got {
				if !ch.Own && ch.Changed[0] {
					foreign = true
				}
			}
			if !foreign {
				t.Errorf("B's bump of the watched version, made before A's, was never told as another process's change: %+v", got)
			}
		})
	}
}
