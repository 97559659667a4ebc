package keys

import (
	"bytes"
	"sync/atomic"
	"testing"
)

type keyColor int32

func (c keyColor) String() string { return map[keyColor]string{1: "red"}[c] }

type keySize int32

func (s keySize) String() string { return map[keySize]string{1: "large"}[s] }

type keyTicker int

var ticks atomic.Int64

func (keyTicker) String() string { return string(rune('a' + ticks.Add(1)%26)) }

// TestStringerKeyed: two enums of one integer and different names are two
// keys (pgx sends a fmt.Stringer to a text parameter as its String), and
// a String that changes from call to call is not keyed.
func TestStringerKeyed(t *testing.T) {
	a, okA := AppendValue(nil, keyColor(1))
	b, okB := AppendValue(nil, keySize(1))
	if !okA || !okB || bytes.Equal(a, b) {
		t.Fatalf("Color(1) and Size(1) keyed %q (%v) and %q (%v); want two keys", a, okA, b, okB)
	}
	p, okP := AppendValue(nil, new(keyColor))
	if !okP || bytes.Equal(p, a) {
		t.Fatalf("*Color(0) keyed %q (%v), the same as Color(1)", p, okP)
	}
	if _, ok := AppendValue(nil, keyTicker(1)); ok {
		t.Error("a String that changes from call to call was keyed")
	}
	if _, ok := AppendValue(nil, []keyColor{1, 2}); !ok {
		t.Error("a slice of enums was not keyed")
	}
}
