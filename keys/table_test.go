package keys

import (
	"strings"
	"testing"
)

func TestTableSpellings(t *testing.T) {
	for in, want := range map[string]string{
		`users`:                 "users",
		`USERS`:                 "users",
		`Users`:                 "users",
		`public.users`:          "users",
		`main.users`:            "users",
		`"users"`:               "users",
		`"Users"`:               "users",
		"`users`":               "users",
		`[users]`:               "users",
		`'users'`:               "users",
		`"public"."Users"`:      "users",
		"`main`.`Users`":        "users",
		`[main].[users]`:        "users",
		` public . users `:      "users",
		`db.public.users`:       "users",
		`"My Table"`:            "my table",
		`"ÄBC"`:                 "Äbc",
		`user_roles`:            "user_roles",
		`"public"."user_roles"`: "user_roles",
		`[a.b].c`:               "c",
		// Text that would read differently unquoted stays quoted, so
		// that normalising again gives the same name.
		`"a.b"`:   `"a.b"`,
		`s."A.B"`: `"a.b"`,
		`[a.b]`:   `"a.b"`,
		`"a""b"`:  `"a""b"`,
		"`a``b`":  "\"a`b\"",
		"`a\"b`":  `"a""b"`,
		`" x "`:   `" x "`,
		`"[x]"`:   `"[x]"`,
		// System catalogs.
		`pg_catalog.pg_class`:                 CatalogTable,
		`pg_class`:                            CatalogTable,
		`information_schema.tables`:           CatalogTable,
		`"INFORMATION_SCHEMA"."x"`:            CatalogTable,
		`sqlite_master`:                       CatalogTable,
		`main.sqlite_schema`:                  CatalogTable,
		`pragma_table_info`:                   CatalogTable,
		`"pg_catalog"."whatever"`:             CatalogTable,
		`db.information_schema.cols`:          CatalogTable,
		CatalogTable:                          CatalogTable,
		strings.Repeat("a", 1024):             strings.Repeat("a", MaxIdentLen), // cut as PostgreSQL cuts it
		`"` + strings.Repeat("A", 1022) + `"`: strings.Repeat("a", MaxIdentLen),
		strings.Repeat("b", 70):               strings.Repeat("b", MaxIdentLen),
		"s." + strings.Repeat("b", 64):        strings.Repeat("b", MaxIdentLen),
		strings.Repeat("é", 40):               strings.Repeat("é", 31), // 80 bytes: cut at a character, 62 bytes
		`"` + strings.Repeat(".", 70) + `"`:   `"` + strings.Repeat(".", MaxIdentLen) + `"`,
	} {
		got, err := Table(in)
		if err != nil || got != want {
			t.Errorf("Table(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		if again, err := Table(got); err != nil || again != got {
			t.Errorf("Table(Table(%q)) = %q, %v; want %q (a fixed point)", in, again, err, got)
		}
		if n := NormalizeTable(in); n != want {
			t.Errorf("NormalizeTable(%q) = %q; want %q", in, n, want)
		}
	}
}

func TestTableErrors(t *testing.T) {
	for in, want := range map[string]string{
		``:                        "empty",
		`   `:                     "empty",
		"\t\n":                    "empty",
		`a..b`:                    "empty part",
		`.users`:                  "empty part",
		`users.`:                  "empty part",
		`"x".`:                    "empty part",
		`""`:                      "empty quoted part",
		`[]`:                      "empty quoted part",
		`"users`:                  "unbalanced \" quote",
		"`users":                  "unbalanced ` quote",
		`'users`:                  "unbalanced ' quote",
		`users"`:                  "unbalanced \" quote",
		`[users`:                  "unclosed [",
		`users]`:                  "] without [",
		`[a]]`:                    "] without [",
		`"a"b`:                    "text after the quoted part",
		`[a]b`:                    "text after the bracketed part",
		`a"b"`:                    "quote or bracket inside",
		`a.b.c.d`:                 "more than 3 dotted parts",
		"us\x00ers":               "control character",
		"\"us\x00ers\"":           "control character",
		"us\ners":                 "control character",
		"\"a\x7fb\"":              "control character",
		"\xff\xfe":                "not valid UTF-8",
		strings.Repeat("a", 1025): "at most 1024",
	} {
		got, err := Table(in)
		if err == nil {
			t.Errorf("Table(%q) = %q, nil; want an error about %q", in, got, want)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "keys: table name") {
			t.Errorf("Table(%q) error %q; want it to say %q", in, err, want)
		}
		if len(err.Error()) > 400 {
			t.Errorf("Table(%q) error is %d bytes long", in[:10], len(err.Error()))
		}
		if n := NormalizeTable(in); n != "" {
			t.Errorf("NormalizeTable(%q) = %q; want \"\"", in, n)
		}
	}
}

func TestTablePlainDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { _, _ = Table("user_roles") }); n != 0 {
		t.Errorf("Table of a normalised name allocates %v times", n)
	}
}

// refNormalize is sqlinspect.NormalizeTable as it was when Table was
// written: Table must agree with it wherever its answer is unambiguous.
func refNormalize(name string) string {
	last := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '"', '`', '\'':
			end, ok := quotedEnd(name, i, c)
			if !ok {
				return refPart(name[last:])
			}
			i = end - 1
		case '[':
			j := strings.IndexByte(name[i:], ']')
			if j < 0 {
				return refPart(name[last:])
			}
			i += j
		case '.':
			last = i + 1
		}
	}
	return refPart(name[last:])
}

func refPart(p string) string {
	p = strings.TrimSpace(p)
	if len(p) >= 2 {
		switch q := p[0]; {
		case (q == '"' || q == '`' || q == '\'') && p[len(p)-1] == q:
			inner := p[1 : len(p)-1]
			qs := string(q)
			return lowerASCII(strings.ReplaceAll(inner, qs+qs, qs))
		case q == '[' && p[len(p)-1] == ']':
			return lowerASCII(p[1 : len(p)-1])
		}
	}
	return lowerASCII(p)
}

// checkTable holds for every input: no panic, a bounded result, a fixed
// point, and agreement with the old normaliser where the result needs no
// quotes and is not a catalog.
func checkTable(t *testing.T, in string) {
	got, err := Table(in)
	if err != nil {
		if got != "" {
			t.Fatalf("Table(%q) = %q with error %v", in, got, err)
		}
		return
	}
	if got == "" || len(got) > MaxTableLen {
		t.Fatalf("Table(%q) = %q", in, got)
	}
	again, err := Table(got)
	if err != nil || again != got {
		t.Fatalf("Table(%q) = %q, but Table(%q) = %q, %v", in, got, got, again, err)
	}
	if got != CatalogTable && !strings.HasPrefix(got, `"`) {
		if ref := truncateIdent(refNormalize(in)); ref != got { // cut as PostgreSQL cuts it
			t.Fatalf("Table(%q) = %q; sqlinspect's normaliser said %q", in, got, ref)
		}
	}
}

func FuzzTable(f *testing.F) {
	for _, s := range []string{
		"users", "USERS", "public.users", `"public"."Users"`, "`a``b`", "[a.b].c", `"a.b"`,
		`"a""b"`, "a..b", `"x"."y"."z"."w"`, "pg_catalog.pg_class", " x . y ", `'q'`, "\"\x00\"",
		`" a "`, "[", "]", `"`, "a\tb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) { checkTable(t, in) })
}
