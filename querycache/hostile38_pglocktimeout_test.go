package querycache

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
)

// TestHostile38PgLockTimeoutSkipsEpochFallback: 330c7e4 replaces the
// epochs when the version replacement "times out", but tests only for
// context.DeadlineExceeded. A database (or role) configured with
// lock_timeout below InvalidateTimeout (a common guard against lock
// queues) ends the same wait with SQLSTATE 55P03 instead: no fallback,
// and R serves what W changed while the lock is held, as before the fix.
// Same for statement_timeout. Control: no server-side timeout.
func TestHostile38PgLockTimeoutSkipsEpochFallback(t *testing.T) {
	for _, param := range []string{"lock_timeout=300ms", "statement_timeout=300ms", ""} {
		name := param
		if name == "" {
			name = "control-no-server-timeout"
		}
		t.Run(name, func(t *testing.T) {
			schema := pgTestSchema(t)
			ctx := context.Background()
			dsn := testenv.PostgresDSN()
			if param != "" {
				sep := "?"
				if strings.Contains(dsn, "?") {
					sep = "&"
				}
				k, v, _ := strings.Cut(param, "=")
				if strings.HasPrefix(dsn, "postgres") {
					dsn += sep + k + "=" + v
				} else {
					dsn += " " + k + "=" + v
				}
			}
			ws := NewPostgresStore(pgTestPool(t, dsn, 4), PostgresOptions{Schema: schema, Logger: slog.New(slog.NewTextHandler(tlog{t}, nil))})
			if err := ws.EnsureSchema(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ws.Close() })
			rs := h37Store(t, pgTestPool(t, dsn, 4), schema)
			w, r := h37Cache(t, ws), h37Cache(t, rs)
			// Set up under R's defaults (100 ms a call): on a loaded machine
			// a new pool's first calls can take longer, so they are asked
			// again (CI failed here once with "context deadline exceeded").
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				err := r.KV().Set(ctx, "page", []byte("old"), DependsOn("users"))
				v, ok, _ := r.KV().Get(ctx, "page")
				if err == nil && ok && string(v) == "old" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("R before: %q %v (set: %v)", v, ok, err)
				}
			}
			names := Change{Tables: []string{"users"}}.VersionNames(w.Namespace())
			lockPool := pgTestPool(t, "", 1)
			tx, err := lockPool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `SELECT 1 FROM `+rs.sql.versions+` WHERE name = ANY($1::bytea[]) FOR UPDATE`, bytesOf(names)); err != nil {
				t.Fatal(err)
			}
			released := make(chan struct{})
			time.AfterFunc(1600*time.Millisecond, func() { _ = tx.Rollback(ctx); close(released) })
			defer func() { <-released }()
			start := time.Now()
			werr := w.InvalidateTables(ctx, "users")
			returned := time.Now()
			t.Logf("W's invalidation returned after %v: %v", returned.Sub(start).Round(time.Millisecond), werr)
			stale, reads := 0, 0
			for time.Since(returned) < 1200*time.Millisecond {
				v, ok, _ := r.KV().Get(ctx, "page")
				reads++
				if ok && string(v) == "old" {
					stale++
				}
				time.Sleep(5 * time.Millisecond)
			}
			if stale > 0 {
				t.Errorf("R served the value W's invalidation replaced %d times of %d reads after W's invalidation returned (%v)", stale, reads, werr)
			}
		})
	}
}

type tlog struct{ t *testing.T }

func (l tlog) Write(p []byte) (int, error) { l.t.Logf("log: %s", p); return len(p), nil }
