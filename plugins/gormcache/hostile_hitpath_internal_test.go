package gormcache

import (
	"reflect"
	"testing"
)

// TestHostileSnapshotNameCollision: snapshots are keyed by a 64-bit hash of
// the entry key (snapshotName), so two entry keys can share a snapshot
// slot. Forcing that collision (one snapshotKey for both), a snapshot is
// handed out only for the very payload it was built from: a payload of the
// same length with other bytes gets nothing (the caller replays its rows),
// an equal payload at another address gets it (the result is a function of
// the payload), and a payload built later under the colliding key takes
// the slot over without being confused with the first.
func TestHostileSnapshotNameCollision(t *testing.T) {
	s := newSnapshots(1 << 20)
	key := snapshotKey{name: snapshotName("o:main:posts:1:fpA"), dest: reflect.TypeOf(0)}
	a := []byte("rows of query A: id=1 title=x")
	b := []byte("rows of query B: id=2 title=y") // same length, other bytes
	if len(a) != len(b) {
		t.Fatal("test payloads must have one length")
	}
	snapA := &snapshot{payload: a, value: reflect.ValueOf(1)}
	snapA.weigh()
	if !s.put(key, snapA) {
		t.Fatal("snapshot refused")
	}
	// Query B's entry key hashes alike (forced): its payload differs.
	if got := s.get(key, b); got != nil {
		t.Fatalf("a snapshot of payload A was handed out for payload B: %v", got.value)
	}
	// An equal payload in other memory: the same result, so shared.
	a2 := append([]byte(nil), a...)
	if got := s.get(key, a2); got == nil || got.value.Int() != 1 {
		t.Fatal("an equal payload did not get its snapshot")
	}
	// Truncated and extended payloads never match.
	for _, p := range [][]byte{a[:len(a)-1], append(append([]byte(nil), a...), 0), nil, {}} {
		if got := s.get(key, p); got != nil {
			t.Fatalf("payload %q got the snapshot of %q", p, a)
		}
	}
	// B takes the slot over; A then gets nothing, B its own.
	snapB := &snapshot{payload: b, value: reflect.ValueOf(2)}
	snapB.weigh()
	s.put(key, snapB)
	if got := s.get(key, a2); got != nil {
		t.Fatalf("payload A got %v after B took the slot", got.value)
	}
	if got := s.get(key, append([]byte(nil), b...)); got == nil || got.value.Int() != 2 {
		t.Fatal("payload B did not get its snapshot")
	}
}
