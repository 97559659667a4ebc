package keys

import (
	"database/sql"
	"database/sql/driver"
	"testing"
	"time"
)

func TestPKCanonical(t *testing.T) {
	type myID int64
	n := 42
	for _, v := range []any{42, int64(42), uint(42), int32(42), "42", myID(42), &n, sql.NullInt64{Int64: 42, Valid: true}} {
		got, ok := PK(v)
		if !ok || got != "42" {
			t.Errorf("PK(%#v) = %q, %v; want \"42\", true", v, got, ok)
		}
	}
	for _, v := range []any{"042", " 42", "42 ", "4.2e1", "+42", 42.0, nil, []byte("42"), sql.NullInt64{}, (*int)(nil), true, "", "a\x00b"} {
		if got, ok := PK(v); ok {
			t.Errorf("PK(%#v) = %q, true; want false", v, got)
		}
	}
	if got, ok := PK("abc"); !ok || got != "abc" {
		t.Errorf("PK(abc) = %q, %v", got, ok)
	}
}

func TestNamesDoNotCollide(t *testing.T) {
	n := NewNamespace("app:")
	if n.ObjectVersion("a:b", "c") == n.ObjectVersion("a", "b:c") {
		t.Fatal("object versions collide across the separator")
	}
	if JoinPK([]string{"a,b", "c"}) == JoinPK([]string{"a", "b,c"}) {
		t.Fatal("composite keys collide")
	}
	long := string(make([]byte, 1000))
	if len(n.ObjectVersion("t", long)) > 200 {
		t.Fatal("a long primary key is not digested")
	}
}

func fp(parts ...any) (Fingerprint, bool) {
	b := NewBuilder()
	ok := true
	for _, p := range parts {
		if s, isStr := p.(sqlText); isStr {
			b.String(string(s))
			continue
		}
		ok = b.Value(p) && ok
	}
	return b.Sum(), ok
}

type sqlText string

func TestFingerprintInjective(t *testing.T) {
	type pair struct{ a, b []any }
	utc := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	plus1 := utc.In(time.FixedZone("X", 3600))
	cases := []pair{
		{[]any{sqlText("a"), "bc"}, []any{sqlText("ab"), "c"}},
		{[]any{"1"}, []any{1}},
		{[]any{[]byte("x")}, []any{"x"}},
		{[]any{nil}, []any{""}},
		{[]any{1.0}, []any{1}},
		{[]any{true}, []any{1}},
		{[]any{utc}, []any{plus1}},
		{[]any{[]int{1, 2}}, []any{[]int{12}}},
		{[]any{"a", "b"}, []any{"ab"}},
		{[]any{uint64(1 << 63)}, []any{int64(-1 << 63)}},
	}
	for _, c := range cases {
		fa, _ := fp(c.a...)
		fb, _ := fp(c.b...)
		if fa == fb {
			t.Errorf("%#v and %#v share a fingerprint", c.a, c.b)
		}
	}
	x, y := 5, 5
	fa, _ := fp(&x)
	fb, _ := fp(&y)
	fc, _ := fp(5)
	if fa != fb || fa != fc {
		t.Error("pointers must be encoded by value, not address")
	}
	if _, ok := fp(map[string]int{"a": 1}); ok {
		t.Error("maps must be refused")
	}
	type cyc struct{ p *cyc }
	c := &cyc{}
	c.p = c
	if _, ok := fp(c); ok {
		t.Error("a cycle must be refused")
	}
}

type panicValuer struct{}

func (*panicValuer) Value() (driver.Value, error) { panic("boom") }

type valueValuer struct{}

func (valueValuer) Value() (driver.Value, error) { return "v", nil }

func TestValuerPanicIsRefused(t *testing.T) {
	if _, ok := fp(&panicValuer{}); ok {
		t.Error("a panicking Valuer must be refused")
	}
	// Value is on the pointer: database/sql calls it on a nil pointer
	// too, and it panics.
	if _, ok := fp((*panicValuer)(nil)); ok {
		t.Error("a nil pointer whose Value (on the pointer) panics must be refused")
	}
	// Value on the value: a nil pointer cannot call it and is sent as
	// NULL.
	null, _ := fp(any(nil))
	if got, ok := fp((*valueValuer)(nil)); !ok || got != null {
		t.Error("a nil pointer to a type whose Value has a value receiver is NULL")
	}
}
