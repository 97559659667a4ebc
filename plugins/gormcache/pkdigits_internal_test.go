package gormcache

import (
	"math"
	"strconv"
	"testing"
)

// TestPKDigitsIsStrconv: the decimal a write's key is written in on the
// stack is strconv's (keys.PK's), so that a write names the row a read by
// the same key recorded, at every length and sign.
func TestPKDigitsIsStrconv(t *testing.T) {
	ints := []int64{0, 1, -1, 9, 10, 99, 100, 742, -742, 1 << 31, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for p := int64(1); p > 0 && p < math.MaxInt64/10; p *= 10 {
		ints = append(ints, p-1, p, p+1, -p, -(p - 1))
	}
	for _, i := range ints {
		var d pkDigits
		if got, want := d.signed(i), strconv.FormatInt(i, 10); got != want {
			t.Errorf("signed(%d) = %q, want %q", i, got, want)
		}
		if got, want := (*pkDigits)(nil).signed(i), strconv.FormatInt(i, 10); got != want {
			t.Errorf("nil signed(%d) = %q, want %q", i, got, want)
		}
		if i >= 0 {
			var d pkDigits
			if got, want := d.unsigned(uint64(i)), strconv.FormatUint(uint64(i), 10); got != want {
				t.Errorf("unsigned(%d) = %q, want %q", i, got, want)
			}
		}
	}
	var d pkDigits
	if got, want := d.unsigned(math.MaxUint64), strconv.FormatUint(math.MaxUint64, 10); got != want {
		t.Errorf("unsigned(MaxUint64) = %q, want %q", got, want)
	}
}

// FuzzPKDigits compares the stack decimal with strconv on any integer.
func FuzzPKDigits(f *testing.F) {
	f.Add(int64(0))
	f.Add(int64(math.MinInt64))
	f.Add(int64(-1234567890))
	f.Fuzz(func(t *testing.T, i int64) {
		var d pkDigits
		if got, want := d.signed(i), strconv.FormatInt(i, 10); got != want {
			t.Fatalf("signed(%d) = %q, want %q", i, got, want)
		}
	})
}
