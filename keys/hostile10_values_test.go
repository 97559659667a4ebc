package keys

import (
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"math"
	"testing"
	"time"
)

// h10PtrValuer implements driver.Valuer on the pointer only, and gives
// its nil value a value of its own.
type h10PtrValuer struct{ s string }

func (v *h10PtrValuer) Value() (driver.Value, error) {
	if v == nil {
		return "default", nil
	}
	return v.s, nil
}

// h10ValValuer implements driver.Valuer on the value.
type h10ValValuer struct{ s string }

func (v h10ValValuer) Value() (driver.Value, error) { return v.s, nil }

// database/sql (convert.go, callValuerValue) sends NULL for a nil *T only
// when T itself implements driver.Valuer; when only *T does, it calls
// Value on the nil pointer, and sends what it returns (pgx does the same).
// AppendValue encodes every nil pointer Valuer as NULL.
func TestHostile10NilPointerValuerIsNotNull(t *testing.T) {
	// What database/sql sends (driver.DefaultParameterConverter follows
	// the same rule as callValuerValue).
	dbVal, err := driver.DefaultParameterConverter.ConvertValue((*h10PtrValuer)(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("database/sql sends %#v for (*h10PtrValuer)(nil)", dbVal)
	a, _ := fp(sqlText("x = ?"), nil)
	b, okb := fp(sqlText("x = ?"), (*h10PtrValuer)(nil))
	if okb && a == b && dbVal != nil {
		t.Errorf("x = NULL and x = (*h10PtrValuer)(nil) (sent as %#v) share a fingerprint", dbVal)
	}
	// Pin: a nil *T whose T implements Valuer is NULL, as database/sql says.
	c, _ := fp(sqlText("x = ?"), (*h10ValValuer)(nil))
	if c != a {
		t.Error("(*h10ValValuer)(nil) is NULL and should share NULL's fingerprint")
	}
}

// Pins: values the databases tell apart have different fingerprints.
func TestHostile10FingerprintPairs(t *testing.T) {
	negZero := math.Copysign(0, -1)
	utc := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	type u16 [16]byte
	pairs := [][2]any{
		{int64(1), uint64(1)}, {1, "1"}, {1, 1.0}, {1, true}, {"1", []byte("1")},
		{"", nil}, {[]byte{}, nil}, {sql.NullString{}, ""}, {0.0, negZero},
		{uint64(math.MaxUint64), int64(-1)}, {"a\x00b", "a"}, {"a\x00", "a"},
		{utc, utc.Add(time.Nanosecond)}, {utc, utc.In(time.FixedZone("", 3600))},
		{json.RawMessage(`"1"`), "1"}, {[16]byte{1}, u16{1}}, {[16]byte{1}, []byte{1}},
		{h10ValValuer{"1"}, "1"}, {h10ValValuer{"1"}, h10ValValuer{"2"}},
	}
	for _, p := range pairs {
		a, oka := fp(sqlText("q"), p[0])
		b, okb := fp(sqlText("q"), p[1])
		if oka && okb && a == b {
			t.Errorf("%#v and %#v share a fingerprint", p[0], p[1])
		}
	}
	// Same: the monotonic reading is not part of the value.
	now := time.Now()
	a, _ := fp(now)
	b, _ := fp(now.Round(0))
	if a != b {
		t.Error("a time's monotonic reading changes its fingerprint")
	}
}
