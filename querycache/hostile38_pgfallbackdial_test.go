package querycache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"querycache.dev/internal/testenv"
)

// TestHostile38PgEpochFallbackNeedsFreshConnection: 330c7e4's fallback
// replaces the epochs in a statement bounded by Timeout (100 ms). The
// timed-out replacement's connection is discarded by pgx (its context
// ended mid-statement), so unless the pool holds another idle connection
// the fallback dials one, and a dial that takes longer than Timeout (TLS
// to a remote server, an AfterConnect hook, a loaded host: 30-50 ms here
// under -race on an idle machine) fails the fallback silently. R then
// serves what W changed for as long as the lock is held, as before the
// fix. Order: (1) a session locks "users"' version rows; (2) W's
// invalidation waits InvalidateTimeout (1 s), times out, its connection
// is closed; (3) the fallback's Acquire dials (150 ms) and times out at
// 100 ms; (4) R reads the old value until the lock goes.
// Control: the same with a fast dial.
func TestHostile38PgEpochFallbackNeedsFreshConnection(t *testing.T) {
	for _, slow := range []bool{true, false} {
		name := "dial-150ms"
		if !slow {
			name = "control-fast-dial"
		}
		t.Run(name, func(t *testing.T) {
			schema := pgTestSchema(t)
			ctx := context.Background()
			var slowDial atomic.Bool
			cfg, err := pgxpool.ParseConfig(testenv.PostgresDSN())
			if err != nil {
				t.Fatal(err)
			}
			cfg.MaxConns = 4
			cfg.BeforeConnect = func(ctx context.Context, _ *pgx.ConnConfig) error {
				if slowDial.Load() {
					select {
					case <-time.After(150 * time.Millisecond):
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}
			wpool, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(wpool.Close)
			ws := h37Store(t, wpool, schema)
			rs := h37Store(t, pgTestPool(t, "", 4), schema)
			w, r := h37Cache(t, ws), h37Cache(t, rs)
			// Set up under Timeout (100 ms): a loaded machine's first dial
			// can take longer, and the setup is not what is tested.
			var err2 error
			for range 5 {
				if err2 = r.KV().Set(ctx, "page", []byte("old"), DependsOn("users")); err2 == nil {
					break
				}
			}
			if err2 != nil {
				t.Fatal(err2)
			}
			if v, ok, _ := r.KV().Get(ctx, "page"); !ok || string(v) != "old" {
				t.Fatalf("R before: %q %v", v, ok)
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
			time.AfterFunc(2500*time.Millisecond, func() { _ = tx.Rollback(ctx); close(released) })
			defer func() { <-released }()
			slowDial.Store(slow)
			st := wpool.Stat()
			t.Logf("W's pool before: total %d idle %d", st.TotalConns(), st.IdleConns())
			werr := w.InvalidateTables(ctx, "users")
			returned := time.Now()
			st = wpool.Stat()
			t.Logf("W's invalidation: %v; W's pool after: total %d idle %d", werr, st.TotalConns(), st.IdleConns())
			stale, reads := 0, 0
			for time.Since(returned) < time.Second {
				v, ok, _ := r.KV().Get(ctx, "page")
				reads++
				if ok && string(v) == "old" {
					stale++
				}
				time.Sleep(5 * time.Millisecond)
			}
			if stale > 0 {
				t.Errorf("R served the value W's invalidation replaced %d times of %d reads in the second after W's invalidation returned (%v)", stale, reads, werr)
			}
		})
	}
}
