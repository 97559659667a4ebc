package keys

import (
	"database/sql/driver"
	"strings"
	"testing"
)

const canonUUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"

// uuidValuer is a uuid type whose Value is text, as google/uuid's and
// pgtype's are.
type uuidValuer [16]byte

func (u uuidValuer) Value() (driver.Value, error) { return strings.ToUpper(formatUUID(u)), nil }

// namedUUID is a [16]byte without a Valuer.
type namedUUID [16]byte

func TestPKUUIDSpellings(t *testing.T) {
	raw := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	// The spellings PostgreSQL's documentation lists for uuid input, and
	// the Go values drivers use for it.
	for _, v := range []any{
		canonUUID,
		"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
		"a0eebc999c0b4ef8bb6d6bb9bd380a11",
		"a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
		"{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
		"A0eEbC999C0B4ef8Bb6D6bB9bD380A11",
		"{A0EEBC999C0B4EF8BB6D6BB9BD380A11}",
		raw,
		&raw,
		namedUUID(raw),
		uuidValuer(raw),
	} {
		got, ok := PK(v)
		if !ok || got != canonUUID {
			t.Errorf("PK(%#v) = %q, %v; want %q", v, got, ok, canonUUID)
		}
	}
}

func TestPKNotUUID(t *testing.T) {
	// Not uuids for PostgreSQL: kept as they are (text keys), never merged
	// with the uuid.
	for _, s := range []string{
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",    // 31 digits
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",  // 33 digits
		"a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",   // hyphen inside a group of four
		"a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",  // two hyphens
		"-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",  // leading hyphen
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",  // trailing hyphen
		"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",  // unclosed brace
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",  // brace without opening
		"g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",   // not hex
		"(a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11)", // not braces
	} {
		got, ok := PK(s)
		if !ok || got != s {
			t.Errorf("PK(%q) = %q, %v; want it unchanged", s, got, ok)
		}
	}
	// Padded: the database may trim it, so it is no canonical key.
	for _, s := range []string{" " + canonUUID, canonUUID + "\n"} {
		if got, ok := PK(s); ok {
			t.Errorf("PK(%q) = %q, true; want false", s, got)
		}
	}
	// 32 decimal digits could be a number: never a uuid key.
	if got, ok := PK("12345678123456781234567812345678"); ok {
		t.Errorf("PK(32 digits) = %q, true; want false", got)
	}
	if got, ok := PK([15]byte{}); ok {
		t.Errorf("PK([15]byte) = %q, true; want false", got)
	}
}

func TestPKNumberSpellings(t *testing.T) {
	// Every spelling a database could read as the number 42 (PostgreSQL 16
	// accepts 0x2A, 0o52, 0b101010 and 4_2 for integers) is either "42" or
	// no canonical key at all.
	for _, s := range []string{
		"42", "042", "+42", " 42", "42 ", "4.2e1", "42.0", "0x2A", "0X2a", "0o52", "0b101010", "4_2",
		"42e0", "420e-1", "-0", "1e1000", "1E+999999", "Infinity", "-inf", "NaN", ".5", "5.",
	} {
		got, ok := PK(s)
		if ok && !(s == "42" && got == "42") {
			t.Errorf("PK(%q) = %q, true; want false (or 42 for \"42\")", s, got)
		}
	}
	for _, s := range []string{"abc", "1e5abc", "x42", "42abc", "e5", "-", "."} {
		if got, ok := PK(s); !ok || got != s {
			t.Errorf("PK(%q) = %q, %v; want it unchanged (not a number)", s, got, ok)
		}
	}
}

// refUUID is PostgreSQL's string_to_uuid (src/backend/utils/adt/uuid.c),
// transcribed, as the reference for FuzzPK.
func refUUID(src string) (string, bool) {
	braces := false
	if strings.HasPrefix(src, "{") {
		src = src[1:]
		braces = true
	}
	var u [16]byte
	for i := 0; i < 16; i++ {
		if len(src) < 2 {
			return "", false
		}
		hi, ok1 := unhex(src[0])
		lo, ok2 := unhex(src[1])
		if !ok1 || !ok2 {
			return "", false
		}
		u[i] = hi<<4 | lo
		src = src[2:]
		if strings.HasPrefix(src, "-") && i%2 == 1 && i < 15 {
			src = src[1:]
		}
	}
	if braces {
		if !strings.HasPrefix(src, "}") {
			return "", false
		}
		src = src[1:]
	}
	if src != "" {
		return "", false
	}
	return formatUUID(u), true
}

func FuzzPK(f *testing.F) {
	for _, s := range []string{
		canonUUID, "{A0EEBC999C0B4EF8BB6D6BB9BD380A11}", "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", "42", "042",
		"0x2A", "1e5", "abc", "", "\x00", "12345678123456781234567812345678", " 1", "inf",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := PK(s)
		if !ok {
			return
		}
		if again, ok := PK(got); !ok || again != got {
			t.Fatalf("PK(%q) = %q, but PK(%q) = %q, %v: not a fixed point", s, got, got, again, ok)
		}
		if u, isUUID := refUUID(s); isUUID && got != u {
			t.Fatalf("PK(%q) = %q; PostgreSQL reads it as the uuid %s", s, got, u)
		}
		if mightBeNumber(s) && got != s {
			t.Fatalf("PK(%q) = %q: a number changed spelling", s, got)
		}
	})
}
