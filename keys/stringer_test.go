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

// TestPKNamesNoRowOfAStringer: a value of a named type with a String
// method names no row (pgx sends it to a text key as its String, to a
// number's as its integer), while its Valuer form, and plain integers,
// still do.
func TestPKNamesNoRowOfAStringer(t *testing.T) {
	type color int32
	if _, ok := PK(keyColor(1)); ok {
		t.Error("keys.PK named a row by a fmt.Stringer's integer")
	}
	c := keyColor(1)
	if _, ok := PK(&c); ok {
		t.Error("keys.PK named a row by a pointer to a fmt.Stringer")
	}
	if s, ok := PK(color(7)); !ok || s != "7" {
		t.Errorf("PK(color(7)) = %q %v, want 7", s, ok)
	}
	if text, stringer, stable := StringerText(keyColor(1)); !stringer || !stable || text != "red" {
		t.Errorf("StringerText = %q %v %v", text, stringer, stable)
	}
}
