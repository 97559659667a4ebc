package invalidation_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/invalidation"
)

// Start, Ready, Sync and Close called at once from several goroutines, in
// every order the scheduler picks: no panic, no race, no goroutine left
// waiting, and the cache never left suspended once Close has returned.
func TestHostileListenerLifecycleRaces(t *testing.T) {
	plConn(t)
	c := plCache(t)
	probe := plTable(c, "ho_race")
	for i := 0; i < 8; i++ {
		l, err := invalidation.NewListener(c, testenv.PostgresDSN(), invalidation.ListenerOptions{Channel: plChannel(), Logger: plQuiet, Heartbeat: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var wg sync.WaitGroup
		for _, f := range []func(){
			func() { _ = l.Start() },
			func() { _ = l.Start() },
			func() { _ = l.Ready(ctx) },
			func() { _ = l.Sync(ctx) },
			func() { _ = l.Sync(ctx) },
			func() {
				if i%2 == 0 {
					_ = l.Ready(ctx)
				}
				_ = l.Close()
			},
			func() { _ = l.Stats() },
		} {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("round %d: a call is still waiting after Close: %+v", i, l.Stats())
		}
		cancel()
		_ = l.Close()
		if err := l.Sync(context.Background()); err == nil {
			t.Fatalf("round %d: Sync after Close returned nil", i)
		}
		probe.fill(t)
		if !probe.served(t) {
			t.Fatalf("round %d: the cache stays suspended after Close", i)
		}
	}
}
