package gormcache

import (
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
