package querycache_test

// Hostile50 (ErrFillCycle, flight.go fillGroup.do): the re-entrance check
// walks the flight marks the context carries, not the flights running.
// A context derived from a fill's (a retry or refresh job the fill
// starts with context.WithoutCancel(ctx), the usual way to keep a job's
// values past its request) carries the mark after the fill has returned,
// and a later GetOrSet of the same key and versions (the fill failed, or
// stored nothing) is refused with ErrFillCycle although no flight runs
// and nothing would wait for itself.

import (
	"context"
	"errors"
	"testing"
	"time"

	"querycache.dev/querycache"
)

func TestHostile50FillCycleBackgroundJobAfterFillFails(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kv := c.KV()
	bg := context.Background()
	job := make(chan context.Context, 1)
	_, _, err = kv.GetOrSet(bg, "report", func(ctx context.Context) ([]byte, error) {
		// The database is slow: give up now and let a background job
		// compute it later, with this request's values.
		job <- context.WithoutCancel(ctx)
		return nil, errors.New("timeout")
	}, querycache.DependsOn("orders"))
	if err == nil {
		t.Fatal("the failing fill returned no error")
	}
	jctx := <-job // the fill has returned: no flight of "report" runs
	done := make(chan error, 1)
	go func() {
		v, _, err := kv.GetOrSet(jctx, "report", func(context.Context) ([]byte, error) {
			return []byte("computed"), nil
		}, querycache.DependsOn("orders"))
		if err == nil && string(v) != "computed" {
			err = errors.New("got " + string(v))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the background job's GetOrSet, after the fill that started it returned: %v (want its value \"computed\": no fill is running)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hung")
	}
}

// The same with Remember, and a fill whose goroutine it does not wait
// for: the fill stores nothing it can share (it returns an error), its
// goroutine asks after the fill returned.
func TestHostile50FillCycleRememberSpawnedGoroutine(t *testing.T) {
	c, err := querycache.New(querycache.Options{Store: querycache.NewMemoryStore(querycache.MemoryOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kv := c.KV()
	fillDone := make(chan struct{})
	res := make(chan error, 1)
	_, err = querycache.Remember(context.Background(), kv, "n", time.Minute, func(ctx context.Context) (int, error) {
		go func() {
			<-fillDone
			n, err := querycache.Remember(ctx, kv, "n", time.Minute, func(context.Context) (int, error) { return 7, nil })
			if err == nil && n != 7 {
				err = errors.New("wrong value")
			}
			res <- err
		}()
		return 0, errors.New("busy")
	})
	if err == nil {
		t.Fatal("want the fill's error")
	}
	close(fillDone)
	if err := <-res; err != nil {
		t.Fatalf("Remember in a goroutine the fill started, called after the fill returned: %v", err)
	}
}
