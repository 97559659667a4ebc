package keys

import (
	"runtime"
	"strings"
	"sync"
	"testing"
)

// TestHostileObjectNamesStable: the names ObjectNames.Names returns share
// one allocation made with unsafe.String; they must never change after
// they are returned: not when other names are built (concurrently or
// later), not after a garbage collection, not when the caller's pk string
// is rebuilt in a reused buffer.
func TestHostileObjectNamesStable(t *testing.T) {
	ns := NewNamespace("p:")
	on := ns.ObjectNames("main", "a:b")
	type got struct{ pk, key, ver string }
	var mu sync.Mutex
	var all []got
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 0, 400)
			for i := range 500 {
				buf = buf[:0]
				buf = append(buf, strings.Repeat("x", (i*7+g)%310)...)
				buf = append(buf, ":%#{}"[i%5])
				pk := string(buf)
				key, ver := on.Names(pk, Sum(buf))
				// Overwrite the caller's buffer: the names must not alias it.
				for j := range buf {
					buf[j] = '!'
				}
				mu.Lock()
				all = append(all, got{pk, key, ver})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	runtime.GC()
	for _, g := range all {
		fp := Sum([]byte(g.pk))
		if g.key != ns.Object("main", "a:b", g.pk, fp) || g.ver != ns.ObjectVersion("a:b", g.pk) {
			t.Fatalf("names of %q changed: %q %q", g.pk, g.key, g.ver)
		}
	}
}
