package gormcache_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
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
		kind := storeKind{name: name, open: func(t *testing.T) querycache.Store {
			s := querycache.NewRedisStore(cl.Client(), tableRedisOptions)
			if tiered {
				return querycache.NewTieredStore(s, querycache.TieredOptions{})
			}
			return s
		}}
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
							e := newEnv(t, d, kind, querycache.Options{Prefix: clusterPrefix()})
							if err := runWriteCase(t, e, c); err != nil {
								t.Fatal(err)
							}
						})
					}
				})
				t.Run("differential", func(t *testing.T) {
					e := newEnv(t, d, kind, querycache.Options{Prefix: clusterPrefix()})
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

var clusterPrefixes atomic.Int64

// clusterPrefix gives each environment on the private cluster a prefix of
// its own (the cluster is discarded with the test).
func clusterPrefix() string {
	return fmt.Sprintf("qcc%d:", clusterPrefixes.Add(1))
}
