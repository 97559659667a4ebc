package sqlinspect

import (
	"slices"
	"strings"
)

// MaskLiterals returns sql with every literal replaced, so that a value
// spelled in a statement's text (db.Raw("... WHERE name = 'ann'")) never
// reaches a log line, a report or a debug page: a string ('...', E'...',
// U&'...', $tag$...$tag$, the quoted part of X'...') becomes '?', a number
// becomes ?. Everything else is kept as written: keywords, identifiers
// (bare, "quoted", `backquoted`, [bracketed]), operators, placeholders ($1,
// ?, :name) and comments, so the text still shows the statement's shape.
//
// The text is read by the rules of d, with the tokenizer Inspect uses.
// Under DialectAny, whatever SQLite or PostgreSQL would read as a literal
// is masked (the two disagree on E'...' and $tag$ strings, backquotes, and
// where some comments end). A literal or comment the text does not close
// masks everything from its start to the end: the masking errs towards
// hiding.
func MaskLiterals(sql string, d Dialect) string {
	var spans []maskSpan
	switch d {
	case DialectPostgres, DialectSQLite:
		spans = literalSpans(sql, d, nil)
	default:
		spans = literalSpans(sql, DialectPostgres, nil)
		spans = literalSpans(sql, DialectSQLite, spans)
	}
	if len(spans) == 0 {
		return sql // nothing to mask: no copy
	}
	spans = mergeSpans(spans)
	var b strings.Builder
	b.Grow(len(sql))
	at := 0
	for _, s := range spans {
		b.WriteString(sql[at:s.start])
		if s.number {
			b.WriteByte('?')
		} else {
			// '?' must read as a string of its own, as the text it
			// replaces did: not glued to a string before it ('a'$$b$$), nor
			// made an E'' or U&'' string by a name before it (E"... unclosed).
			if out := b.String(); out != "" {
				if c := out[len(out)-1]; c == '\'' || sql[s.start] != '\'' && (c == '&' || charClass[c]&ccIdentCont != 0) {
					b.WriteByte(' ')
				}
			}
			b.WriteString("'?'")
		}
		at = s.end
	}
	b.WriteString(sql[at:])
	return b.String()
}

// sqliteQuotedValue reports whether the "double-quoted" token toks[i]
// may be a value to SQLite, which takes a double-quoted word that names no
// column for a string (its "DQS" misfeature, on by default): so
// db.Raw(`... WHERE email = "ann@example.com"`) spells a value in quotes
// MaskLiterals keeps for identifiers. Which it is depends on the schema,
// so a double-quoted word is masked wherever a value may stand, and kept
// only where SQLite reads nothing but a name: qualified ("t"."c", t."c"),
// or after FROM, JOIN, INTO, UPDATE, TABLE, AS or SET. Privacy comes first:
// a name elsewhere is masked too (SELECT "a", the column list of an
// INSERT, WHERE "b" = ...), as the value in its place would be; kept only
// where a value may go, one showed (TestHostile50ObsSQLiteQuotedValueInParensShown,
// then WHERE "hunter2" = name and SELECT "hunter2" AS probe:
// TestMaskLiteralsHidesValues). GORM quotes SQLite names with backquotes,
// so its statements keep their names.
func sqliteQuotedValue(toks []token, i int) bool {
	if i+1 < len(toks) && toks[i+1].kind == tkDot || i > 0 && toks[i-1].kind == tkDot {
		return false
	}
	if i > 0 && toks[i-1].kind == tkWord {
		switch toks[i-1].kw {
		case kwFrom, kwJoin, kwInto, kwUpdate, kwTable, kwAs, kwSet:
			return false
		}
	}
	return true
}

// maskSpan is a part of the text MaskLiterals replaces: sql[start:end], a
// number (replaced by ?) or anything else (a string, an unclosed tail:
// replaced by '?').
type maskSpan struct {
	start, end int
	number     bool
}

// literalSpans appends the spans of sql's literals, read by the rules of
// d (PostgreSQL or SQLite), and the unclosed tail if there is one.
//
// A number's span runs on over a name glued to it: the tokenizer ends a
// number where PostgreSQL's lexer did, but 0x1F, 1_000 and 1e are numbers
// (or errors) to the databases, and their digits are values.
func literalSpans(sql string, d Dialect, out []maskSpan) []maskSpan {
	var buf [64]token // most statements: no allocation
	toks, st := lex(sql, buf[:0], d)
	for i, t := range toks {
		switch t.kind {
		case tkString, tkEString, tkUString, tkDollar:
			out = append(out, maskSpan{start: t.start, end: t.end})
		case tkQuoted:
			if d == DialectSQLite && sqliteQuotedValue(toks, i) {
				out = append(out, maskSpan{start: t.start, end: t.end})
			}
		case tkNumber:
			end := t.end
			if i+1 < len(toks) && toks[i+1].start == end && toks[i+1].kind == tkWord {
				end = toks[i+1].end // 0x1F, 1_000: the word glued to the number
			}
			out = append(out, maskSpan{start: t.start, end: end, number: true})
		}
	}
	if st&lexUnterminated != 0 {
		from := 0
		if len(toks) > 0 {
			from = toks[len(toks)-1].end
		}
		if at := unclosedAt(sql, from, d); at < len(sql) {
			out = append(out, maskSpan{start: at, end: len(sql)})
		}
	}
	return out
}

// unclosedAt returns where the token lex could not finish starts: the
// first byte from i that is neither whitespace nor in a closed comment.
func unclosedAt(s string, i int, d Dialect) int {
	for i < len(s) {
		switch c := s[i]; {
		case charClass[c]&ccSpace != 0:
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			i, _ = lineCommentEnd(s, i+2, d)
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end, ok, _ := skipBlockComment(s, i, d)
			if !ok {
				return i
			}
			i = end
		default:
			return i
		}
	}
	return i
}

// mergeSpans sorts spans and joins the overlapping ones (two readings of
// the same text, a number run on into a string); the result is a number
// only if every part is.
func mergeSpans(spans []maskSpan) []maskSpan {
	slices.SortFunc(spans, func(a, b maskSpan) int { return a.start - b.start })
	out := spans[:0]
	for _, s := range spans {
		if n := len(out); n > 0 && s.start < out[n-1].end {
			last := &out[n-1]
			last.end = max(last.end, s.end)
			last.number = last.number && s.number
			continue
		}
		out = append(out, s)
	}
	return out
}
