package gormcache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkRecordShapeHit is the shapes observer's work on one hit: what
// the statistics add to the hit path (with the decline rule on, which also
// judges the shape).
func BenchmarkRecordShapeHit(b *testing.B) {
	p := &Plugin{}
	DeclineUnprofitable(DeclineOptions{})(p)
	sh := p.shapes.get("SELECT * FROM users WHERE id = ? LIMIT 1")
	ev := &Event{Outcome: OutcomeMiss, Tables: []string{"users"}, Bytes: 300, dbTime: 40 * time.Microsecond, shape: sh}
	p.recordShape(nil, ev)
	ev = &Event{Outcome: OutcomeHit, Tables: []string{"users"}, Bytes: 300, Duration: 2 * time.Microsecond, shape: sh}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.recordShape(nil, ev)
	}
	if sh.hits.Load() != uint64(b.N) {
		b.Fatal("hits not counted")
	}
}

// BenchmarkShapeDeclines is planFor's check of a shape that is not
// declined.
func BenchmarkShapeDeclines(b *testing.B) {
	p := &Plugin{}
	DeclineUnprofitable(DeclineOptions{})(p)
	sh := p.shapes.get("SELECT 1")
	for i := 0; i < b.N; i++ {
		if sh.declines() {
			b.Fatal("declined")
		}
	}
}

// A shape counts at most maxShapeReasons reasons one by one, the rest
// under OtherStats, from concurrent statements.
func TestShapeReasonsAreBounded(t *testing.T) {
	r := &shapeRegistry{}
	sh := r.get("SELECT 1")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				sh.reason(fmt.Sprintf("reason%d", i%10))
			}
		}()
	}
	wg.Wait()
	st := sh.stats(DeclineOptions{}.withDefaults())
	total := uint64(0)
	for _, n := range st.Reasons {
		total += n
	}
	if len(st.Reasons) != maxShapeReasons+1 || st.Reasons[OtherStats] != 80 || total != 400 {
		t.Fatalf("reasons %v: want %d reasons of 40 and %s: 80", st.Reasons, maxShapeReasons, OtherStats)
	}
}
