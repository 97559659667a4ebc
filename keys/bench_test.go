package keys

import "testing"

func BenchmarkObjectKey(b *testing.B) {
	n := NewNamespace("app:")
	fp := Sum([]byte("SELECT * FROM posts WHERE id = ?"))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = n.Object("db1", "posts", "42", fp)
		_ = n.ObjectVersion("posts", "42")
	}
}

func BenchmarkFingerprint(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f := NewBuilder()
		f.String("sqlite")
		f.String("db1")
		f.String(`SELECT * FROM "posts" WHERE "posts"."id" = ? AND "posts"."deleted_at" IS NULL ORDER BY "posts"."id" LIMIT ?`)
		f.Value(42)
		f.Value(1)
		_ = f.Sum()
	}
}

func BenchmarkObjectLookup(b *testing.B) {
	ns := NewNamespace("app:")
	obj := ns.ObjectNames("db", "users")
	bulk := ns.TableVersions("users").Bulk
	fp := NewBuilder()
	fp.String("select")
	sum := fp.Sum()
	b.ReportAllocs()
	for b.Loop() {
		k, v := obj.Lookup("742", sum, bulk)
		if len(k) == 0 || len(v) != 2 {
			b.Fatal("empty")
		}
	}
}
