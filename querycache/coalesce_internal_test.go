package querycache

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A caller never gets the result of a call sent before it arrived: it
// joins the next batch, which is sent when the one in flight ends.
func TestCoalescerNeverJoinsACallInFlight(t *testing.T) {
	var c coalescer[int]
	var calls atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{})
	first := make(chan int)
	go func() {
		v, _, _ := c.do(context.Background(), "k", func() (int, error) {
			n := int(calls.Add(1))
			close(started)
			<-release
			return n, nil
		})
		first <- v
	}()
	<-started // call 1 is in flight
	const late = 50
	var wg sync.WaitGroup
	results := make([]int, late)
	for i := 0; i < late; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, _, _ := c.do(context.Background(), "k", func() (int, error) { return int(calls.Add(1)), nil })
			results[i] = v
		}(i)
	}
	close(release)
	wg.Wait()
	if v := <-first; v != 1 {
		t.Fatalf("first caller got %d", v)
	}
	for i, v := range results {
		if v == 1 {
			t.Fatalf("caller %d, arrived while call 1 was in flight, got its result", i)
		}
	}
	if n := calls.Load(); n > 1+late {
		t.Fatalf("%d calls", n)
	}
	t.Logf("%d late callers made %d calls", late, calls.Load()-1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) != 0 {
		t.Fatalf("%d slots left behind", len(c.m))
	}
}

// A stampede on one key makes about one round trip per batch.
func TestCoalescerMergesAStampede(t *testing.T) {
	var c coalescer[int]
	var calls atomic.Int64
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			_, _, _ = c.do(context.Background(), "k", func() (int, error) {
				calls.Add(1)
				time.Sleep(2 * time.Millisecond) // a round trip
				return 0, nil
			})
		}()
	}
	close(gate)
	wg.Wait()
	t.Logf("200 callers, %d calls", calls.Load())
	if calls.Load() > 20 {
		t.Fatalf("%d calls for 200 concurrent callers", calls.Load())
	}
}
