package querycache

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestHostile37PgLockedVersionWriteServedStale: the PostgreSQL store's
// version rows are locked by another session for 1.6 s (a stalled backend
// that was replacing them: another process's bump, a fill extending them,
// an admin's transaction). A lock blocks writers of the row and no reader
// (MVCC): W's invalidation of "users" waits for the lock until
// InvalidateTimeout (1 s), is cancelled (never applied, unlike a stalled
// Redis that runs the commands it buffered when it resumes) and kept
// pending; W's write returns. R's lookups are answered all along, with the
// old token, so R's breaker never opens and nothing tells R: every read R
// starts after W's invalidation returned serves the value it replaced
// until the lock goes and W's retry (RetryInterval, 1 s) delivers. C1.
//
// "locker": a session holds FOR UPDATE on the rows. "stopped-bump": a third
// process X's own invalidation of "users" got the row lock and its backend
// was then stopped (SIGSTOP of the backend: a paused process holding a
// lock), resumed 1.6 s later. Control: R reads only once W has delivered.
func TestHostile37PgLockedVersionWriteServedStale(t *testing.T) {
	for _, mode := range []string{"locker", "stopped-bump"} {
		for _, control := range []bool{false, true} {
			name := mode
			if control {
				name += "/control-wait-for-delivery"
			}
			t.Run(name, func(t *testing.T) { h37PgLocked(t, mode, control) })
		}
	}
}

func h37Store(t *testing.T, pool *pgxpool.Pool, schema string) *PostgresStore {
	t.Helper()
	// Every default (Timeout 100ms, InvalidateTimeout 1s), as a user has them.
	s := NewPostgresStore(pool, PostgresOptions{Schema: schema})
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func h37Cache(t *testing.T, s Store) *Cache {
	t.Helper()
	c, err := New(Options{Store: s, Prefix: "h37:"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func h37PgLocked(t *testing.T, mode string, control bool) {
	schema := pgTestSchema(t)
	ctx := context.Background()
	ws := h37Store(t, pgTestPool(t, "", 4), schema)
	rs := h37Store(t, pgTestPool(t, "", 4), schema)
	w, r := h37Cache(t, ws), h37Cache(t, rs)
	// With the default 100 ms timeout, a loaded machine can fail the set
	// or the read after it (once in CI); they are not what is tested.
	for try := 1; ; try++ {
		err := r.KV().Set(ctx, "page", []byte("old"), DependsOn("users"))
		v, ok, gerr := r.KV().Get(ctx, "page")
		if err == nil && ok && string(v) == "old" {
			break
		}
		if try == 5 {
			t.Fatalf("R before: set %v; read %q %v %v", err, v, ok, gerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	names := Change{Tables: []string{"users"}}.VersionNames(w.Namespace())

	const hold = 1600 * time.Millisecond
	var release func()
	switch mode {
	case "locker":
		lockPool := pgTestPool(t, "", 1)
		tx, err := lockPool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM `+rs.sql.versions+` WHERE name = ANY($1::bytea[]) FOR UPDATE`, bytesOf(names)); err != nil {
			t.Fatal(err)
		}
		release = func() { _ = tx.Rollback(ctx) }
	case "stopped-bump":
		// X: one connection, whose backend we stop once its bump holds
		// the row lock. A short lock of our own makes X's bump wait at
		// the row (taking its tuple lock) so that we know when to stop it.
		xpool := pgTestPool(t, "", 1)
		xs := h37Store(t, xpool, schema)
		x := h37Cache(t, xs)
		conn, err := xpool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pid := int(conn.Conn().PgConn().PID())
		conn.Release()
		lockPool := pgTestPool(t, "", 1)
		tx, err := lockPool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM `+rs.sql.versions+` WHERE name = ANY($1::bytea[]) FOR UPDATE`, bytesOf(names)); err != nil {
			t.Fatal(err)
		}
		xdone := make(chan error, 1)
		go func() { xdone <- x.InvalidateTables(ctx, "users") }()
		// Wait until X's backend waits for our lock.
		mon := pgTestPool(t, "", 1)
		deadline := time.Now().Add(5 * time.Second)
		for {
			var waiting bool
			_ = mon.QueryRow(ctx, `SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&waiting)
			if waiting {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("X's bump never waited for the row lock")
			}
			time.Sleep(2 * time.Millisecond)
		}
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback(ctx) // X (stopped) is granted the row next
		release = func() {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			t.Logf("X's invalidation: %v", <-xdone)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	}
	lockedAt := time.Now()
	timer := time.AfterFunc(hold, release)
	defer timer.Stop()

	// W's committed write: its invalidation.
	werr := w.InvalidateTables(ctx, "users")
	returned := time.Now()
	t.Logf("W's invalidation returned after %v: %v; W pending %d; R's breaker open %v",
		returned.Sub(lockedAt).Round(time.Millisecond), werr, w.Stats().Pending, rs.BreakerOpen())

	if control {
		deadline := time.Now().Add(10 * time.Second)
		for w.Stats().Pending != 0 {
			if time.Now().After(deadline) {
				t.Fatal("W never delivered its invalidation")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	stale, reads := 0, 0
	var first, last time.Duration
	for i := 0; i < 20 || w.Stats().Pending != 0; i++ {
		if time.Since(returned) > 10*time.Second {
			break
		}
		v, ok, _ := r.KV().Get(ctx, "page")
		reads++
		if ok && string(v) == "old" {
			if stale == 0 {
				first = time.Since(returned)
			}
			stale++
			last = time.Since(returned)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if stale > 0 {
		t.Errorf("R served the value W's invalidation replaced %d times of %d reads, from %v to %v after W's invalidation returned (%v); R's breaker opened %d times",
			stale, reads, first.Round(time.Millisecond), last.Round(time.Millisecond), werr, rs.Stats().BreakerOpenings)
	}
}
