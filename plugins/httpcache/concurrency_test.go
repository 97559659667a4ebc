package httpcache_test

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentNoStalePage: readers GET the page while writers update
// the articles it shows through GORM. No response is older than a write
// that completed before its request started (each reader notes the
// writers' completed sequence numbers before sending, and the page must
// show at least those), and the cache served hits between the writes.
func TestConcurrentNoStalePage(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *env) {
		srv := e.server(t)
		const writers, readers, writes = 2, 6, 25
		var done [writers + 1]atomic.Int64 // by article id: the last sequence whose write returned
		for id := 1; id <= writers; id++ {
			if err := e.db.Model(&Article{ID: uint(id)}).Update("title", "v0").Error; err != nil {
				t.Fatal(err)
			}
		}
		line := regexp.MustCompile(`<li>(\d+): v(\d+)</li>`)
		var reads, hits atomic.Int64
		var stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, writers+readers)
		for w := 1; w <= writers; w++ {
			wg.Add(1)
			go func(id int) {
				defer wg.Done()
				for seq := 1; seq <= writes; seq++ {
					// Let readers read (and hit) between writes.
					for r0 := reads.Load(); reads.Load() < r0+8 && !stop.Load(); {
						time.Sleep(time.Millisecond)
					}
					if err := e.db.Model(&Article{ID: uint(id)}).Update("title", fmt.Sprintf("v%d", seq)).Error; err != nil {
						errs <- err
						return
					}
					done[id].Store(int64(seq))
				}
			}(w)
		}
		var rwg sync.WaitGroup
		for range readers {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				for !stop.Load() {
					var floor [writers + 1]int64
					for id := 1; id <= writers; id++ {
						floor[id] = done[id].Load()
					}
					r, err := fetch(srv.URL + "/articles")
					if err != nil {
						errs <- err
						return
					}
					reads.Add(1)
					if r.state() == "hit" {
						hits.Add(1)
					}
					seen := map[int]int64{}
					for _, m := range line.FindAllStringSubmatch(r.body, -1) {
						id, _ := strconv.Atoi(m[1])
						seq, _ := strconv.ParseInt(m[2], 10, 64)
						seen[id] = seq
					}
					for id := 1; id <= writers; id++ {
						if s, ok := seen[id]; !ok || s < floor[id] {
							errs <- fmt.Errorf("stale page (%s): article %d shows v%d, but write v%d had completed before the request; body %q", r.state(), id, s, floor[id], r.body)
							stop.Store(true)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		stop.Store(true)
		rwg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if hits.Load() == 0 {
			t.Fatalf("%d reads, no hit: the test exercised nothing", reads.Load())
		}
		t.Logf("%d reads, %d hits, %d renders", reads.Load(), hits.Load(), e.renders.Load())
	})
}
