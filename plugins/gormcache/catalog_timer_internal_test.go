package gormcache

import (
	"testing"
	"time"
)

// TestCatalogStateAgesByTimer: without a test's age limit, a catalog state
// is judged old by its timer, not the clock: it stays current until the
// timer fires, is then replaced by a new generation (once, by concurrent
// callers), and a state replaced before its timer fired has the timer
// stopped (it would keep the state's facts alive until then).
func TestCatalogStateAgesByTimer(t *testing.T) {
	c := &catalog{timerAge: 30 * time.Millisecond}
	first := c.current()
	if first.timer == nil {
		t.Fatal("a state made without a test's age limit has no timer")
	}
	if again := c.current(); again != first {
		t.Fatal("a new state was replaced before its age")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !first.aged.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the state's timer never fired")
		}
		time.Sleep(time.Millisecond)
	}
	got := make(chan *catalogState, 8)
	for range 8 {
		go func() { got <- c.current() }()
	}
	var next *catalogState
	for range 8 {
		s := <-got
		if s == first {
			t.Fatal("an aged state was still current")
		}
		if next == nil {
			next = s
		} else if s != next {
			t.Fatal("concurrent callers replaced the aged state more than once")
		}
	}
	if next.gen <= first.gen {
		t.Fatalf("the new state's generation %d is not past %d", next.gen, first.gen)
	}
	c.forget()
	if next.timer.Stop() {
		t.Error("a forgotten state's timer was left running")
	}
	if s := c.current(); s == next || s.aged.Load() {
		t.Error("forget did not start a new, current state")
	}
}
