package fragment_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"querycache.dev/plugins/gormcache"
)

// TestHostileLoaderPanicKillsWaiters: one Render's loader panics while
// other Renders of the same fragment wait on its fill. Only the panicking
// caller should see the panic; each waiter should render on its own and
// get the HTML.
func TestHostileLoaderPanicKillsWaiters(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		const n = 6
		var calls, entered atomic.Int32
		allIn := make(chan struct{})
		must(t, e.frags.Register("boom", userTmpl("boom"), func(ctx context.Context, args ...any) (any, error) {
			if calls.Add(1) == 1 {
				<-allIn
				panic("loader bug")
			}
			var d sidebar
			err := e.db.WithContext(ctx).Scopes(gormcache.Cacheable()).First(&d.User, args[0]).Error
			return d, err
		}))
		var wg sync.WaitGroup
		var panicked, bad atomic.Int32
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					if r := recover(); r != nil {
						panicked.Add(1)
					}
				}()
				if entered.Add(1) == n {
					close(allIn)
				}
				h, err := e.frags.Render(context.Background(), "boom", uint(1))
				if err != nil || !strings.Contains(string(h), "<h2>ann</h2>") {
					bad.Add(1)
					fmt.Println("waiter got", h, err)
				}
			}()
		}
		wg.Wait()
		if p := panicked.Load(); p > 1 {
			t.Fatalf("%d of %d Render calls panicked; only the one whose loader panicked should", p, n)
		}
	})
}
