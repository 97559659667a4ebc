package gormcache

import (
	"math/rand/v2"
	"strings"
	"testing"

	"querycache.dev/internal/testenv"
)

// TestSimpleConditionMatchesExpression: the hand-written matcher answers
// as the regular expression does, on the conditions GORM users write and
// on a million texts drawn from the pieces that matter to the grammar
// (white space of every kind the expression knows and one it does not,
// operators, words in any case, placeholders, parentheses, dots, digits,
// and non-ASCII letters that fold to ASCII ones).
func TestSimpleConditionMatchesExpression(t *testing.T) {
	t.Parallel() // pure CPU: a minute under -race, off the package's serial phase
	for _, s := range []string{
		"id = ?", "ID=?", " users.id = ? ", "id <> ?", "id != ?", "id<=?", "id >= ?", "id < ?", "id > ?",
		"id is null", "id IS NOT NULL", "id is  not\tnull ?", "name like ?", "name LIKE(?)", "id in (?)", "id in ( ? )", "id IN?",
		"id = ? OR 1=1", "id = ? -- x", "id = ?)", "id = (?", "id", "= ?", "1id = ?", "_a = ?", "a.b.c = ?", "a. b = ?",
		"id isnull", "idis null", "id likex ?", "id inx", "id < = ?", "id => ?", "id ! = ?", "id ==?", "id = ??", "id\v= ?",
		"ſtatus = ?", "K = ?", "id iſ null", "naïve = ?", "", " ", "id = ? ", "id =\n?\n",
	} {
		if got, want := simpleCondition(s), simpleExpr.MatchString(s); got != want {
			t.Errorf("simpleCondition(%q) = %v; the expression says %v", s, got, want)
		}
	}
	pieces := []string{"a", "Z", "_", "id", "x1", "9", ".", " ", "  ", "\t", "\n", "\f", "\r", "\v",
		"=", "<", ">", "!", "<>", "!=", "<=", ">=", "?", "(", ")", "is", "IS", "iS", "not", "NOT", "null", "NuLl",
		"like", "LIKE", "in", "IN", "or", "-", "'", "ſ", "K", "é"}
	rng := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	matched := 0
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	} else if testenv.Race {
		n = 100_000 // 35 s of CI's CPU at 250,000; FuzzSimpleCondition explores further
	}
	for range n {
		b.Reset()
		// Mostly well-formed prefixes, so the operator and tail are reached.
		if rng.IntN(2) == 0 {
			b.WriteString([]string{"id", "a.b", " col_1", "x"}[rng.IntN(4)])
		}
		for range rng.IntN(8) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		s := b.String()
		got, want := simpleCondition(s), simpleExpr.MatchString(s)
		if got != want {
			t.Fatalf("simpleCondition(%q) = %v; the expression says %v", s, got, want)
		}
		if want {
			matched++
		}
	}
	if matched < n/100 {
		t.Errorf("only %d of the texts matched: the draw does not reach the operators", matched)
	}
	t.Logf("%d of %d texts matched", matched, n)
}

// TestSimpleConditionAllocatesNothing: the matcher is on every write by
// primary key.
func TestSimpleConditionAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _ = simpleCondition("id = ?") }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// FuzzSimpleCondition: the hand-written matcher answers as the regular
// expression does on any text (a condition is the user's text, bound
// values aside).
func FuzzSimpleCondition(f *testing.F) {
	for _, s := range []string{"id = ?", " users.id = ? ", "id IS NOT NULL", "name LIKE(?)", "id in ( ? )",
		"id = ? OR 1=1", "ſtatus = ?", "id\v= ?", "id =\n?\n", "a. b = ?", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := simpleCondition(s), simpleExpr.MatchString(s); got != want {
			t.Errorf("simpleCondition(%q) = %v; the expression says %v", s, got, want)
		}
	})
}
