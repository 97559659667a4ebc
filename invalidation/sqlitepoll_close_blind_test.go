package invalidation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"querycache.dev/invalidation"
)

// TestSQLitePollCloseWhileBlindSaysWhy: a poller closed while it cannot
// see commits invalidates everything, and the invalidation says why (the
// debug page's recent invalidations), not "manual InvalidateAll".
func TestSQLitePollCloseWhileBlindSaysWhy(t *testing.T) {
	app := newPollApp(t, pollDeleteDSN)
	ctx := context.Background()
	poller, err := invalidation.NewSQLitePoller(app.cache, invalidation.SQLitePollOptions{
		DSN:        "file:" + app.path + "?_busy_timeout=0",
		Interval:   2 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := poller.Start(ctx); err != nil {
		t.Fatal(err)
	}
	app.warm(t, 0)

	locker := pollOpenOther(t, pollDeleteDSN(app.path))
	locker.SetMaxOpenConns(1)
	lc, err := locker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if _, err := lc.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer lc.ExecContext(ctx, "ROLLBACK")
	pollWaitFor(t, "the poller to fail and suspend the cache", func() bool { return poller.Stats().Suspended })
	if err := poller.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range app.cache.RecentInvalidations() {
		if r.All && strings.Contains(r.Cause, "closed while blind") {
			return
		}
	}
	t.Fatalf("no invalidation of everything with the poller's cause: %+v", app.cache.RecentInvalidations())
}
