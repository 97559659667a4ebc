package invalidation_test

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/invalidation"
	"querycache.dev/migrations"
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

// syncBuffer is a log sink safe for the listener's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A listener whose channel no trigger notifies (a typo, another
// database) hears nothing and answers its heartbeats: it says so once,
// and does not when the trigger is there.
func TestHostileListenerWarnsWithoutTriggers(t *testing.T) {
	plConn(t)
	dsn := testenv.PostgresSchema(t)
	channel := plChannel()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE ho_watched (id integer PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(dsn, "search_path=")
	if _, err := migrations.InstallPostgresTriggers(context.Background(), db, migrations.Options{Schema: dsn[i+len("search_path="):], Channel: channel}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		channel string
		warns   bool
	}{{channel, false}, {channel + "_typo", true}} {
		var logs syncBuffer
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		l := plStart(t, plCache(t), dsn, invalidation.ListenerOptions{Channel: tc.channel, Logger: log})
		plReady(t, l)
		plSync(t, l) // the check runs before the first notification is read
		if got := strings.Contains(logs.String(), "no querycache trigger"); got != tc.warns {
			t.Errorf("channel %q: warned %v, want %v; log:\n%s", tc.channel, got, tc.warns, logs.String())
		}
		l.Close()
	}
}
