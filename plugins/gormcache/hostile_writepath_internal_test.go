package gormcache

import (
	"math/rand/v2"
	"strings"
	"testing"

	"querycache.dev/internal/testenv"
)

// TestHostileSimpleConditionBytes: the hand-written matcher (224d655)
// answers as the regular expression on texts of arbitrary bytes (NUL,
// vertical tab, DEL, invalid UTF-8, full-width and case-folding letters,
// comment and quote characters), and whatever it accepts cannot reopen a
// conjunction: no OR, comment, quote, semicolon, NUL or second placeholder.
func TestHostileSimpleConditionBytes(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"id = ?\x00", "\x00id = ?", "id\x00= ?", "id = ?\x00OR 1=1", "id = ?\v", "\vid = ?", "id = ?\x7f",
		"id = ? ＯＲ 1=1", "id ＝ ?", "ｉｄ = ?", "\u212a = ?", "\u017f = ?", "id = ?\u00a0", "\u00a0id = ?", "id\u2028= ?",
		"id = ?\xff", "\xffid = ?", "id = \xc0\xbf", "id = ? /*", "id = ?--", "id = ?;", "id = '?'", "id = \"?\"",
		"id = ?#", "id = ?\r\n", "id is\x00null", "id IS NOT\vNULL", "id LİKE ?", "id ın ?", "id = ? ?", "id = (? ?)",
		"id = ((?))", "id = (?) or 1", "id = ?)or(1", "a.b = ?", "a.b.c = ?", "a..b = ?", ".a = ?", "a. = ?",
	} {
		if got, want := simpleCondition(s), simpleExpr.MatchString(s); got != want {
			t.Errorf("simpleCondition(%q) = %v; the expression says %v", s, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(11, 13))
	pieces := []string{"id", "n", " ", "=", "?", "(", ")", "is", "not", "null", "like", "in", "or", "OR", "--", "/*", "'",
		"\"", ";", "\x00", "\v", "\x7f", "\xff", "\xc3", "\u212a", "\u017f", "\u0130", "\u0131", "ＯＲ", "\u00a0", ".", "1", "#"}
	var b strings.Builder
	n := 300_000
	if testenv.Race {
		n = 100_000 // see testenv.Race
	}
	if testing.Short() {
		n = 30_000
	}
	for range n {
		b.Reset()
		if rng.IntN(2) == 0 {
			b.WriteString("id ")
		}
		for range 1 + rng.IntN(7) {
			if rng.IntN(6) == 0 {
				b.WriteByte(byte(rng.IntN(256)))
			} else {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
		}
		s := b.String()
		got, want := simpleCondition(s), simpleExpr.MatchString(s)
		if got != want {
			t.Fatalf("simpleCondition(%q) = %v; the expression says %v", s, got, want)
		}
		if got {
			l := strings.ToLower(s)
			for _, bad := range []string{" or ", "--", "/*", "'", ";", "\x00", "#"} {
				if strings.Contains(l, bad) {
					t.Fatalf("simpleCondition(%q) accepted a text holding %q", s, bad)
				}
			}
			if strings.Count(s, "?") > 1 {
				t.Fatalf("simpleCondition(%q) accepted two placeholders", s)
			}
		}
	}
}
