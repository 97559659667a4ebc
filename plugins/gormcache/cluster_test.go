package gormcache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"

	"github.com/redis/go-redis/v9"
)

// TestPluginOnRedisCluster runs the plugin's write-path cases and the
// differential sequence on a real 3-master Redis Cluster started for the
// test (private loopback ports, stopped by pid): entries, versions and
// leases spread over the masters, and every invalidation still reaches
// them.
//
// It runs beside the other parallel tests: the cluster, its key prefixes
// and the SQLite environments are its own, and its stores get the table's
// generous timeouts (tableRedisOptions), so a slow moment of a loaded
// machine does not turn a cached read into a miss.
func TestPluginOnRedisCluster(t *testing.T) {
	t.Parallel()
	cl := testenv.StartRedisCluster(t, 3)
	for _, tiered := range []bool{false, true} {
		name := "redis-cluster"
		if tiered {
			name = "tiered-cluster"
		}
		clusterEnv := func(t *testing.T, d dbKind) *env {
			client := cl.Client()
			kind := storeKind{name: name, open: func(t *testing.T) querycache.Store {
				s := querycache.NewRedisStore(client, tableRedisOptions)
				if tiered {
					return querycache.NewTieredStore(s, querycache.TieredOptions{})
				}
				return s
			}}
			e := newEnv(t, d, kind, querycache.Options{Prefix: clusterPrefix()})
			settleClusterEpoch(t, e, client)
			return e
		}
		// SQLite only: the store is what is under test here, and each
		// PostgreSQL environment on the cluster adds minutes to CI.
		for _, d := range databases[:1] {
			t.Run(d.name+"/"+name, func(t *testing.T) {
				t.Run("write paths", func(t *testing.T) {
					if tiered {
						t.Skip("the two-level store runs the differential sequence only")
					}
					for _, c := range writeCases {
						if c.dialect != "" && c.dialect != d.name {
							continue
						}
						t.Run(c.name, func(t *testing.T) {
							e := clusterEnv(t, d)
							if err := runWriteCase(t, e, c); err != nil {
								t.Fatal(err)
							}
						})
					}
				})
				t.Run("differential", func(t *testing.T) {
					e := clusterEnv(t, d)
					w := newDiffWorld(t, e, 1)
					shapes, seq, _ := diffFor(e.dialect)
					n := min(len(seq), 60) // the first 60 writes of the fixed order: CI time
					if err := diffSequence(t, w, shapes, n, func(i int) diffWrite { return seq[i] }, "fixed order on a cluster", true); err != nil {
						t.Fatal(err)
					}
					// A store error (a timeout on a loaded machine) fails
					// open and is allowed; a wrong result is not, and
					// diffSequence checked every one.
					if st := e.cache.Stats(); st.Hits == 0 {
						t.Fatalf("no hits on the cluster (errors %d)", st.Errors)
					}
				})
			})
		}
	}
}

// settleClusterEpoch makes the store's first connection to every master
// of the cluster before the test reads, then invalidates everything. A
// new connection checks its node's identity (querycache's identity.go):
// a node that holds no marker of the namespace, as every node does for a
// fresh prefix, has its epoch replaced, as after a restart. The plugin's
// catalog watch sees that replacement as another process's bump at its
// next poll and forgets what it learned: when the first connection to a
// master came from the test's first cached read, the read after it
// learned the catalog again (5 statements, where the test expects a hit).
// Before the environments were migrated ahead of db.Use, the migration's
// invalidations had reached every master first. The InvalidateAll is
// this cache's own bump, which the watch follows at once: it reads the
// epoch as the masters left it.
func settleClusterEpoch(t *testing.T, e *env, client *redis.ClusterClient) {
	t.Helper()
	ctx := context.Background()
	if err := client.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		return c.Ping(ctx).Err()
	}); err != nil {
		t.Fatalf("reaching every master: %v", err)
	}
	if err := e.cache.InvalidateAll(ctx); err != nil {
		t.Fatalf("InvalidateAll: %v", err)
	}
}

var clusterPrefixes atomic.Int64

// clusterPrefix gives each environment on the private cluster a prefix of
// its own (the cluster is discarded with the test).
func clusterPrefix() string {
	return fmt.Sprintf("qcc%d:", clusterPrefixes.Add(1))
}
