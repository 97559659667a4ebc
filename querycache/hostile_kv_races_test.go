package querycache_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"querycache.dev/internal/testenv"
	"querycache.dev/querycache"
)

// Hostile review of the low-level API: races between its operations, and
// collisions of its key space with the store's other keys.

// TestHostileKVIncrVersionLosesConcurrentIncr: Incr promises that
// concurrent increments never count once, and IncrVersion that the value
// moves with it. IncrVersion copies the bytes it read to the new version
// and then overwrites the old key with a plain Put: an Incr that lands in
// between reports success, and its count is lost (it went to the old
// key, which the tombstone then erases). Fix: make the move a
// compare-and-swap of the old key to the tombstone from the bytes read
// (retrying the copy when it fails), so an increment either lands before
// the read or finds no value.
func TestHostileKVIncrVersionLosesConcurrentIncr(t *testing.T) {
	t.Parallel()
	c, err := querycache.New(querycache.Options{Store: hkvRedis(t), Prefix: testenv.TestPrefix(t)})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	lost := 0
	for round := range 150 {
		key := fmt.Sprint("ctr", round)
		must(t, kv.Set(bg, key, []byte("0")))
		var wg sync.WaitGroup
		var ok [4]int
		start := make(chan struct{})
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for range 20 {
					if _, err := kv.Incr(bg, key, 1); err == nil {
						ok[g]++
					} else if !errors.Is(err, querycache.ErrNotFound) {
						t.Error(err)
						return
					}
				}
			}()
		}
		close(start)
		if _, err := kv.IncrVersion(bg, key, 1); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		succeeded := ok[0] + ok[1] + ok[2] + ok[3]
		// Increments that succeeded after the move went to the old version
		// only if the old key still held a value: it must not.
		old, okOld, _ := kv.Get(bg, key)
		moved, okNew, _ := kv.Get(bg, key, querycache.WithVersion(2))
		total := 0
		if okOld {
			n, _ := strconv.Atoi(string(old))
			total += n
		}
		if okNew {
			n, _ := strconv.Atoi(string(moved))
			total += n
		}
		if total != succeeded {
			lost++
			if lost == 1 {
				t.Errorf("round %d: %d Incr calls succeeded; the old version holds %q (%v) and the new %q (%v): %d counts lost", round, succeeded, old, okOld, moved, okNew, succeeded-total)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of 150 rounds lost increments that reported success", lost)
	}
}

// TestHostileKVDeleteAddIncrRace: Delete, Add and Incr of one key from
// many goroutines: whatever is served afterwards is a value one of them
// wrote, and every Add that reports true leaves a value that Incr then
// counts from (no Add over a live value, no count on a deleted one).
// (An attack that failed.)
func TestHostileKVDeleteAddIncrRace(t *testing.T) {
	forEachKVStore(t, func(t *testing.T, c *querycache.Cache) {
		kv := c.KV()
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 30 {
					switch (g + i) % 3 {
					case 0:
						if _, err := kv.Delete(bg, "x"); err != nil {
							t.Error(err)
						}
					case 1:
						if _, err := kv.Add(bg, "x", []byte("100")); err != nil {
							t.Error(err)
						}
					default:
						n, err := kv.Incr(bg, "x", 1)
						if err != nil && !errors.Is(err, querycache.ErrNotFound) {
							t.Error(err)
						}
						if err == nil && (n < 101 || n > 100+6*30) {
							t.Errorf("Incr returned %d", n)
						}
					}
				}
			}()
		}
		wg.Wait()
		if v, ok := kvGet(t, kv, "x"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 100 {
				t.Fatalf("after the race the value is %q", v)
			}
		}
	})
}

// TestHostileKVKeyNamesAnotherKeysLease: keys of the low-level API may
// hold ':', '{' and '}', and are kept as written up to 128 bytes, so a
// key can spell the Redis fill lease of another key (leaseKey: name +
// ":lease{" + name + "}"). A value stored under such a key (a key built
// from user input, say) holds that lease: every GetOrSet miss of the
// other key waits LeaseWait for a fill that never comes (and an Add on
// the spelled key steals a live lease). Value names must never collide
// with the store's own keys. Fix: hash raw keys that contain '{' or '}'
// (as keys.Value already does for ' ' and '#'), or give leases a form no
// value name can take.
func TestHostileKVKeyNamesAnotherKeysLease(t *testing.T) {
	t.Parallel()
	c, err := querycache.New(querycache.Options{Store: hkvRedis(t), Prefix: testenv.TestPrefix(t), LeaseWait: 300 * time.Millisecond})
	must(t, err)
	defer c.Close()
	kv := c.KV()
	name := c.Namespace().Value("", 1, "x")
	spelled := "x:lease{" + name + "}"
	must(t, kv.Set(bg, spelled, []byte("a value of my own"), querycache.WithTTL(time.Minute)))
	before := c.Stats().LeaseWaits
	v, _, err := kv.GetOrSet(bg, "x", func(context.Context) ([]byte, error) { return []byte("filled"), nil })
	if err != nil || string(v) != "filled" {
		t.Fatalf("GetOrSet = %q, %v", v, err)
	}
	if waits := c.Stats().LeaseWaits - before; waits != 0 {
		t.Errorf("GetOrSet of %q waited on a lease held by the value of key %q (%d waits)", "x", spelled, waits)
	}
	kvMustGet(t, kv, spelled, "a value of my own")
}

// TestHostileKVLeaseWaiterKeepsPollingAfterStaleFill: a process waiting on
// another's lease whose fill turns out stale for it (it started before a
// write) keeps polling until LeaseWait ends, although the lease is gone:
// each such miss costs the full LeaseWait. A cost, not a wrong result;
// the test fails when the wait ends by timing out (Stats.LeaseTimeouts)
// rather than by noticing the lease is gone. Fix: when a poll finds the lease released (or the entry
// stale), take the lease or fill at once.
func TestHostileKVLeaseWaiterKeepsPollingAfterStaleFill(t *testing.T) {
	t.Parallel()
	prefix := testenv.TestPrefix(t)
	const wait = 2 * time.Second
	a, err := querycache.New(querycache.Options{Store: hkvRedis(t), Prefix: prefix, LeaseWait: wait})
	must(t, err)
	defer a.Close()
	b, err := querycache.New(querycache.Options{Store: hkvRedis(t), Prefix: prefix, LeaseWait: wait})
	must(t, err)
	defer b.Close()
	entered := make(chan struct{})
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = a.KV().GetOrSet(bg, "slow", func(context.Context) ([]byte, error) {
			close(entered)
			<-release
			return []byte("before"), nil
		}, querycache.DependsOn("users"))
	}()
	<-entered
	must(t, b.InvalidateTables(bg, "users"))
	got := make(chan string, 1)
	go func() {
		v, _, _ := b.KV().GetOrSet(bg, "slow", func(context.Context) ([]byte, error) { return []byte("after"), nil }, querycache.DependsOn("users"))
		got <- string(v)
	}()
	time.Sleep(200 * time.Millisecond) // b finds a's lease and waits
	close(release)
	<-done
	if v := <-got; v != "after" {
		t.Fatalf("b got %q", v)
	}
	s := b.Stats()
	if s.LeaseWaits == 0 {
		t.Skip("b did not wait on a's lease: nothing to check")
	}
	if s.LeaseTimeouts != 0 {
		t.Errorf("b waited out the whole LeaseWait (%v) after a's lease was released with a value b could never serve (stats: %d waits, %d timeouts)", wait, s.LeaseWaits, s.LeaseTimeouts)
	}
}
