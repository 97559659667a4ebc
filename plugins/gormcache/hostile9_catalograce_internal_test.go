package gormcache

import (
	"sync"
	"testing"
	"time"
)

// TestHostile9CatalogTimerRaces: states aged by their timers (1 ms here)
// while other goroutines forget the catalog and store learned facts into
// the state they read (as learnFacts does: only while its generation is
// current), under -race. Whatever the interleaving, current() returns a
// published state, generations only grow, and a fact stored is never
// stored into a state that was not current when checked.
func TestHostile9CatalogTimerRaces(t *testing.T) {
	c := &catalog{timerAge: time.Millisecond}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		byGen = map[uint64]*catalogState{}
	)
	stop := time.Now().Add(300 * time.Millisecond)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				st := c.current()
				if st == nil {
					t.Error("current returned nil")
					return
				}
				mu.Lock()
				if o, ok := byGen[st.gen]; ok && o != st {
					mu.Unlock()
					t.Errorf("generation %d names two states", st.gen)
					return
				}
				byGen[st.gen] = st
				mu.Unlock()
				switch (i + g) % 5 {
				case 0:
					c.forget()
				case 1, 2:
					if st.gen == c.current().gen && st.n.Add(1) <= maxCatalogTables {
						st.tables.Store("t", &tableFacts{exists: true})
						st.stored.Add(1)
					}
				default:
					_ = c.old(st)
				}
			}
		}()
	}
	wg.Wait()
	s := c.current()
	if s.timer == nil {
		t.Fatal("the current state has no timer")
	}
}
